//! The HTTP side: the EWS endpoint (`POST /EWS/Exchange.asmx`) with auth, impersonation,
//! anchor-mailbox, back-off and fault-injection checks in the order Exchange's front end
//! applies them, then operation dispatch and logging.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::net::TcpListener;

use crate::config::SimConfig;
use crate::faults::FaultAction;
use crate::log::{AuthKind, Direction, RequestRecord};
use crate::ops::{self, OpCtx};
use crate::sim::SimHandle;
use crate::soap::{self, EXCHANGE_VERSIONS, Fault, Impersonation};
use crate::state::{Backoff, SimState};
use crate::store::Store;

pub const EWS_PATH: &str = "/EWS/Exchange.asmx";

/// The full router: EWS endpoint plus the `/_sim/` admin API.
pub fn router(handle: SimHandle) -> Router {
    Router::new()
        .route(EWS_PATH, post(ews_endpoint))
        // Some clients use the lower-case path; IIS is case-insensitive.
        .route("/ews/exchange.asmx", post(ews_endpoint))
        .merge(crate::admin::routes())
        .merge(crate::graph::router())
        .with_state(handle)
}

/// Serves until `shutdown` resolves (listener and shutdown injected, as in mini-redis).
pub async fn serve(
    listener: TcpListener,
    handle: SimHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle))
        .with_graceful_shutdown(shutdown)
        .await
}

enum Outcome {
    Ok(String),
    Fault(StatusCode, Fault),
    Http503(Option<u64>),
    Unauthorized,
}

fn authenticate(cfg: &SimConfig, headers: &HeaderMap) -> AuthKind {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return AuthKind::None;
    };
    let value = value.trim();
    if let Some(b) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = B64
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        if let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            // Windows account names are case-insensitive, passwords are not.
            if cfg
                .credentials
                .iter()
                .any(|c| c.user.eq_ignore_ascii_case(user) && c.password == password)
            {
                return AuthKind::Basic {
                    user: user.to_string(),
                };
            }
        }
        return AuthKind::Rejected;
    }
    if let Some(t) = value.strip_prefix("Bearer ")
        && cfg.bearer_tokens.iter().any(|k| k == t.trim())
    {
        return AuthKind::Bearer;
    }
    AuthKind::Rejected
}

/// Work left after the pre-checks: what to dispatch, after which delay.
struct Pending {
    mailbox: String,
    item_faults: BTreeMap<usize, (String, String)>,
    delay: Duration,
    /// A terminal injected outcome, sent after the delay instead of dispatching.
    terminal: Option<Outcome>,
    server_version: Option<String>,
    time_zone_context: Option<String>,
    operation: crate::xml::Element,
}

/// Everything up to dispatch, under the state lock. `Err` is a final answer.
fn precheck(
    st: &mut SimState,
    rec: &mut RequestRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Pending, Outcome> {
    rec.auth = authenticate(&st.config, headers);
    if matches!(rec.auth, AuthKind::None | AuthKind::Rejected) {
        return Err(Outcome::Unauthorized);
    }
    let schema_fault = |m: String| {
        Outcome::Fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            Fault::new(
                "ErrorSchemaValidation",
                format!("The request failed schema validation: {m}"),
            ),
        )
    };
    let text =
        std::str::from_utf8(body).map_err(|e| schema_fault(format!("body is not UTF-8: {e}")))?;
    let root = crate::xml::parse(text).map_err(|e| schema_fault(e.to_string()))?;
    let req = soap::read_request(root).map_err(|(op, f)| {
        rec.operation = op;
        Outcome::Fault(StatusCode::INTERNAL_SERVER_ERROR, f)
    })?;
    rec.operation = Some(req.operation.name.clone());
    rec.item_count = ops::item_count(&req.operation);
    rec.server_version = req.server_version.clone();
    let fault = |code: &str, msg: String| {
        Outcome::Fault(StatusCode::INTERNAL_SERVER_ERROR, Fault::new(code, msg))
    };
    match req.server_version.as_deref() {
        None => {
            return Err(fault(
                "ErrorInvalidServerVersion",
                "The RequestServerVersion SOAP header is required by this server.".into(),
            ));
        }
        Some(v) if !EXCHANGE_VERSIONS.contains(&v) => {
            return Err(fault(
                "ErrorSchemaValidation",
                format!(
                    "The request failed schema validation: '{v}' is not a valid ExchangeVersionType."
                ),
            ));
        }
        Some(_) => {}
    }

    // Target mailbox: impersonated, or the caller's own.
    let mailbox = match &req.impersonation {
        Some(Impersonation::Smtp(addr)) | Some(Impersonation::Other(addr)) => {
            rec.mailbox = Some(addr.clone());
            if !st.store.has_mailbox(addr) {
                return Err(fault(
                    "ErrorNonExistentMailbox",
                    format!("The SMTP address has no mailbox associated with it: {addr}"),
                ));
            }
            if let Some(allowed) = &st.config.allowed_impersonation
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(addr))
            {
                return Err(fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user."
                        .into(),
                ));
            }
            // Exchange routes by X-AnchorMailbox; without it (or with a different one) the
            // request may land on the wrong back end and fail intermittently.
            if st.config.strict_anchor
                && !rec
                    .anchor_mailbox
                    .as_deref()
                    .is_some_and(|a| a.trim().eq_ignore_ascii_case(addr))
            {
                return Err(fault(
                    "ErrorInternalServerTransientError",
                    format!(
                        "An internal server error occurred. The operation failed. (X-AnchorMailbox {:?} does not match the impersonated mailbox {addr})",
                        rec.anchor_mailbox
                    ),
                ));
            }
            addr.clone()
        }
        None => {
            let own = match &rec.auth {
                AuthKind::Basic { user } => st
                    .config
                    .credentials
                    .iter()
                    .find(|c| c.user.eq_ignore_ascii_case(user))
                    .and_then(|c| c.mailbox.clone())
                    .or_else(|| user.contains('@').then(|| user.clone())),
                _ => None,
            };
            match own {
                Some(m) if st.store.has_mailbox(&m) => {
                    rec.mailbox = Some(m.clone());
                    m
                }
                _ => {
                    return Err(fault(
                        "ErrorNonExistentMailbox",
                        "The caller has no mailbox on this server and no ExchangeImpersonation header was sent.".into(),
                    ));
                }
            }
        }
    };
    let key = Store::key(&mailbox);
    let now = Instant::now();

    // A client that ignores BackOffMilliseconds gets throttled again, and we count it.
    if st.config.enforce_backoff
        && let Some(b) = st.backoff.get(&key).copied()
        && b.until > now
    {
        let remaining = (b.until - now).as_millis().max(1) as u64;
        rec.backoff_violation = true;
        st.throttled
            .entry(key.clone())
            .or_default()
            .push((chrono::Utc::now(), remaining));
        return Err(Outcome::Fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            Fault::server_busy(remaining),
        ));
    }

    let op_name = req.operation.name.clone();
    let mut pending = Pending {
        mailbox,
        item_faults: BTreeMap::new(),
        delay: Duration::ZERO,
        terminal: None,
        server_version: req.server_version.clone(),
        time_zone_context: req.time_zone_context.clone(),
        operation: req.operation,
    };
    let mut injected = Vec::new();
    for rule in st.faults.iter_mut() {
        if !rule.matches(Some(&pending.mailbox), &op_name) {
            continue;
        }
        rule.count -= 1;
        injected.push(format!("{:?}", rule.action));
        match &rule.action {
            FaultAction::Delay { ms } => pending.delay += Duration::from_millis(*ms),
            FaultAction::ItemError {
                index,
                code,
                message,
            } => {
                pending.item_faults.insert(
                    *index,
                    (
                        code.clone(),
                        message
                            .clone()
                            .unwrap_or_else(|| format!("Injected {code}.")),
                    ),
                );
            }
            FaultAction::ServerBusy { back_off_ms } => {
                st.backoff.insert(
                    key.clone(),
                    Backoff {
                        until: now + Duration::from_millis(*back_off_ms),
                    },
                );
                st.throttled
                    .entry(key.clone())
                    .or_default()
                    .push((chrono::Utc::now(), *back_off_ms));
                pending.terminal = Some(Outcome::Fault(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Fault::server_busy(*back_off_ms),
                ));
                break;
            }
            FaultAction::Http503 { retry_after_secs } => {
                pending.terminal = Some(Outcome::Http503(*retry_after_secs));
                break;
            }
            // Graph-only; `matches` never selects it for EWS.
            FaultAction::HttpError { .. } => {}
            FaultAction::SoapFault { code, message } => {
                pending.terminal = Some(Outcome::Fault(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Fault::new(
                        code,
                        message
                            .clone()
                            .unwrap_or_else(|| format!("Injected {code}.")),
                    ),
                ));
                break;
            }
        }
    }
    st.faults.retain(|r| r.count > 0);
    if !injected.is_empty() {
        rec.injected = Some(injected.join("; "));
    }
    Ok(pending)
}

async fn ews_endpoint(
    State(handle): State<SimHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = RequestRecord {
        seq: 0,
        direction: Direction::Incoming,
        time: chrono::Utc::now(),
        mailbox: None,
        anchor_mailbox: headers
            .get("X-AnchorMailbox")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        auth: AuthKind::None,
        server_version: None,
        operation: None,
        item_count: 0,
        http_status: 200,
        response_codes: Vec::new(),
        fault_code: None,
        injected: None,
        backoff_violation: false,
        body: String::from_utf8_lossy(&body).into_owned(),
        push: None,
        ..RequestRecord::default()
    };
    let pre = {
        let mut st = handle.lock();
        st.next_request_seq += 1;
        rec.seq = st.next_request_seq;
        precheck(&mut st, &mut rec, &headers, &body)
    };
    let outcome = match pre {
        Err(o) => o,
        Ok(p) => {
            if !p.delay.is_zero() {
                tokio::time::sleep(p.delay).await;
            }
            match p.terminal {
                Some(o) => o,
                None => {
                    let mut st = handle.lock();
                    let ctx = OpCtx {
                        mailbox: &p.mailbox,
                        item_faults: &p.item_faults,
                        server_version: p.server_version.as_deref(),
                        time_zone_context: p.time_zone_context.as_deref(),
                    };
                    match ops::dispatch(&mut st, &ctx, &p.operation) {
                        Ok(out) => {
                            rec.response_codes = out.codes;
                            Outcome::Ok(out.xml)
                        }
                        Err(f) => Outcome::Fault(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            Fault::new(f.code, f.message),
                        ),
                    }
                }
            }
        }
    };
    let response = match outcome {
        Outcome::Ok(xml) => xml_response(StatusCode::OK, soap::envelope(&xml)),
        Outcome::Fault(status, f) => {
            rec.fault_code = Some(f.code.clone());
            xml_response(status, soap::fault_envelope(&f))
        }
        Outcome::Http503(retry) => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Service Unavailable</h1><p>HTTP Error 503. The service is unavailable.</p></body></html>",
            )
                .into_response();
            if let Some(s) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, s);
            }
            r
        }
        Outcome::Unauthorized => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "401 - Unauthorized: Access is denied due to invalid credentials.",
            )
                .into_response();
            let h = r.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ews-sim\""),
            );
            h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    };
    rec.http_status = response.status().as_u16();
    tracing::debug!(seq = rec.seq, op = ?rec.operation, status = rec.http_status, "ews request");
    handle.lock().log.push(rec);
    response
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}
