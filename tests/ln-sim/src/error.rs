//! Errors: [`SimError`] for starting the simulator, and [`ODataError`], the OData JSON error
//! response (`{"error":{"code","message","target","details"}}`) every failing request gets.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::query::QueryError;
use crate::store::StoreError;

/// Failure to start the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid seed: {0}")]
    Seed(#[from] StoreError),
    #[error("cannot read seed file {path}: {source}")]
    SeedFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seed file {path} is not valid seed JSON: {source}")]
    SeedJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the HTTP client of the push webhook: {0}")]
    WebhookClient(#[source] reqwest::Error),
}

/// An entry of `error.details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub code: String,
    pub target: Option<String>,
    pub message: String,
}

/// An OData error response. Boxed so that `Result<_, ODataError>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct ODataError(Box<ErrorBody>);

/// The parts of an [`ODataError`].
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<ErrorDetail>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ODataError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status,
            code: code.to_string(),
            message: message.into(),
            target: None,
            details: Vec::new(),
            headers: Vec::new(),
        }))
    }

    pub fn body(&self) -> &ErrorBody {
        &self.0
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn method_not_allowed(method: &str, resource: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {resource}"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message).with_header(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"ln-sim\", error=\"invalid_token\"".to_string(),
        )
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.0.target = Some(target.into());
        self
    }

    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.0.details.push(detail);
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.0.headers.push((name, value));
        self
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let body = *self.0;
        let mut error = json!({"code": body.code, "message": body.message});
        if let Some(target) = &body.target {
            error["target"] = json!(target);
        }
        if !body.details.is_empty() {
            error["details"] = json!(body.details);
        }
        let mut response = (body.status, axum::Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static("odata-version"),
            HeaderValue::from_static("4.0"),
        );
        for (name, value) in body.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

impl From<StoreError> for ODataError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::UnknownCompany(_) => {
                ODataError::new(StatusCode::BAD_REQUEST, "InvalidCompany", message)
            }
            StoreError::NotFound { .. } => ODataError::not_found(message),
            StoreError::PreconditionFailed { .. } => ODataError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                message,
            ),
            StoreError::Conflict {
                target,
                existing_key,
                ..
            } => ODataError::new(StatusCode::CONFLICT, "Conflict", message)
                .with_target(target)
                .with_detail(ErrorDetail {
                    code: "ExistingKey".into(),
                    target: Some(target.to_string()),
                    message: existing_key,
                }),
            StoreError::Validation { field, .. } => {
                let e = ODataError::new(StatusCode::BAD_REQUEST, "InvalidValue", message);
                if field.is_empty() {
                    e
                } else {
                    e.with_target(field)
                }
            }
        }
    }
}

impl From<QueryError> for ODataError {
    fn from(error: QueryError) -> Self {
        ODataError::new(StatusCode::BAD_REQUEST, "InvalidQuery", error.to_string())
    }
}
