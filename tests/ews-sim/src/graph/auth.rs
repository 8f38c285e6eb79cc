//! Graph authentication and mailbox access: the Entra ID token endpoint (client credentials
//! grant), bearer-token checks on every Graph request, and the application access policy
//! (which mailboxes the app may reach).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;

use crate::graph::error::GraphError;
use crate::graph::state::IssuedToken;
use crate::sim::SimHandle;
use crate::state::SimState;
use crate::store::Store;

/// Who is calling: the app registration behind the bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphCaller {
    pub tenant: String,
    pub client_id: String,
    /// The token itself (inner `$batch` requests reuse the outer caller).
    pub token: String,
}

/// Checks `Authorization: Bearer …` against the issued tokens (expiry on the simulator
/// clock): `401 InvalidAuthenticationToken` otherwise.
pub fn authorize(handle: &SimHandle, headers: &HeaderMap) -> Result<GraphCaller, GraphError> {
    authorize_state(&handle.lock(), headers)
}

/// [`authorize`] for callers already holding the state lock.
pub fn authorize_state(st: &SimState, headers: &HeaderMap) -> Result<GraphCaller, GraphError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(GraphError::unauthorized("Access token is empty."));
    }
    let Some(issued) = st.graph.tokens.get(token) else {
        return Err(GraphError::unauthorized(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    };
    if issued.expires <= st.store.seq.now() {
        return Err(GraphError::unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(GraphCaller {
        tenant: issued.tenant.clone(),
        client_id: issued.client_id.clone(),
        token: token.to_string(),
    })
}

/// The application access policy: the mailbox must exist (`404 ErrorInvalidUser`) and be
/// within `SimConfig::allowed_impersonation` when set (`403 ErrorAccessDenied`, the answer
/// of an `ApplicationAccessPolicy` with `RestrictAccess`). Returns the mailbox's primary
/// SMTP address as stored.
pub fn check_mailbox(st: &SimState, user: &str) -> Result<String, GraphError> {
    let user = user.trim();
    let Ok(mb) = st.store.mailbox(user) else {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        ));
    };
    if let Some(allowed) = &st.config.allowed_impersonation
        && !allowed
            .iter()
            .any(|a| Store::key(a) == Store::key(&mb.smtp))
    {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled.",
        ));
    }
    Ok(mb.smtp.clone())
}

/// An Entra ID error answer (`{"error","error_description",…}`, not Graph's shape).
fn entra_error(status: StatusCode, error: &str, description: &str) -> (StatusCode, Value) {
    let body = serde_json::json!({
        "error": error,
        "error_description": description,
        "error_codes": [if error == "invalid_client" { 7000215 } else { 900144 }],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, body)
}

/// The token endpoint's answer as HTTP.
pub fn entra_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` with its form fields: a token for a configured client
/// (lifetime on the simulator clock), or Entra's error answer.
pub fn token_endpoint(
    st: &mut SimState,
    tenant: &str,
    form: &[(String, String)],
) -> (StatusCode, Value) {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let tenant_known = st
        .config
        .graph
        .clients
        .iter()
        .any(|c| c.tenant.eq_ignore_ascii_case(tenant));
    if !tenant_known {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let scope = field("scope").unwrap_or_default();
    if !scope
        .split_whitespace()
        .any(|s| s.eq_ignore_ascii_case("https://graph.microsoft.com/.default"))
    {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    let Some(client) = st
        .config
        .graph
        .clients
        .iter()
        .find(|c| c.tenant.eq_ignore_ascii_case(tenant) && c.client_id == client_id)
        .cloned()
    else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if field("client_secret") != Some(client.secret.as_str()) {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let ttl = st.config.graph.token_ttl_secs;
    let now = st.store.seq.now();
    let expires = now + chrono::TimeDelta::seconds(i64::try_from(ttl).unwrap_or(3599));
    // JWT-shaped (three dot-separated base64url parts) as Entra's are; clients must treat it
    // as opaque, the simulator only looks it up.
    let header = B64URL.encode(r#"{"typ":"JWT","alg":"none"}"#);
    let claims = serde_json::json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "tid": tenant,
        "appid": client_id,
        "roles": ["Calendars.ReadWrite", "Contacts.ReadWrite", "MailboxSettings.Read"],
        "iat": now.timestamp(),
        "exp": expires.timestamp(),
        "uti": uuid::Uuid::new_v4().to_string(),
    });
    let token = format!(
        "{header}.{}.{}",
        B64URL.encode(claims.to_string()),
        B64URL.encode(uuid::Uuid::new_v4().as_bytes())
    );
    st.graph.tokens.insert(
        token.clone(),
        IssuedToken {
            tenant: client.tenant.clone(),
            client_id: client.client_id.clone(),
            expires,
        },
    );
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": token,
    });
    (StatusCode::OK, body)
}
