//! The HTTP server: configuration, the [`LnSim`] handle tests hold, the router, the token
//! endpoint, and the middleware that logs requests and injects faults.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::auth::{Credentials, IonApiFile, TokenRequest, TokenStore};
use crate::clock::SimClock;
use crate::error::{ODataError, SimError};
use crate::faults::{FaultAction, FaultRule, FaultTarget, Faults};
use crate::log::{RequestKind, RequestLog, RequestRecord};
use crate::seed::Seed;
use crate::store::{ChangeEvent, Store, StoreError};
use crate::webhook::{WebhookDelivery, WebhookRetry, WebhookStatus, Webhooks};
use crate::{admin, odata, webhook};

/// Header carrying the LN company.
pub const COMPANY_HEADER: &str = "x-infor-lncompany";

/// Path of the OData service below `/{tenant}`.
pub const SERVICE_PATH: &str = "LN/lnapi/odata/lnsync";

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub credentials: Credentials,
    /// Lifetime of issued tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Page size when the client sends no `odata.maxpagesize`.
    pub default_page_size: usize,
    /// Upper bound for `odata.maxpagesize` (larger requests are cut to this).
    pub max_page_size: usize,
    pub clock: SimClock,
    /// Data loaded at start.
    pub seed: Seed,
    /// Retries of failed push webhook deliveries.
    pub webhook_retry: WebhookRetry,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            token_lifetime: Duration::from_secs(3600),
            default_page_size: 200,
            max_page_size: 1000,
            clock: SimClock::system(),
            seed: Seed::default(),
            webhook_retry: WebhookRetry::default(),
        }
    }
}

impl SimConfig {
    pub fn with_seed(mut self, seed: Seed) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_page_size(mut self, default: usize) -> Self {
        self.default_page_size = default;
        self
    }

    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    pub fn with_clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_webhook_retry(mut self, retry: WebhookRetry) -> Self {
        self.webhook_retry = retry;
        self
    }
}

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub tokens: TokenStore,
    pub faults: Faults,
    pub log: RequestLog,
    pub webhooks: Webhooks,
    pub config: Arc<SimConfig>,
    pub base_url: Arc<str>,
}

impl AppState {
    pub fn service_root(&self) -> String {
        format!(
            "{}/{}/{SERVICE_PATH}/",
            self.base_url, self.config.credentials.tenant
        )
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct LnSim {
    state: AppState,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The push webhook dispatcher (and, owned by it, the delivery workers).
    webhook_task: Option<JoinHandle<()>>,
}

impl LnSim {
    /// Start on 127.0.0.1 with a free port.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        // A wildcard bind is reachable via loopback; advertise that rather than 0.0.0.0.
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let base_url: Arc<str> = format!("http://{host}:{}", addr.port()).into();
        let store = Store::new(config.clock.clone());
        store.seed(&config.seed)?;
        let webhooks = Webhooks::new(config.webhook_retry).map_err(SimError::WebhookClient)?;
        // Attached before anything can write, so no change escapes the webhook.
        let webhook_task = webhook::spawn(store.clone(), webhooks.clone());
        let state = AppState {
            store,
            tokens: TokenStore::new(config.credentials.clone(), config.token_lifetime),
            faults: Faults::default(),
            log: RequestLog::default(),
            webhooks,
            config: Arc::new(config),
            base_url,
        };
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "ln-sim server stopped");
            }
        });
        Ok(Self {
            state,
            addr,
            shutdown: Some(tx),
            task: Some(task),
            webhook_task: Some(webhook_task),
        })
    }

    /// Stop the server and wait for it to finish.
    pub async fn shutdown(mut self) {
        self.stop_webhooks();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Wait until the server stops (used by the binary together with a signal).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stop_webhooks();
    }

    /// The dispatcher holds the store (and so the change channel) itself and would never see
    /// the channel close; it has to be stopped explicitly.
    fn stop_webhooks(&mut self) {
        if let Some(task) = self.webhook_task.take() {
            task.abort();
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (the `.ionapi` `iu`).
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// `{base}/{tenant}/LN/lnapi/odata/lnsync/`.
    pub fn service_root(&self) -> String {
        self.state.service_root()
    }

    /// `{base}/as/token.oauth2`.
    pub fn token_url(&self) -> String {
        format!("{}/as/token.oauth2", self.state.base_url)
    }

    pub fn credentials(&self) -> &Credentials {
        &self.state.config.credentials
    }

    /// The `.ionapi` file for this server.
    pub fn ionapi(&self) -> IonApiFile {
        IonApiFile::for_server(&self.state.config.credentials, &self.state.base_url)
    }

    /// Write the `.ionapi` file to `path`.
    pub fn write_ionapi(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.ionapi().to_json()).map_err(|source| SimError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Direct access to the data (edits behave like edits in LN).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn clock(&self) -> &SimClock {
        self.state.store.clock()
    }

    /// Replace the named companies' data.
    pub fn seed(&self, seed: &Seed) -> Result<(), SimError> {
        Ok(self.state.store.seed(seed)?)
    }

    /// Drop all data, fault rules, webhook endpoints and deliveries, and the request log (tokens
    /// stay valid).
    pub fn reset(&self) {
        reset(&self.state);
    }

    /// Every change to contacts, activities and attendees from now on.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<ChangeEvent> {
        self.state.store.subscribe()
    }

    /// Push `company`'s activity and attendee changes to `url` (the full endpoint, e.g.
    /// `http://127.0.0.1:8787/ln/prod`), signed with `secret`; sets its `pushEnabled`. Replaces
    /// an earlier endpoint and cancels deliveries still queued for it.
    ///
    /// Exact with respect to writes: every write after this returns is pushed, none before it.
    /// Seeding the company anew drops the endpoint together with the settings.
    pub fn enable_webhook(&self, company: &str, url: &str, secret: &str) -> Result<(), StoreError> {
        self.state.store.enable_webhook(company, url, secret)
    }

    /// Stop pushing for `company`: drops its endpoint (cancelling queued deliveries) and clears
    /// its `pushEnabled`.
    pub fn disable_webhook(&self, company: &str) -> Result<(), StoreError> {
        self.state.store.disable_webhook(company)
    }

    /// `company`'s endpoint and delivery counts, when it has an endpoint.
    pub fn webhook_status(&self, company: &str) -> Option<WebhookStatus> {
        self.state.webhooks.status(&self.state.store, company)
    }

    /// Every outgoing notification since start (or the last clear), in order of the changes.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state.webhooks.deliveries()
    }

    pub fn clear_webhook_deliveries(&self) {
        self.state.webhooks.clear_deliveries();
    }

    /// Add a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.state.faults.add(rule)
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Invalidate all issued tokens.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Tokens issued since start.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens.issued_count()
    }

    /// The request log, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.records()
    }

    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// Count logged requests matching `predicate`.
    pub fn count(&self, predicate: impl Fn(&RequestRecord) -> bool) -> usize {
        self.state.log.count(predicate)
    }

    /// Count logged data requests (`GET`, `POST`, …) to an entity set.
    pub fn count_calls(&self, method: &str, entity_set: &str) -> usize {
        self.count(|r| r.method == method && r.is_set(entity_set))
    }

    /// Count token requests.
    pub fn count_token_calls(&self) -> usize {
        self.count(|r| r.kind == RequestKind::Token)
    }
}

impl Drop for LnSim {
    fn drop(&mut self) {
        self.stop_webhooks();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn reset(state: &AppState) {
    state.webhooks.reset();
    state.store.reset();
    state.faults.clear();
    state.log.clear();
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/as/token.oauth2", post(token))
        .route("/{tenant}/as/token.oauth2", post(token))
        .nest("/_sim", admin::router())
        .fallback(odata::handle)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Observations a handler leaves for the request log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notes(pub Vec<String>);

/// Where a request is going, as far as logging and fault matching care.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub kind: Option<RequestKind>,
    pub entity_set: Option<String>,
    pub key: Option<String>,
}

fn classify(state: &AppState, path: &str) -> Target {
    if path == "/_sim" || path.starts_with("/_sim/") {
        return Target::default();
    }
    if path.ends_with("/as/token.oauth2") {
        return Target {
            kind: Some(RequestKind::Token),
            ..Target::default()
        };
    }
    match odata::parse_resource(state, path) {
        Some(resource) => Target {
            kind: Some(RequestKind::Data),
            entity_set: resource.entity_set_name().map(str::to_string),
            key: resource.key_text().map(str::to_string),
        },
        None => Target {
            kind: Some(RequestKind::Other),
            ..Target::default()
        },
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Log every non-admin request and apply injected faults before the handler runs.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = odata::percent_decode(request.uri().path());
    let target = classify(&state, &path);
    let Some(kind) = target.kind else {
        return next.run(request).await;
    };
    let seq = state.log.next_seq();
    let started = Instant::now();
    let time = Utc::now();
    let method = request.method().to_string();
    let headers = request.headers();
    let mut record = RequestRecord {
        seq,
        time,
        duration_ms: 0,
        method: method.clone(),
        path,
        query: request.uri().query().map(str::to_string),
        kind,
        entity_set: target.entity_set.clone(),
        key: target.key.clone(),
        company: header_str(headers, COMPANY_HEADER),
        if_match: header_str(headers, "if-match"),
        prefer: header_str(headers, "prefer"),
        authorization: headers.contains_key(header::AUTHORIZATION),
        status: 0,
        fault: None,
        notes: Vec::new(),
    };

    let fault = state.faults.take(&FaultTarget {
        method: &method,
        entity_set: target.entity_set.as_deref(),
        company: record.company.as_deref(),
        is_token: kind == RequestKind::Token,
    });
    let response = match fault {
        Some(FaultAction::Delay { ms }) => {
            record.fault = Some(format!("delay {ms}ms"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Some(FaultAction::Throttle {
            status,
            retry_after_secs,
        }) => {
            record.fault = Some(format!("throttle {status} retry-after {retry_after_secs}s"));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
                (
                    "ServiceUnavailable",
                    "The service is temporarily unavailable",
                )
            } else {
                ("TooManyRequests", "Rate limit exceeded; retry later")
            };
            ODataError::new(status, code, message)
                .with_header(header::RETRY_AFTER, retry_after_secs.to_string())
                .into_response()
        }
        Some(FaultAction::Error { status, message }) => {
            record.fault = Some(format!("error {status}"));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ODataError::new(
                status,
                "InternalServerError",
                message.unwrap_or_else(|| "Injected failure".to_string()),
            )
            .into_response()
        }
        None => next.run(request).await,
    };

    record.status = response.status().as_u16();
    record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(notes) = response.extensions().get::<Notes>() {
        record.notes = notes.0.clone();
    }
    state.log.push(record);
    response
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// `POST /as/token.oauth2`: OAuth 2.0 password grant.
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = TokenRequest::default();
    for (k, v) in url::form_urlencoded::parse(&body) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "grant_type" => request.grant_type = v,
            "username" => request.username = v,
            "password" => request.password = v,
            "client_id" => request.client_id = v,
            "client_secret" => request.client_secret = v,
            _ => {}
        }
    }
    match state.tokens.issue(&request, basic_credentials(&headers)) {
        Ok(token) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "access_token": token.access_token,
                "token_type": token.token_type,
                "expires_in": token.expires_in,
            })),
        )
            .into_response(),
        Err(error) => {
            let status = match error {
                crate::auth::TokenError::UnsupportedGrantType => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            (
                status,
                axum::Json(
                    json!({"error": error.code(), "error_description": error.description()}),
                ),
            )
                .into_response()
        }
    }
}

/// Build a response with a body and the OData headers.
pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;odata.metadata=minimal;charset=utf-8"),
    );
    headers.insert(
        HeaderName::from_static("odata-version"),
        header::HeaderValue::from_static("4.0"),
    );
    response
}

/// An empty response (204) with the OData version header.
pub(crate) fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        HeaderName::from_static("odata-version"),
        header::HeaderValue::from_static("4.0"),
    );
    response
}
