//! The Graph routes of the push endpoint (exchange.md §3.7, R31–R33).
//!
//! - `POST /graph/{env}?validationToken=…` and `POST /graph/{env}/lifecycle?validationToken=…`:
//!   Graph's handshake when a subscription is created (and now and then later). Answered
//!   `200 text/plain` with the decoded token, from configuration alone: no store read, no LN or
//!   Exchange call, so it is well inside Graph's 10 s even on a cold start.
//! - `POST /graph/{env}`: change notifications. Each entry's `clientState` must be the
//!   environment's push token, or the whole request is refused (403) and nothing is queued.
//!   Entries of subscriptions that are not active Graph subscriptions of the environment are
//!   acknowledged and dropped: a retired subscription lives on at Graph until it is deleted or
//!   expires, and refusing its notifications would only make Graph retry them for hours and
//!   then throttle the endpoint for everyone. Every other entry becomes a single-event job of
//!   the subscription's user; the reply (202) follows the enqueue.
//! - `POST /graph/{env}/lifecycle`: `reauthorizationRequired` → a `Subscribe` job (which renews);
//!   `subscriptionRemoved` → the subscription is marked inactive, and a `Subscribe` job and a
//!   calendar pull are queued; `missed` → a calendar pull. Same `clientState` rule.
//!
//! A job's id is derived from what identifies the notification, so Graph's redelivery of an
//! unanswered request becomes the same job (the queue drops the repeat) while a later change
//! (a new `@odata.etag`) is a new job.

use super::router::{
    HttpRequest, HttpResponse, PushRouter, Refusal, hashed_id, refuse, same_secret,
};
use crate::runner::error_chain;
use chrono::{DateTime, Utc};
use lnsync_core::ids::{EnvironmentId, ExchangeItemId, SubscriptionId};
use lnsync_core::model::{ExchangeBackend, Job, JobKind, PushSubscription};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The longest `validationToken` echoed. Graph's are about 100 characters; anything far longer
/// is not Graph, and echoing it would make the endpoint an amplifier.
pub const MAX_VALIDATION_TOKEN: usize = 1024;

/// Which of the two Graph URLs a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphRoute {
    /// `notificationUrl`: change notifications.
    Notifications,
    /// `lifecycleNotificationUrl`: lifecycle notifications.
    Lifecycle,
}

// ---- the payloads --------------------------------------------------------------------------
//
// Typed and strict about what lnsync reads (a missing or mistyped field is a 400), lenient about
// what it does not: Graph adds properties to these payloads over time (`tenantId`,
// `encryptedContent`, …), and refusing one would make Graph retry, then drop, every
// notification.

#[derive(Debug, Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

/// One `changeNotification` (Outlook's shape: no resource data beyond the ids).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeNotification {
    subscription_id: String,
    /// Absent only for subscriptions made without one, which lnsync never makes.
    #[serde(default)]
    client_state: Option<String>,
    change_type: ChangeType,
    resource_data: ResourceData,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResourceData {
    /// The event's id (immutable: lnsync subscribes with `Prefer: IdType="ImmutableId"`).
    id: String,
    /// The event's version; Graph may leave it out of a deletion.
    #[serde(rename = "@odata.etag", default)]
    etag: Option<String>,
}

/// One lifecycle notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleNotification {
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
    /// `reauthorizationRequired`, `subscriptionRemoved`, `missed`; Graph's enum also has
    /// `unknownFutureValue`, so an unknown value is acknowledged and ignored, not refused.
    lifecycle_event: String,
    #[serde(default)]
    subscription_expiration_date_time: Option<String>,
}

/// What an entry carries that authenticates it.
trait Authenticated {
    fn client_state(&self) -> Option<&str>;
    fn subscription(&self) -> &str;
}

impl Authenticated for ChangeNotification {
    fn client_state(&self) -> Option<&str> {
        self.client_state.as_deref()
    }
    fn subscription(&self) -> &str {
        &self.subscription_id
    }
}

impl Authenticated for LifecycleNotification {
    fn client_state(&self) -> Option<&str> {
        self.client_state.as_deref()
    }
    fn subscription(&self) -> &str {
        &self.subscription_id
    }
}

/// The decoded `validationToken` of a handshake, or `None` for a notification.
fn validation_token(query: Option<&str>) -> Result<Option<String>, Refusal> {
    let Some(query) = query else {
        return Ok(None);
    };
    let Some((_, token)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "validationToken")
    else {
        return Ok(None);
    };
    if token.chars().count() > MAX_VALIDATION_TOKEN {
        return Err(refuse(
            400,
            format!("validationToken longer than {MAX_VALIDATION_TOKEN} characters"),
        ));
    }
    if token.chars().any(char::is_control) {
        return Err(refuse(400, "validationToken with control characters"));
    }
    Ok(Some(token.into_owned()))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Vec<T>, Refusal> {
    let collection: Collection<T> = serde_json::from_slice(body)
        .map_err(|e| refuse(400, format!("malformed Graph notification: {e}")))?;
    if collection.value.is_empty() {
        return Err(refuse(400, "Graph notification without entries"));
    }
    Ok(collection.value)
}

impl PushRouter {
    /// Both Graph URLs (see the module docs).
    pub(super) async fn graph(
        &self,
        req: &HttpRequest<'_>,
        env: &str,
        route: GraphRoute,
    ) -> Result<HttpResponse, Refusal> {
        Self::check_size(req)?;
        let (env, _) = self.environment(env)?;
        if let Some(token) = validation_token(req.query)? {
            tracing::info!(env = %env, route = ?route, "Graph validation handshake answered");
            return Ok(HttpResponse::text(200, token));
        }
        match route {
            GraphRoute::Notifications => self.graph_changes(req, &env).await,
            GraphRoute::Lifecycle => self.graph_lifecycle(req, &env).await,
        }
    }

    /// Every entry must carry the environment's push token as `clientState`, or nothing is
    /// done for any of them (403).
    async fn check_client_states(
        &self,
        env: &EnvironmentId,
        entries: &[impl Authenticated],
    ) -> Result<(), Refusal> {
        let token = self
            .store
            .push_token(env)
            .await
            .map_err(|e| refuse(503, format!("state store: {}", error_chain(&e))))?
            .ok_or_else(|| refuse(403, format!("{env} has no push token")))?;
        // Every entry is compared, so the time taken does not tell which one was wrong.
        let wrong = entries
            .iter()
            .filter(|e| {
                !e.client_state()
                    .is_some_and(|s| same_secret(s.as_bytes(), token.as_bytes()))
            })
            .count();
        if wrong > 0 {
            return Err(refuse(
                403,
                format!(
                    "{wrong} of {} Graph notifications for {env} carry a wrong or no clientState",
                    entries.len()
                ),
            ));
        }
        Ok(())
    }

    /// The active Graph subscriptions of `env` among the entries'; the others are logged and
    /// left out (acknowledged and dropped).
    async fn graph_subscriptions(
        &self,
        env: &EnvironmentId,
        entries: &[impl Authenticated],
    ) -> Result<BTreeMap<String, PushSubscription>, Refusal> {
        let ids: BTreeSet<&str> = entries.iter().map(Authenticated::subscription).collect();
        let mut known = BTreeMap::new();
        for id in ids {
            let sub = self
                .store
                .subscription(env, &SubscriptionId::new(id))
                .await
                .map_err(|e| refuse(503, format!("state store: {}", error_chain(&e))))?;
            match sub {
                Some(s) if s.active && s.backend == ExchangeBackend::Graph => {
                    known.insert(id.to_owned(), s);
                }
                other => {
                    tracing::info!(
                        env = %env, subscription = %id, known = other.is_some(),
                        "Graph notification of a subscription lnsync does not hold; dropped"
                    );
                }
            }
        }
        Ok(known)
    }

    async fn graph_changes(
        &self,
        req: &HttpRequest<'_>,
        env: &EnvironmentId,
    ) -> Result<HttpResponse, Refusal> {
        let entries: Vec<ChangeNotification> = parse(req.body)?;
        if entries.iter().any(|e| e.resource_data.id.trim().is_empty()) {
            return Err(refuse(400, "Graph notification without a resource id"));
        }
        self.check_client_states(env, &entries).await?;
        if !self.started(env).await? {
            tracing::info!(env = %env, "Graph notification for a stopped environment; dropped");
            return Ok(HttpResponse::text(202, "environment stopped"));
        }
        let subs = self.graph_subscriptions(env, &entries).await?;
        let now = self.clock.now();
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        for e in &entries {
            let Some(sub) = subs.get(&e.subscription_id) else {
                continue;
            };
            let id = hashed_id(
                "graph",
                &[
                    env.as_str(),
                    &e.subscription_id,
                    &e.resource_data.id,
                    e.change_type.as_str(),
                    e.resource_data.etag.as_deref().unwrap_or_default(),
                ],
            );
            jobs.entry(id.as_str().to_owned()).or_insert_with(|| Job {
                id,
                env: env.clone(),
                user: sub.user.clone(),
                kind: JobKind::SingleEvent {
                    exchange_id: Some(ExchangeItemId::new(e.resource_data.id.clone())),
                    activity: None,
                },
                enqueued_at: now,
            });
        }
        let jobs: Vec<Job> = jobs.into_values().collect();
        self.enqueue(&jobs).await?;
        self.touch(env, subs.values(), now).await;
        tracing::info!(env = %env, jobs = jobs.len(), notifications = entries.len(), "Graph notification accepted");
        Ok(HttpResponse::text(202, "accepted"))
    }

    async fn graph_lifecycle(
        &self,
        req: &HttpRequest<'_>,
        env: &EnvironmentId,
    ) -> Result<HttpResponse, Refusal> {
        let entries: Vec<LifecycleNotification> = parse(req.body)?;
        self.check_client_states(env, &entries).await?;
        if !self.started(env).await? {
            tracing::info!(env = %env, "Graph lifecycle notification for a stopped environment; dropped");
            return Ok(HttpResponse::text(202, "environment stopped"));
        }
        let subs = self.graph_subscriptions(env, &entries).await?;
        let now = self.clock.now();
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        let mut removed: Vec<&PushSubscription> = Vec::new();
        for e in &entries {
            let Some(sub) = subs.get(&e.subscription_id) else {
                continue;
            };
            let kinds: &[JobKind] = match e.lifecycle_event.as_str() {
                // The Subscribe job renews a live subscription (PATCH), which reauthorizes it.
                "reauthorizationRequired" => &[JobKind::Subscribe],
                "subscriptionRemoved" => {
                    removed.push(sub);
                    &[JobKind::Subscribe, JobKind::CalendarPull]
                }
                // Notifications were lost: the pull reads every change since its own cursor.
                "missed" => &[JobKind::CalendarPull],
                other => {
                    tracing::info!(env = %env, subscription = %sub.id, event = %other, "unknown Graph lifecycle event; ignored");
                    &[]
                }
            };
            for kind in kinds {
                let job = lifecycle_job(env, sub, kind, e, now);
                jobs.entry(job.id.as_str().to_owned()).or_insert(job);
            }
        }
        let jobs: Vec<Job> = jobs.into_values().collect();
        self.enqueue(&jobs).await?;
        // After the jobs are durably queued: were this refused (queue down), Graph's retry
        // must still find the subscription active, or its jobs would never be queued. The
        // Subscribe job may run first; it then finds Graph no longer knows the subscription
        // and makes a new one all the same.
        for sub in &removed {
            let gone = PushSubscription {
                active: false,
                // Gone at Graph: nothing left to delete there.
                expires_at: Some(now),
                last_seen: now,
                ..(*sub).clone()
            };
            if let Err(e) = self.store.put_subscription(&gone).await {
                // The Subscribe job finds out from Graph instead (SubscriptionNotFound).
                tracing::warn!(env = %env, subscription = %sub.id, error = %error_chain(&e), "could not mark the removed subscription inactive");
            }
        }
        let live = subs
            .values()
            .filter(|s| !removed.iter().any(|r| r.id == s.id));
        self.touch(env, live, now).await;
        tracing::info!(env = %env, jobs = jobs.len(), notifications = entries.len(), "Graph lifecycle notification accepted");
        Ok(HttpResponse::text(202, "accepted"))
    }

    async fn enqueue(&self, jobs: &[Job]) -> Result<(), Refusal> {
        if jobs.is_empty() {
            return Ok(());
        }
        // Graph retries a 5xx for up to 4 hours, so a queue outage loses nothing.
        self.queue
            .enqueue(jobs)
            .await
            .map_err(|e| refuse(503, format!("job queue: {}", error_chain(&e))))
    }

    /// Records that the subscriptions were heard from (for the logs and `lnsync status`; Graph
    /// subscriptions are kept alive by their expiry, not by silence detection).
    async fn touch(
        &self,
        env: &EnvironmentId,
        subs: impl Iterator<Item = &PushSubscription>,
        now: DateTime<Utc>,
    ) {
        for sub in subs {
            if let Err(e) = self.store.touch_subscription(env, &sub.id, now, None).await {
                tracing::warn!(env = %env, subscription = %sub.id, error = %error_chain(&e), "could not record the notification");
            }
        }
    }
}

/// The job a lifecycle event asks for. Lifecycle notifications carry no id of their own, so
/// the job's id names the subscription, the event, the expiry the notification states and the
/// minute it arrived: a redelivery within that minute is the same job (one a minute later costs
/// a harmless second run), while a `missed` that comes again later for the same subscription
/// is a new pull, not one the previous pull's done mark suppresses.
fn lifecycle_job(
    env: &EnvironmentId,
    sub: &PushSubscription,
    kind: &JobKind,
    entry: &LifecycleNotification,
    now: DateTime<Utc>,
) -> Job {
    let minute = (now.timestamp().div_euclid(60)).to_string();
    Job {
        id: hashed_id(
            "graph-lifecycle",
            &[
                env.as_str(),
                sub.id.as_str(),
                &entry.lifecycle_event,
                entry
                    .subscription_expiration_date_time
                    .as_deref()
                    .unwrap_or_default(),
                kind.label(),
                &minute,
            ],
        ),
        env: env.clone(),
        user: sub.user.clone(),
        kind: kind.clone(),
        enqueued_at: now,
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod graph_tests;
