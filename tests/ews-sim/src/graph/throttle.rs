//! Graph throttling, per mailbox as Outlook's limits are: at most `max_concurrent_per_mailbox`
//! requests in flight (more → `429 ApplicationThrottled` "MailboxConcurrency" with
//! `Retry-After: 1`), injected faults answered as Graph answers (429/503/504 with
//! `Retry-After`), and the announced `Retry-After` window: a request arriving inside it is a
//! `backoff_violation` (and is throttled again when `SimConfig::enforce_backoff`).

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::faults::FaultAction;
use crate::graph::endpoint::Outcome;
use crate::graph::error::GraphError;
use crate::graph::state::{RetryWindow, ThrottledResponse};
use crate::sim::SimHandle;
use crate::state::SimState;
use crate::store::Store;

/// The outcome of the pre-checks for one request.
pub enum Admission {
    /// Answer at once (throttled, back-off violation).
    Rejected(GraphError),
    Admitted {
        /// The mailbox key whose concurrency slot this request holds.
        slot: Option<String>,
        /// Injected delay before answering.
        delay: Duration,
        /// An injected answer, sent after the delay instead of running the handler.
        terminal: Option<GraphError>,
    },
}

/// Releases a concurrency slot when the request is done (also on cancellation).
pub struct SlotGuard {
    handle: SimHandle,
    key: Option<String>,
}

impl SlotGuard {
    pub fn new(handle: SimHandle, key: Option<String>) -> Self {
        SlotGuard { handle, key }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            let mut st = self.handle.lock();
            if let Some(n) = st.graph.in_flight.get_mut(&k) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

fn throttled(message: &str, secs: u64) -> GraphError {
    GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
        message,
    )
    .with_retry_after(secs)
}

/// Notes a throttling answer to `key` and opens its `Retry-After` window.
fn note(st: &mut SimState, key: &str, e: &GraphError, reason: &str) {
    let secs = e.retry_after.unwrap_or(0);
    // Concurrency answers open no window: the next request is fine once a slot is free.
    if secs > 0 && reason != "ApplicationThrottled" {
        let now = Instant::now();
        let until = now + Duration::from_secs(secs);
        let w = st
            .graph
            .retry_windows
            .entry(key.to_string())
            .or_insert(RetryWindow { until, opened: now });
        if until > w.until {
            *w = RetryWindow { until, opened: now };
        }
    }
    let time = st.store.seq.now();
    st.graph
        .throttled
        .entry(key.to_string())
        .or_default()
        .push(ThrottledResponse {
            time,
            status: e.status.as_u16(),
            retry_after_secs: secs,
            reason: reason.to_string(),
        });
}

fn status_for(code: &str) -> StatusCode {
    match code {
        "ErrorItemNotFound" | "ErrorInvalidUser" => StatusCode::NOT_FOUND,
        "ErrorIrresolvableConflict" => StatusCode::PRECONDITION_FAILED,
        "ErrorAccessDenied" => StatusCode::FORBIDDEN,
        "ErrorInvalidIdMalformed" | "BadRequest" => StatusCode::BAD_REQUEST,
        "ErrorServerBusy" | "ApplicationThrottled" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How an injected fault reads on Graph; `None` for delays.
pub fn fault_error(action: &FaultAction) -> Option<GraphError> {
    Some(match action {
        FaultAction::Delay { .. } => return None,
        FaultAction::ServerBusy { back_off_ms } => throttled(
            "Application is over its MailboxConcurrency limit.",
            back_off_ms.div_ceil(1000).max(1),
        ),
        FaultAction::Http503 { retry_after_secs } => {
            let e = GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service unavailable. Please retry later.",
            );
            match retry_after_secs {
                Some(s) => e.with_retry_after(*s),
                None => e,
            }
        }
        FaultAction::SoapFault { code, message } | FaultAction::ItemError { code, message, .. } => {
            GraphError::new(
                status_for(code),
                code,
                message
                    .clone()
                    .unwrap_or_else(|| format!("Injected {code}.")),
            )
        }
        FaultAction::HttpError {
            status,
            code,
            message,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = code.clone().unwrap_or_else(|| match status.as_u16() {
                429 => "ApplicationThrottled".into(),
                503 => "ServiceUnavailable".into(),
                504 => "GatewayTimeout".into(),
                _ => "InternalServerError".into(),
            });
            let e = GraphError::new(
                status,
                &code,
                message
                    .clone()
                    .unwrap_or_else(|| format!("Injected {code}.")),
            );
            match retry_after_secs {
                Some(s) => e.with_retry_after(*s),
                None => e,
            }
        }
    })
}

/// Back-off window, concurrency limit and injected faults for one request to `mailbox`
/// that the client sent at `sent` (a `$batch`'s inner requests all share the batch's time:
/// a sibling's 429 cannot make them violations).
pub fn admit(
    st: &mut SimState,
    mailbox: &str,
    operation: &str,
    sent: Instant,
    out: &mut Outcome,
) -> Admission {
    let key = Store::key(mailbox);
    let now = Instant::now();
    if let Some(w) = st.graph.retry_windows.get(&key).copied()
        && w.until > now
        && w.opened < sent
    {
        out.backoff_violation = true;
        if st.config.enforce_backoff {
            let secs = (w.until - now).as_secs_f64().ceil().max(1.0) as u64;
            let e = throttled(
                "Application is over its request limit for this mailbox; honour Retry-After.",
                secs,
            );
            note(st, &key, &e, "backoff_violation");
            return Admission::Rejected(e);
        }
    }
    let max = st.config.graph.max_concurrent_per_mailbox.max(1);
    let in_flight = st.graph.in_flight.get(&key).copied().unwrap_or(0);
    if in_flight >= max {
        let e = throttled("Application is over its MailboxConcurrency limit.", 1);
        note(st, &key, &e, "ApplicationThrottled");
        return Admission::Rejected(e);
    }
    *st.graph.in_flight.entry(key.clone()).or_default() += 1;
    let (delay, terminal, injected) = take_faults(st, Some(mailbox), operation);
    if !injected.is_empty() {
        out.injected = Some(injected.join("; "));
    }
    if let Some(e) = &terminal {
        note(st, &key, e, "injected");
    }
    Admission::Admitted {
        slot: Some(key),
        delay,
        terminal,
    }
}

/// Consumes the fault rules matching a Graph request: the summed delay, the first terminal
/// answer, and what was injected (for the log).
pub fn take_faults(
    st: &mut SimState,
    mailbox: Option<&str>,
    operation: &str,
) -> (Duration, Option<GraphError>, Vec<String>) {
    let mut delay = Duration::ZERO;
    let mut terminal = None;
    let mut injected = Vec::new();
    for rule in st.faults.iter_mut() {
        if !rule.matches_graph(mailbox, operation) {
            continue;
        }
        // Item errors on `$batch` address inner requests (see `batch`), not the batch; on
        // other operations only index 0 (the one item) means anything.
        if matches!(rule.action, FaultAction::ItemError { index, .. } if index > 0 || operation == "$batch")
        {
            continue;
        }
        rule.count -= 1;
        injected.push(format!("{:?}", rule.action));
        match &rule.action {
            FaultAction::Delay { ms } => delay += Duration::from_millis(*ms),
            action => {
                terminal = fault_error(action);
                break;
            }
        }
    }
    st.faults.retain(|r| r.count > 0);
    (delay, terminal, injected)
}
