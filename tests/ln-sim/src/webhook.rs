//! The LN push webhook (`docs/ln-api.md`, "LN push webhook"): while push is enabled for a
//! company, every create, change or delete of an activity or attendee is POSTed, signed, to the
//! company's configured endpoint.
//!
//! A company pushes when it has an endpoint (URL + secret, set with
//! [`crate::LnSim::enable_webhook`] or `POST /_sim/webhooks`) **and** its `Settings.pushEnabled`
//! is true, as in LN where the settings switch decides. Enabling sets `pushEnabled`, disabling
//! clears it and drops the endpoint; an admin `PUT` of the settings pauses and resumes pushes.
//! The store decides inside each write's lock (see [`crate::store::PushJob`]), so a write made
//! after `enable_webhook` returns is pushed and one made after `disable_webhook` returns is not,
//! with no race against a background task.
//!
//! The dispatcher task takes those jobs in write order and queues each on its company's worker;
//! a worker delivers one notification at a time, so a company's notifications arrive in write
//! order even when some are retried. Failures (no connection, timeout, any non-2xx including
//! redirects) are retried after `initial_backoff`, doubling, until [`WebhookRetry::attempts`] is
//! spent; then the notification is given up and logged. Re-configuring or disabling a company,
//! re-seeding it or a reset cancels its deliveries not yet made, so a test's failing endpoint
//! cannot keep later tests busy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::model::EntityKind;
use crate::store::{ChangeEvent, ChangeKind, PushJob, Store, WebhookEndpoint};

/// Header carrying `sha256=<hex HMAC-SHA256 of the raw body with the company's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Lnsync-Signature";
/// Header carrying the sending time in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Lnsync-Timestamp";

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRetry {
    /// Attempts per notification, the first included (0 is treated as 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled before each further one.
    pub initial_backoff: Duration,
    /// Limit for one attempt (connect, send, response headers).
    pub timeout: Duration,
}

impl Default for WebhookRetry {
    /// 4 attempts with 1 s, 2 s and 4 s between them; 10 s per attempt.
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookRetry {
    /// `attempts` attempts with `initial_backoff` before the first retry (tests use milliseconds).
    pub fn new(attempts: u32, initial_backoff: Duration) -> Self {
        Self {
            attempts,
            initial_backoff,
            ..Self::default()
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryOutcome {
    /// Queued, being attempted, or waiting for a retry.
    Pending,
    /// An attempt got a 2xx.
    Delivered,
    /// Every attempt failed.
    GaveUp,
    /// The company's endpoint was changed or removed (or the simulator reset) first.
    Cancelled,
}

/// One outgoing notification, in the log tests and `GET /_sim/webhooks/deliveries` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// 1, 2, 3… in order of the changes.
    pub seq: u64,
    pub company: String,
    pub url: String,
    pub entity: EntityKind,
    pub key: String,
    pub change: ChangeKind,
    /// The notification id (the body's `id`).
    pub id: String,
    /// The exact body posted (what the signature covers).
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// HTTP status of the latest attempt; None when it got no response.
    pub last_status: Option<u16>,
    /// Why the latest attempt failed without a response (connection refused, timeout…).
    pub last_error: Option<String>,
    pub outcome: DeliveryOutcome,
    /// When the change was queued and when it was last attempted (wall clock).
    pub queued_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// A company's webhook configuration and delivery counts (the secret is never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStatus {
    pub company: String,
    pub url: String,
    /// The company's `Settings.pushEnabled`; nothing is sent while it is false.
    pub push_enabled: bool,
    /// Notifications queued for this company (kept in the log, so cleared with it).
    pub deliveries: usize,
    pub delivered: usize,
    pub gave_up: usize,
    pub pending: usize,
    /// HTTP status of the most recent attempt to this company, if any got a response.
    pub last_status: Option<u16>,
}

/// The JSON body, field order as in `ln-api.md`. The company is not part of it: the endpoint URL
/// names the environment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    entity: EntityKind,
    key: &'a str,
    change: ChangeKind,
    last_modified: DateTime<Utc>,
    id: &'a str,
}

/// The signed body of `event` as LN posts it: `(body, signature header value)`.
pub fn render(event: &ChangeEvent, secret: &[u8]) -> Result<(Vec<u8>, String), serde_json::Error> {
    let body = serde_json::to_vec(&Body {
        entity: event.entity,
        key: &event.key,
        change: event.change,
        last_modified: event.last_modified,
        id: &event.id,
    })?;
    let signature = sign(secret, &body);
    Ok((body, signature))
}

/// `sha256=<lowercase hex HMAC-SHA256 of body>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length, so this cannot happen; an unsigned header fails closed.
        Err(_) => "sha256=".to_string(),
    }
}

/// A notification waiting for its worker.
#[derive(Debug)]
struct Job {
    seq: u64,
    company: String,
    url: String,
    generation: u64,
    body: Bytes,
    signature: String,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    log: Vec<WebhookDelivery>,
}

/// The delivery log and the HTTP client of the push webhook. Cloning shares them.
#[derive(Debug, Clone)]
pub(crate) struct Webhooks {
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    retry: WebhookRetry,
}

impl Webhooks {
    pub fn new(retry: WebhookRetry) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // A redirect counts as a failed delivery: silently re-posting a signed body to
            // wherever a response points would hide a misconfigured endpoint.
            .redirect(reqwest::redirect::Policy::none())
            // Endpoints are local test and demo listeners; a proxy from the environment would
            // only get in the way of reaching 127.0.0.1.
            .no_proxy()
            .timeout(retry.timeout)
            .build()?;
        Ok(Self {
            inner: Arc::default(),
            http,
            retry,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Updates are single assignments, so a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forget every delivery (part of a simulator reset; the endpoints go with the companies).
    pub fn reset(&self) {
        self.lock().log.clear();
    }

    /// The delivery log, in order of the changes.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().log.clone()
    }

    pub fn clear_deliveries(&self) {
        self.lock().log.clear();
    }

    /// Configuration and counts of every company with an endpoint.
    pub fn statuses(&self, store: &Store) -> Vec<WebhookStatus> {
        store
            .companies()
            .iter()
            .filter_map(|company| self.status(store, company))
            .collect()
    }

    /// Configuration and counts of `company`, if it has an endpoint.
    pub fn status(&self, store: &Store, company: &str) -> Option<WebhookStatus> {
        // Read the store first and let go of it: the two locks are never held together.
        let (endpoint, push_enabled) = store
            .read(company, |data| {
                (data.webhook.clone(), data.settings.data.push_enabled)
            })
            .ok()?;
        let endpoint = endpoint?;
        let inner = self.lock();
        let mine: Vec<&WebhookDelivery> =
            inner.log.iter().filter(|d| d.company == company).collect();
        let count = |outcome| mine.iter().filter(|d| d.outcome == outcome).count();
        Some(WebhookStatus {
            company: company.to_string(),
            url: endpoint.url,
            push_enabled,
            deliveries: mine.len(),
            delivered: count(DeliveryOutcome::Delivered),
            gave_up: count(DeliveryOutcome::GaveUp),
            pending: count(DeliveryOutcome::Pending),
            last_status: mine
                .iter()
                .filter(|d| d.last_attempt_at.is_some())
                .max_by_key(|d| (d.last_attempt_at, d.seq))
                .and_then(|d| d.last_status),
        })
    }

    /// Sign and log `job` as pending; None when it cannot be rendered (a bug, logged).
    fn prepare(&self, job: PushJob) -> Option<Job> {
        let PushJob { event, endpoint } = job;
        let WebhookEndpoint {
            url,
            secret,
            generation,
        } = endpoint;
        let (body, signature) = match render(&event, secret.as_bytes()) {
            Ok(rendered) => rendered,
            Err(error) => {
                tracing::error!(%error, id = %event.id, "cannot render an LN webhook body");
                return None;
            }
        };
        let mut inner = self.lock();
        inner.next_seq += 1;
        let seq = inner.next_seq;
        inner.log.push(WebhookDelivery {
            seq,
            company: event.company.clone(),
            url: url.clone(),
            entity: event.entity,
            key: event.key,
            change: event.change,
            id: event.id,
            body: String::from_utf8_lossy(&body).into_owned(),
            attempts: 0,
            last_status: None,
            last_error: None,
            outcome: DeliveryOutcome::Pending,
            queued_at: Utc::now(),
            last_attempt_at: None,
        });
        Some(Job {
            seq,
            company: event.company,
            url,
            generation,
            body: Bytes::from(body),
            signature,
        })
    }

    fn update(&self, seq: u64, f: impl FnOnce(&mut WebhookDelivery)) {
        let mut inner = self.lock();
        // The log is in seq order; a cleared entry is simply not updated any more.
        let at = inner.log.partition_point(|d| d.seq < seq);
        if let Some(delivery) = inner.log.get_mut(at).filter(|d| d.seq == seq) {
            f(delivery);
        }
    }

    /// Deliver one notification, retrying with back-off, and log the outcome.
    async fn deliver(&self, store: &Store, job: Job) {
        let attempts = self.retry.attempts.max(1);
        let mut backoff = self.retry.initial_backoff;
        for attempt in 1..=attempts {
            if !is_current(store, &job) {
                self.update(job.seq, |d| d.outcome = DeliveryOutcome::Cancelled);
                return;
            }
            let (status, error) = self.attempt(&job).await;
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            self.update(job.seq, |d| {
                d.attempts = attempt;
                d.last_status = status;
                d.last_error = error;
                d.last_attempt_at = Some(Utc::now());
                if delivered {
                    d.outcome = DeliveryOutcome::Delivered;
                }
            });
            if delivered {
                return;
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        tracing::warn!(
            company = %job.company,
            url = %job.url,
            seq = job.seq,
            attempts,
            "LN webhook given up"
        );
        self.update(job.seq, |d| d.outcome = DeliveryOutcome::GaveUp);
    }

    /// One POST: the response status, or why there was none.
    async fn attempt(&self, job: &Job) -> (Option<u16>, Option<String>) {
        // Real wall-clock seconds, not the SimClock: the receiver compares the timestamp with its
        // own clock to refuse replays, and a test's frozen or shifted simulated time would make
        // every notification look stale.
        let timestamp = Utc::now().timestamp().to_string();
        let sent = self
            .http
            .post(&job.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &job.signature)
            .header(TIMESTAMP_HEADER, timestamp)
            .body(job.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(error_chain(&error))),
        }
    }
}

/// Whether the endpoint `job` was queued for is still the company's.
fn is_current(store: &Store, job: &Job) -> bool {
    store
        .read(&job.company, |data| {
            data.webhook
                .as_ref()
                .is_some_and(|w| w.generation == job.generation)
        })
        .unwrap_or(false)
}

/// `reqwest`'s own message hides the cause ("error sending request"); the chain names it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Start the dispatcher: it owns the per-company workers, so aborting the returned task stops
/// every delivery too.
pub(crate) fn spawn(store: Store, hooks: Webhooks) -> JoinHandle<()> {
    let jobs = store.push_queue();
    tokio::spawn(dispatch(jobs, store, hooks))
}

async fn dispatch(mut jobs: mpsc::UnboundedReceiver<PushJob>, store: Store, hooks: Webhooks) {
    let mut queues: HashMap<String, mpsc::UnboundedSender<Job>> = HashMap::new();
    let mut workers = JoinSet::new();
    // Ends only when the store is gone, and this task holds the store: the owner aborts it.
    while let Some(job) = jobs.recv().await {
        let Some(job) = hooks.prepare(job) else {
            continue;
        };
        let queue = queues.entry(job.company.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            workers.spawn(work(rx, store.clone(), hooks.clone()));
            tx
        });
        // A worker only stops when its queue is dropped, which happens after this loop.
        let _ = queue.send(job);
    }
}

/// A company's worker: one delivery at a time, in order.
async fn work(mut jobs: mpsc::UnboundedReceiver<Job>, store: Store, hooks: Webhooks) {
    while let Some(job) = jobs.recv().await {
        hooks.deliver(&store, job).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_body_is_the_contract_json_without_the_company() -> Result<(), serde_json::Error> {
        let event = ChangeEvent {
            company: "100".into(),
            entity: EntityKind::Attendee,
            key: "ACT000123/10".into(),
            change: ChangeKind::Modified,
            last_modified: Utc
                .with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
                .single()
                .unwrap_or_default(),
            id: "0b6f".into(),
        };
        let (body, signature) = render(&event, b"s3cret")?;
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"entity":"Attendee","key":"ACT000123/10","change":"modified","lastModified":"2026-11-29T10:00:00Z","id":"0b6f"}"#
        );
        assert_eq!(signature, sign(b"s3cret", &body));
        Ok(())
    }

    #[test]
    fn sign_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
