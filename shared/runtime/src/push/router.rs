//! The push endpoint (R31, R33), independent of the HTTP server around it: the push Lambda
//! hands it function-URL events, `lnsync serve` hands it axum requests.
//!
//! Routes:
//! - `POST /ews/{environment}/{token}`: EWS `SendNotification` (SOAP 1.1). The token is the
//!   environment's push token; the subscription must be one we made. Item events become
//!   single-event jobs of the subscription's user; a status event only records that the
//!   subscription is alive. A subscription we no longer want (replaced, push turned off,
//!   environment stopped) is answered `Unsubscribe`, which ends it: EWS push has no other way.
//! - `POST /ln/{environment}`: the LN webhook, HMAC-signed with the environment's secret and
//!   timestamped (ln-api.md). Activity and attendee changes become single-event jobs whose
//!   owner the worker finds.
//! - `POST /graph/{environment}` and `POST /graph/{environment}/lifecycle`: Microsoft Graph
//!   change and lifecycle notifications, authenticated by `clientState` (see
//!   [`super::graph`]); both answer Graph's `validationToken` handshake.
//! - `GET /health`: liveness, for load balancers in front of `lnsync serve`.
//!
//! Every request is answered from the store and the queue only: no Exchange or LN call, so the
//! reply is fast and a slow mailbox cannot make Exchange give up on the endpoint. Anything that
//! cannot be authenticated or parsed is refused before anything is enqueued (R33, scenario 34):
//! oversized bodies 413, malformed bodies and XML with a DOCTYPE 400, unknown environments,
//! tokens and subscriptions 403 (a wrong Graph `clientState` too; notifications of Graph
//! subscriptions we no longer hold are acknowledged and dropped instead, see [`super::graph`]),
//! bad LN signatures or timestamps 401.

use super::graph::GraphRoute;
use crate::runner::error_chain;
use chrono::{DateTime, Utc};
use lnsync_adapters::ews::notify::{
    self, EventKind, Notification, NotificationEvent, SubscriptionStatus,
};
use lnsync_adapters::ln::webhook;
use lnsync_core::ids::{EnvironmentId, ExchangeItemId, JobId, UserId};
use lnsync_core::model::{Job, JobKind, PushSubscription};
use lnsync_core::ports::{Clock, JobQueue, StateStore};
use lnsync_core::secret::Secret;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The largest request body accepted (scenario 34). Real notifications are a few KiB: EWS
/// batches at most a few dozen events per request, an LN webhook is one small JSON object.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP request as the router needs it.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path without the query, as received (`/ews/prod/…`), after any prefix the server
    /// itself adds (a function URL has none).
    pub path: &'a str,
    /// The raw query string, without the `?` (Graph's `validationToken` handshake).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Looks a header up by name (case-insensitive, as HTTP headers are).
    pub header: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HttpResponse {
    pub(super) fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn soap(status: SubscriptionStatus) -> Self {
        Self {
            status: 200,
            content_type: "text/xml; charset=utf-8",
            body: notify::send_notification_result(status),
        }
    }
}

/// One environment as the push endpoint knows it.
#[derive(Debug, Clone, Default)]
pub struct PushEnvironment {
    /// The LN webhook's HMAC key; without it the environment's webhooks are refused.
    pub ln_webhook_secret: Option<Secret>,
}

/// The push endpoint over a store and a queue.
pub struct PushRouter {
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub environments: HashMap<EnvironmentId, PushEnvironment>,
}

/// Why a request was refused, as logged (the reply says less: no oracle for attackers).
pub(super) struct Refusal {
    status: u16,
    reason: String,
}

pub(super) fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

impl PushRouter {
    /// Handles one request; never fails, every problem is a status code.
    pub async fn handle(&self, req: &HttpRequest<'_>) -> HttpResponse {
        let segments: Vec<&str> = req
            .path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let result = match (req.method, segments.as_slice()) {
            ("GET", ["health"]) => return HttpResponse::text(200, "ok"),
            ("POST", ["ews", env, token]) => self.ews(req, env, token).await,
            ("POST", ["ln", env]) => self.ln(req, env).await,
            ("POST", ["graph", env]) => self.graph(req, env, GraphRoute::Notifications).await,
            ("POST", ["graph", env, "lifecycle"]) => {
                self.graph(req, env, GraphRoute::Lifecycle).await
            }
            (
                _,
                ["ews", _, _] | ["ln", _] | ["graph", _] | ["graph", _, "lifecycle"] | ["health"],
            ) => Err(refuse(405, "method not allowed")),
            _ => Err(refuse(404, "no such endpoint")),
        };
        match result {
            Ok(response) => response,
            Err(r) => {
                tracing::warn!(status = r.status, path = %loggable_path(req.path), reason = %r.reason, "push request refused");
                let text = match r.status {
                    400 => "bad request",
                    401 => "unauthorized",
                    403 => "forbidden",
                    404 => "not found",
                    405 => "method not allowed",
                    413 => "request body too large",
                    _ => "unavailable",
                };
                HttpResponse::text(r.status, text)
            }
        }
    }

    pub(super) fn environment(
        &self,
        env: &str,
    ) -> Result<(EnvironmentId, &PushEnvironment), Refusal> {
        let id = EnvironmentId::new(env);
        self.environments
            .get(&id)
            .map(|e| (id, e))
            .ok_or_else(|| refuse(403, format!("unknown environment {env:?}")))
    }

    pub(super) fn check_size(req: &HttpRequest<'_>) -> Result<(), Refusal> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(refuse(
                413,
                format!("{} bytes, more than {MAX_BODY_BYTES}", req.body.len()),
            ));
        }
        Ok(())
    }

    pub(super) async fn started(&self, env: &EnvironmentId) -> Result<bool, Refusal> {
        match self.store.environment(env).await {
            Ok(state) => Ok(state.is_some_and(|s| s.started)),
            Err(e) => Err(refuse(503, format!("state store: {}", error_chain(&e)))),
        }
    }

    // --- EWS -----------------------------------------------------------------------------

    async fn ews(
        &self,
        req: &HttpRequest<'_>,
        env: &str,
        token: &str,
    ) -> Result<HttpResponse, Refusal> {
        Self::check_size(req)?;
        let (env, _) = self.environment(env)?;
        let stored = self
            .store
            .push_token(&env)
            .await
            .map_err(|e| refuse(503, format!("state store: {}", error_chain(&e))))?;
        match stored {
            Some(stored) if same_secret(stored.as_bytes(), token.as_bytes()) => {}
            Some(_) => return Err(refuse(403, format!("wrong push token for {env}"))),
            None => return Err(refuse(403, format!("{env} has no push token"))),
        }
        let notifications =
            notify::parse_send_notification(req.body).map_err(|e| refuse(400, e.to_string()))?;
        if notifications.is_empty() {
            return Err(refuse(400, "SendNotification without notifications"));
        }
        // Every notification must belong to a subscription of ours before anything happens.
        let mut subs: Vec<(PushSubscription, &Notification)> = Vec::new();
        for n in &notifications {
            let sub = self
                .store
                .subscription(&env, &n.subscription)
                .await
                .map_err(|e| refuse(503, format!("state store: {}", error_chain(&e))))?
                .ok_or_else(|| refuse(403, format!("unknown subscription {}", n.subscription)))?;
            subs.push((sub, n));
        }
        if !self.started(&env).await? || subs.iter().any(|(s, _)| !s.active) {
            for (s, _) in &subs {
                tracing::info!(env = %env, user = %s.user, subscription = %s.id, "answering Unsubscribe");
            }
            return Ok(HttpResponse::soap(SubscriptionStatus::Unsubscribe));
        }
        let now = self.clock.now();
        // One job per item of the request, named after the item's last event here: the sync
        // re-reads the item, so a burst about one item needs one run.
        let mut latest: BTreeMap<(&lnsync_core::ids::UserId, &ExchangeItemId), &str> =
            BTreeMap::new();
        for (sub, n) in &subs {
            let previous = n.previous_watermark.as_deref().unwrap_or_default();
            for event in &n.events {
                if let Some(id) = event_target(event) {
                    latest.insert((&sub.user, id), event.watermark().unwrap_or(previous));
                }
            }
        }
        // Exchange always sends watermarks; without one, the time keeps later changes apart.
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let jobs: Vec<Job> = latest
            .into_iter()
            .map(|((user, id), watermark)| {
                let watermark = if watermark.is_empty() {
                    &stamp
                } else {
                    watermark
                };
                single_event_job(&env, user, id, watermark, now)
            })
            .collect();
        if !jobs.is_empty() {
            // Exchange retries an unanswered notification, so a queue outage loses nothing.
            self.queue
                .enqueue(&jobs)
                .await
                .map_err(|e| refuse(503, format!("job queue: {}", error_chain(&e))))?;
        }
        // Recorded after the jobs are durably queued: a resubscription from this watermark
        // skips these events, whose jobs exist (exchange.md §2.9: persist after its sync).
        for (sub, n) in &subs {
            let watermark = n.events.iter().rev().find_map(|e| e.watermark());
            if let Err(e) = self
                .store
                .touch_subscription(&env, &sub.id, now, watermark)
                .await
            {
                // Only the silence detection suffers: at worst the scheduler resubscribes.
                tracing::warn!(env = %env, subscription = %sub.id, error = %error_chain(&e), "could not record the notification");
            }
        }
        tracing::info!(env = %env, jobs = jobs.len(), notifications = notifications.len(), "EWS notification accepted");
        Ok(HttpResponse::soap(SubscriptionStatus::Ok))
    }

    // --- LN ------------------------------------------------------------------------------

    async fn ln(&self, req: &HttpRequest<'_>, env: &str) -> Result<HttpResponse, Refusal> {
        Self::check_size(req)?;
        let (env, config) = self.environment(env)?;
        let secret = config
            .ln_webhook_secret
            .as_ref()
            .ok_or_else(|| refuse(403, format!("no LN webhook secret is configured for {env}")))?;
        let signature = (req.header)(webhook::SIGNATURE_HEADER);
        let timestamp = (req.header)(webhook::TIMESTAMP_HEADER);
        // The timestamp is LN's wall clock, checked against ours: replay protection is about
        // real time, not the sync's clock (which tests may move).
        let hook = webhook::verify(
            secret.expose().as_bytes(),
            req.body,
            signature.as_deref(),
            timestamp.as_deref(),
            Utc::now(),
        )
        .map_err(|e| refuse(e.status(), format!("LN webhook for {env}: {e}")))?;
        let Some(activity) = hook.activity() else {
            // Contacts flow one way on the pull's schedule; nothing to do early.
            return Ok(HttpResponse::text(202, "ignored"));
        };
        if !self.started(&env).await? {
            return Ok(HttpResponse::text(202, "environment stopped"));
        }
        let now = self.clock.now();
        let job = Job {
            // The notification's own id: LN's retries of one notification are one job.
            id: hashed_id("ln", &[env.as_str(), &hook.id]),
            env: env.clone(),
            user: UserId::new(UserId::ANY),
            kind: JobKind::SingleEvent {
                exchange_id: None,
                activity: Some(activity.clone()),
            },
            enqueued_at: now,
        };
        self.queue
            .enqueue(std::slice::from_ref(&job))
            .await
            .map_err(|e| refuse(503, format!("job queue: {}", error_chain(&e))))?;
        tracing::info!(env = %env, activity = %activity, job_id = %job.id, "LN webhook accepted");
        Ok(HttpResponse::text(202, "accepted"))
    }
}

/// The calendar item an event is about, or `None` for events that need no sync.
///
/// A move names the item's old id: an item moved out of the calendar (deleted to Deleted Items)
/// is gone from the calendar's point of view, and its old id reads as not found, which is what
/// the single-event sync needs to see. An item moved *into* the calendar is left to the pull.
fn event_target(event: &NotificationEvent) -> Option<&ExchangeItemId> {
    match event {
        NotificationEvent::Item {
            kind: EventKind::Created | EventKind::Modified | EventKind::Deleted,
            item_id,
            ..
        } => Some(item_id),
        NotificationEvent::Item {
            kind: EventKind::Moved,
            item_id,
            old_item_id,
            ..
        } => Some(old_item_id.as_ref().unwrap_or(item_id)),
        _ => None,
    }
}

/// The job of one Exchange item, identified by the event's watermark: Exchange's redelivery of
/// an unanswered request carries the same watermarks and becomes the same job (the queue drops
/// the repeat), while every later change has a new watermark and so a new job. (An id per item
/// and second would lose the second of two edits made within one second: the queue drops a
/// repeated id for five minutes even after the first job ran.)
fn single_event_job(
    env: &EnvironmentId,
    user: &UserId,
    item: &ExchangeItemId,
    watermark: &str,
    now: DateTime<Utc>,
) -> Job {
    Job {
        id: hashed_id(
            "ews",
            &[env.as_str(), user.as_str(), item.as_str(), watermark],
        ),
        env: env.clone(),
        user: user.clone(),
        kind: JobKind::SingleEvent {
            exchange_id: Some(item.clone()),
            activity: None,
        },
        enqueued_at: now,
    }
}

/// A job id from parts that may be long or hold any character (item ids are base64): a prefix
/// and a SHA-256, well inside SQS's 128-character de-duplication id.
pub(super) fn hashed_id(prefix: &str, parts: &[&str]) -> JobId {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    JobId::new(format!("{prefix}-{}", hex::encode(h.finalize())))
}

/// Compares secrets in time independent of where they differ.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    // Hashing first makes the comparison length-independent too.
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The path with the token cut off, for logs (the token is a secret, R41).
fn loggable_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["ews", env, ..] => format!("/ews/{env}/…"),
        _ => path.chars().take(200).collect(),
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
pub(super) mod router_tests;
