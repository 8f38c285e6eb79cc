//! The life of a push subscription (R31, R33), EWS and Graph.
//!
//! - The scheduler's tick ([`upkeep`]) decides, from the store alone, which active sync users
//!   need a `Subscribe` job: none yet; an EWS subscription silent for 2 × StatusFrequency (the
//!   server stopped calling); a Graph subscription within `graph_renew_before_minutes` of its
//!   expiry (Graph subscriptions end at expiry unless renewed). It retires the subscriptions
//!   nobody wants any more (push turned off, user no longer active, mailbox changed, backend
//!   switched in LN): an EWS one's next notification is answered `Unsubscribe`; a Graph one is
//!   deleted at Graph by its user's next `Subscribe` job, for which the tick also queues one.
//!   Retired records are forgotten a day after they were last heard from, Graph ones only once
//!   they are gone at Graph (deleted or expired).
//! - The worker's `Subscribe` job ([`subscribe_user`]) talks to Exchange. EWS: it resubscribes
//!   from the last persisted watermark so events of the silent period are delivered, falls back
//!   to a subscription without one on `ErrorInvalidWatermark` (and queues a calendar pull,
//!   which reads every change since its own cursor). Graph: it renews a live subscription
//!   (`PATCH`, which also answers `reauthorizationRequired`; every job renews, as the job cannot
//!   tell a lifecycle notification's request from the tick's); one Graph no longer knows, or none,
//!   is replaced by a new subscription, and a calendar pull covers the gap (Graph subscriptions
//!   cannot resume). Either way the new subscription is saved before the old ones are retired.
//!   The job then ends its user's retired Graph subscriptions at Graph ([`end_retired`], best
//!   effort: one that cannot be deleted lapses at its expiry, and its notifications are
//!   acknowledged and dropped until then).
//!
//! A stopped environment needs no upkeep: the push endpoint answers `Unsubscribe` for it (EWS)
//! or acknowledges and drops its notifications (Graph).

use super::router::hashed_id;
use super::{ews_notification_url, graph_lifecycle_url, graph_notification_url, new_push_token};
use crate::config::PushSettings;
use crate::schedule::job_id;
use chrono::{DateTime, Duration, Utc};
use lnsync_core::error::{Classify, ErrorClass, MailboxError, QueueError, StoreError};
use lnsync_core::ids::{EnvironmentId, MailboxAddress, SubscriptionId, UserId};
use lnsync_core::model::{ExchangeBackend, Job, JobKind, PushSubscription, Settings, SyncUser};
use lnsync_core::ports::{JobQueue, Mailbox, PushRequest, StateStore};
use lnsync_core::secret::Secret;
use std::collections::{BTreeSet, HashSet};

/// Why a `Subscribe` job failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "push is enabled in LN but this deployment has no push URL ({})",
        crate::vars::PUSH_URL
    )]
    NoPushUrl,
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Classify for SubscribeError {
    fn class(&self) -> ErrorClass {
        match self {
            SubscribeError::NoPushUrl => ErrorClass::Configuration,
            SubscribeError::Mailbox(e) => e.class(),
            SubscribeError::Store(e) => e.class(),
            SubscribeError::Queue(e) => e.class(),
        }
    }
}

/// How long a retired subscription is remembered, to answer its notifications `Unsubscribe`
/// (Exchange stops after that answer, or after its retries run out, well within a day).
pub const RETIRED_KEPT: Duration = Duration::days(1);

/// What the scheduler's upkeep decided for one environment.
#[derive(Debug, Default)]
pub struct Upkeep {
    /// `Subscribe` jobs to enqueue.
    pub jobs: Vec<Job>,
    /// Subscriptions to save as retired (`active: false`).
    pub retire: Vec<PushSubscription>,
    /// Retired subscriptions to forget.
    pub forget: Vec<SubscriptionId>,
}

/// Whether push applies to an environment: LN's *enable push synchronization* (R31), calendar
/// sync on, and a push URL this deployment can be reached at. Either backend.
pub fn push_wanted(settings: &Settings, push: &PushSettings) -> bool {
    settings.push_enabled && settings.synchronize_activities && push.public_url.is_some()
}

/// A Graph subscription that may still exist at Graph: neither deleted (its expiry is then set
/// to the deletion time) nor expired.
pub fn live_at_graph(sub: &PushSubscription, now: DateTime<Utc>) -> bool {
    sub.backend == ExchangeBackend::Graph && sub.expires_at.is_some_and(|e| e > now)
}

/// Whether an active subscription needs nothing until the next tick: an EWS one has been heard
/// from lately, a Graph one is not yet due for renewal.
pub fn healthy(sub: &PushSubscription, now: DateTime<Utc>, push: &PushSettings) -> bool {
    match sub.backend {
        ExchangeBackend::Ews => !sub.is_silent(now),
        ExchangeBackend::Graph => sub.expires_at.is_some_and(|e| {
            e - now > Duration::minutes(i64::from(push.graph_renew_before_minutes))
        }),
    }
}

/// The scheduler's decisions for one started environment. Pure: the caller reads the
/// subscriptions, enqueues the jobs, then saves.
pub fn upkeep(
    env: &EnvironmentId,
    settings: &Settings,
    push: &PushSettings,
    users: &[SyncUser],
    subscriptions: Vec<PushSubscription>,
    now: DateTime<Utc>,
) -> Upkeep {
    let wanted = push_wanted(settings, push);
    let mut out = Upkeep::default();
    let active_users: Vec<&SyncUser> = users
        .iter()
        .filter(|u| u.active && !u.email.as_str().trim().is_empty())
        .collect();
    let mut healthy_users: HashSet<UserId> = HashSet::new();
    // Users with a retired Graph subscription still live at Graph: their Subscribe job deletes
    // it, whether or not they get a new one.
    let mut to_end: BTreeSet<UserId> = BTreeSet::new();
    for sub in subscriptions {
        if !sub.active {
            if live_at_graph(&sub, now) {
                to_end.insert(sub.user.clone());
            } else if now - sub.last_seen > RETIRED_KEPT {
                out.forget.push(sub.id);
            }
            continue;
        }
        let still_wanted = wanted
            && sub.backend == settings.exchange_backend
            && active_users
                .iter()
                .any(|u| u.user == sub.user && u.email == sub.mailbox);
        if !still_wanted {
            if live_at_graph(&sub, now) {
                to_end.insert(sub.user.clone());
            }
            out.retire.push(PushSubscription {
                active: false,
                ..sub
            });
        } else if healthy(&sub, now, push) {
            healthy_users.insert(sub.user.clone());
        }
        // A silent EWS subscription stays active until its replacement exists: the Subscribe
        // job resumes from its watermark and retires it. An expiring Graph one is renewed.
    }
    let mut due: BTreeSet<UserId> = to_end;
    if wanted {
        due.extend(
            active_users
                .iter()
                .filter(|u| !healthy_users.contains(&u.user))
                .map(|u| u.user.clone()),
        );
    }
    // One job per user and StatusFrequency period: ticks inside the period send the same id,
    // which the queue de-duplicates, and the job itself does nothing once the subscription is
    // healthy.
    let period = Duration::minutes(i64::from(push.status_frequency_minutes.max(1)));
    let slot = DateTime::<Utc>::from_timestamp(
        now.timestamp() - now.timestamp().rem_euclid(period.num_seconds()),
        0,
    )
    .unwrap_or(now);
    for user in due {
        out.jobs.push(Job {
            id: job_id(env, &user, &JobKind::Subscribe, slot),
            env: env.clone(),
            user,
            kind: JobKind::Subscribe,
            enqueued_at: now,
        });
    }
    out
}

/// What a `Subscribe` job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// A healthy EWS subscription already existed (a repeated job, or a duplicate delivery).
    Kept(SubscriptionId),
    /// A new subscription; `resumed` when it started from the previous one's watermark (EWS).
    Created { id: SubscriptionId, resumed: bool },
    /// A Graph subscription's expiry was extended.
    Renewed {
        id: SubscriptionId,
        expires_at: DateTime<Utc>,
    },
}

/// Everything a `Subscribe` job works with.
pub struct SubscribeContext<'a> {
    pub env: &'a EnvironmentId,
    pub user: &'a UserId,
    /// The user's mailbox as LN lists it now.
    pub address: &'a MailboxAddress,
    /// LN's `exchangeBackend`: which kind of subscription to make.
    pub backend: ExchangeBackend,
    pub store: &'a dyn StateStore,
    pub queue: &'a dyn JobQueue,
    /// The mailbox client of `backend`.
    pub mailbox: &'a dyn Mailbox,
    pub push: &'a PushSettings,
    pub now: DateTime<Utc>,
}

impl SubscribeContext<'_> {
    /// The user's subscriptions in this environment, any backend, active or not.
    async fn mine(&self) -> Result<Vec<PushSubscription>, StoreError> {
        Ok(self
            .store
            .subscriptions(self.env)
            .await?
            .into_iter()
            .filter(|s| &s.user == self.user)
            .collect())
    }

    /// A calendar pull for the user, named after the subscription that needs it: the changes
    /// a subscription could not deliver are read by the pull from its own cursor.
    async fn queue_pull(&self, after: &SubscriptionId) -> Result<(), QueueError> {
        self.queue
            .enqueue(&[Job {
                id: hashed_id(
                    "pull-after-subscribe",
                    &[self.env.as_str(), self.user.as_str(), after.as_str()],
                ),
                env: self.env.clone(),
                user: self.user.clone(),
                kind: JobKind::CalendarPull,
                enqueued_at: self.now,
            }])
            .await
    }

    /// Saves the new subscription, then retires the user's other active ones: a crash in
    /// between leaves two active subscriptions, which costs a duplicate notification, never a
    /// lost one. `gone` are known to be gone at the server already.
    async fn save_and_retire(
        &self,
        new: &PushSubscription,
        mine: Vec<PushSubscription>,
        gone: &[SubscriptionId],
    ) -> Result<(), StoreError> {
        self.store.put_subscription(new).await?;
        for old in mine.into_iter().filter(|s| s.active && s.id != new.id) {
            let expires_at = if gone.contains(&old.id) {
                Some(self.now)
            } else {
                old.expires_at
            };
            self.store
                .put_subscription(&PushSubscription {
                    active: false,
                    expires_at,
                    ..old
                })
                .await?;
        }
        Ok(())
    }
}

/// The worker's `Subscribe` job for one user (see the module docs).
pub async fn subscribe_user(cx: &SubscribeContext<'_>) -> Result<SubscribeOutcome, SubscribeError> {
    let Some(base) = &cx.push.public_url else {
        return Err(SubscribeError::NoPushUrl);
    };
    let token = cx
        .store
        .ensure_push_token(cx.env, &new_push_token())
        .await?;
    match cx.backend {
        ExchangeBackend::Ews => subscribe_ews(cx, base, &token).await,
        ExchangeBackend::Graph => subscribe_graph(cx, base, &token).await,
    }
}

async fn subscribe_ews(
    cx: &SubscribeContext<'_>,
    base: &url::Url,
    token: &str,
) -> Result<SubscribeOutcome, SubscribeError> {
    let (env, user, address, now) = (cx.env, cx.user, cx.address, cx.now);
    let mut mine = cx.mine().await?;
    let ours = |s: &PushSubscription| s.backend == ExchangeBackend::Ews && &s.mailbox == address;
    if let Some(s) = mine
        .iter()
        .find(|s| s.active && ours(s) && !s.is_silent(now))
    {
        return Ok(SubscribeOutcome::Kept(s.id.clone()));
    }
    // The newest watermark of this mailbox: everything after it was not yet delivered.
    mine.sort_by_key(|s| s.last_seen);
    let watermark = mine
        .iter()
        .rev()
        .filter(|s| ours(s))
        .find_map(|s| s.watermark.clone());
    let mut request = PushRequest {
        url: ews_notification_url(base, env, token),
        status_frequency_minutes: cx.push.status_frequency_minutes,
        watermark,
        client_state: None,
        lifecycle_url: None,
        expires_at: None,
    };
    let resumed = request.watermark.is_some();
    let (created, resumed, catch_up) = match cx.mailbox.subscribe_calendar(address, &request).await
    {
        Err(MailboxError::InvalidCursor { .. }) if resumed => {
            // The watermark aged out (Exchange keeps about 30 days): events since it can't be
            // replayed, so a pull catches up from its own cursor instead.
            tracing::warn!(env = %env, user = %user, "push watermark expired; subscribing afresh and queueing a calendar pull");
            request.watermark = None;
            (
                cx.mailbox.subscribe_calendar(address, &request).await?,
                false,
                true,
            )
        }
        other => (other?, resumed, false),
    };
    if catch_up {
        cx.queue_pull(&created.id).await?;
    }
    let new = PushSubscription {
        env: env.clone(),
        user: user.clone(),
        id: created.id.clone(),
        mailbox: address.clone(),
        backend: ExchangeBackend::Ews,
        watermark: created.watermark.clone(),
        status_frequency_minutes: request.status_frequency_minutes,
        created_at: now,
        last_seen: now,
        expires_at: created.expires_at,
        active: true,
    };
    cx.save_and_retire(&new, mine, &[]).await?;
    tracing::info!(env = %env, user = %user, subscription = %created.id, resumed, "push subscription created");
    Ok(SubscribeOutcome::Created {
        id: created.id,
        resumed,
    })
}

async fn subscribe_graph(
    cx: &SubscribeContext<'_>,
    base: &url::Url,
    token: &str,
) -> Result<SubscribeOutcome, SubscribeError> {
    let (env, user, address, now) = (cx.env, cx.user, cx.address, cx.now);
    let lifetime = Duration::minutes(i64::from(cx.push.graph_lifetime_minutes));
    let mine = cx.mine().await?;
    let ours = |s: &PushSubscription| {
        s.active && s.backend == ExchangeBackend::Graph && &s.mailbox == address
    };
    let live = mine
        .iter()
        .filter(|s| ours(s) && live_at_graph(s, now))
        .max_by_key(|s| s.expires_at);
    let mut gone: Vec<SubscriptionId> = Vec::new();
    // Every job renews a live subscription, however recently it was made or renewed: the job
    // may come from `reauthorizationRequired`, which Graph sends at any time and which only a
    // renewal answers (the tick queues the job only when renewal is due, so a repeat costs no
    // more than one extra PATCH).
    if let Some(sub) = live {
        match cx
            .mailbox
            .renew_subscription(address, &sub.id, now + lifetime)
            .await
        {
            Ok(expires_at) => {
                let renewed = PushSubscription {
                    expires_at: Some(expires_at),
                    ..sub.clone()
                };
                let id = renewed.id.clone();
                cx.save_and_retire(&renewed, mine, &[]).await?;
                tracing::info!(env = %env, user = %user, subscription = %id, %expires_at, "Graph subscription renewed");
                return Ok(SubscribeOutcome::Renewed { id, expires_at });
            }
            Err(MailboxError::SubscriptionNotFound { .. }) => {
                tracing::warn!(env = %env, user = %user, subscription = %sub.id, "Graph no longer knows the subscription; subscribing afresh and queueing a calendar pull");
                gone.push(sub.id.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Notifications were lost when the subscription lapsed or Graph dropped it; a first
    // subscription needs no catch-up (the pulls so far read everything).
    let catch_up = !gone.is_empty() || mine.iter().any(|s| ours(s) && !live_at_graph(s, now));
    let request = PushRequest {
        url: graph_notification_url(base, env),
        status_frequency_minutes: cx.push.status_frequency_minutes,
        watermark: None,
        client_state: Some(Secret::new(token)),
        lifecycle_url: Some(graph_lifecycle_url(base, env)),
        expires_at: Some(now + lifetime),
    };
    let created = cx.mailbox.subscribe_calendar(address, &request).await?;
    if catch_up {
        cx.queue_pull(&created.id).await?;
    }
    let new = PushSubscription {
        env: env.clone(),
        user: user.clone(),
        id: created.id.clone(),
        mailbox: address.clone(),
        backend: ExchangeBackend::Graph,
        watermark: None,
        status_frequency_minutes: request.status_frequency_minutes,
        created_at: now,
        last_seen: now,
        // Graph answers the expiry it granted, which may be shorter than asked.
        expires_at: created.expires_at.or(request.expires_at),
        active: true,
    };
    cx.save_and_retire(&new, mine, &gone).await?;
    tracing::info!(env = %env, user = %user, subscription = %created.id, catch_up, "Graph subscription created");
    Ok(SubscribeOutcome::Created {
        id: created.id,
        resumed: false,
    })
}

/// Deletes the user's retired Graph subscriptions that still live at Graph, through `mailbox`
/// (a Graph client), and records each as gone (its expiry set to now). Best effort: a
/// subscription that cannot be deleted is left for the next `Subscribe` job, or lapses at its
/// expiry. Answers how many were ended.
pub async fn end_retired(
    env: &EnvironmentId,
    user: &UserId,
    store: &dyn StateStore,
    mailbox: &dyn Mailbox,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let retired: Vec<PushSubscription> = store
        .subscriptions(env)
        .await?
        .into_iter()
        .filter(|s| &s.user == user && !s.active && live_at_graph(s, now))
        .collect();
    let mut ended = 0;
    for sub in retired {
        match mailbox.unsubscribe(&sub.mailbox, &sub.id).await {
            Ok(()) | Err(MailboxError::SubscriptionNotFound { .. }) => {
                store
                    .put_subscription(&PushSubscription {
                        expires_at: Some(now),
                        ..sub.clone()
                    })
                    .await?;
                ended += 1;
                tracing::info!(env = %env, user = %user, subscription = %sub.id, "retired Graph subscription deleted");
            }
            Err(e) => {
                tracing::warn!(env = %env, user = %user, subscription = %sub.id, error = %crate::runner::error_chain(&e), "could not delete a retired Graph subscription; it lapses at its expiry");
            }
        }
    }
    Ok(ended)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::TimeZone;
    use lnsync_adapters::memqueue::InMemoryQueue;
    use lnsync_core::ids::{CrmStamp, ExchangeItemId, FolderId};
    use lnsync_core::model::{IntervalUnit, PullInterval};
    use lnsync_core::ports::{
        ContactFolder, ContactUpdate, FolderChanges, FolderCursor, ItemOutcome, ItemRef,
        NewContact, StampedItem, Subscribed,
    };
    use lnsync_core::testing::MemoryStore;
    use std::sync::Mutex;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    fn settings(push_enabled: bool) -> Settings {
        let hourly = PullInterval {
            value: 1,
            unit: IntervalUnit::Hours,
        };
        Settings {
            exchange_backend: ExchangeBackend::Ews,
            exchange_url: None,
            azure_tenant: None,
            client_id: None,
            contact_pull_interval: hourly,
            calendar_pull_interval: hourly,
            push_enabled,
            synchronize_contacts: true,
            synchronize_activities: true,
        }
    }

    fn push() -> PushSettings {
        PushSettings {
            public_url: url::Url::parse("https://push.example").ok(),
            status_frequency_minutes: 5,
            ..PushSettings::default()
        }
    }

    fn user(id: &str, active: bool) -> SyncUser {
        SyncUser {
            user: UserId::new(id),
            name: id.into(),
            active,
            email: MailboxAddress::new(format!("{id}@example.com")),
        }
    }

    fn sub(id: &str, user: &str, last_seen: DateTime<Utc>, active: bool) -> PushSubscription {
        PushSubscription {
            env: EnvironmentId::new("prod"),
            user: UserId::new(user),
            id: SubscriptionId::new(id),
            mailbox: MailboxAddress::new(format!("{user}@example.com")),
            backend: ExchangeBackend::Ews,
            watermark: Some(format!("wm-{id}")),
            status_frequency_minutes: 5,
            created_at: last_seen,
            last_seen,
            expires_at: None,
            active,
        }
    }

    fn users_of(u: &Upkeep) -> Vec<&str> {
        u.jobs.iter().map(|j| j.user.as_str()).collect()
    }

    #[test]
    fn users_without_a_healthy_subscription_get_a_subscribe_job() {
        let env = EnvironmentId::new("prod");
        let users = [
            user("ann", true),
            user("ben", true),
            user("cid", true),
            user("dan", false),
        ];
        let subs = vec![
            sub("s-ann", "ann", at(10, 0), true), // heard 3 min ago: healthy
            sub("s-ben", "ben", at(9, 50), true), // 13 min > 2 × 5: silent
        ];
        let u = upkeep(&env, &settings(true), &push(), &users, subs, at(10, 3));
        assert_eq!(users_of(&u), ["ben", "cid"]);
        assert!(
            u.retire.is_empty(),
            "a silent subscription is retired by its replacement"
        );
        assert!(u.jobs.iter().all(|j| j.kind == JobKind::Subscribe));
    }

    #[test]
    fn ticks_within_one_period_send_the_same_job_ids() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true)];
        let a = upkeep(&env, &settings(true), &push(), &users, vec![], at(10, 1));
        let b = upkeep(&env, &settings(true), &push(), &users, vec![], at(10, 4));
        let c = upkeep(&env, &settings(true), &push(), &users, vec![], at(10, 6));
        assert_eq!(a.jobs[0].id, b.jobs[0].id);
        assert_ne!(a.jobs[0].id, c.jobs[0].id);
    }

    #[test]
    fn push_off_retires_every_active_subscription_and_forgets_old_retired_ones() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true), user("ben", true)];
        let subs = vec![
            sub("s-ann", "ann", at(10, 0), true),
            sub("s-old", "ben", at(10, 0) - Duration::days(2), false),
            sub("s-recent", "ben", at(9, 0), false),
        ];
        let u = upkeep(&env, &settings(false), &push(), &users, subs, at(10, 3));
        assert!(u.jobs.is_empty());
        assert_eq!(u.retire.len(), 1);
        assert!(!u.retire[0].active && u.retire[0].id.as_str() == "s-ann");
        assert_eq!(u.forget, [SubscriptionId::new("s-old")]);
    }

    #[test]
    fn deactivated_users_and_changed_mailboxes_lose_their_subscription() {
        let env = EnvironmentId::new("prod");
        let mut moved = user("ben", true);
        moved.email = MailboxAddress::new("ben@new.example.com");
        let users = [user("ann", false), moved];
        let subs = vec![
            sub("s-ann", "ann", at(10, 0), true),
            sub("s-ben", "ben", at(10, 0), true),
        ];
        let u = upkeep(&env, &settings(true), &push(), &users, subs, at(10, 1));
        let retired: Vec<&str> = u.retire.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(retired, ["s-ann", "s-ben"]);
        assert_eq!(
            users_of(&u),
            ["ben"],
            "the new mailbox gets its own subscription"
        );
    }

    #[test]
    fn no_push_url_or_no_calendar_sync_means_no_subscriptions() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true)];
        let no_url = PushSettings {
            public_url: None,
            ..push()
        };
        assert!(
            upkeep(&env, &settings(true), &no_url, &users, vec![], at(10, 0))
                .jobs
                .is_empty()
        );
        let mut s = settings(true);
        s.synchronize_activities = false;
        assert!(
            upkeep(&env, &s, &push(), &users, vec![], at(10, 0))
                .jobs
                .is_empty()
        );
    }

    // ---- Graph: the tick ---------------------------------------------------------------

    fn graph_settings(push_enabled: bool) -> Settings {
        Settings {
            exchange_backend: ExchangeBackend::Graph,
            ..settings(push_enabled)
        }
    }

    /// A Graph subscription expiring at `expires_at`.
    fn graph_sub(
        id: &str,
        user: &str,
        expires_at: DateTime<Utc>,
        active: bool,
    ) -> PushSubscription {
        PushSubscription {
            backend: ExchangeBackend::Graph,
            watermark: None,
            expires_at: Some(expires_at),
            ..sub(id, user, at(9, 0), active)
        }
    }

    #[test]
    fn graph_subscriptions_get_a_job_when_missing_or_due_for_renewal() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true), user("ben", true), user("cid", true)];
        let now = at(10, 0);
        let subs = vec![
            // 2 days left: healthy, even though Graph sends no status events (no silence rule).
            graph_sub("g-ann", "ann", now + Duration::days(2), true),
            // 20 hours left, less than the default day: renewed.
            graph_sub("g-ben", "ben", now + Duration::hours(20), true),
        ];
        let u = upkeep(&env, &graph_settings(true), &push(), &users, subs, now);
        assert_eq!(users_of(&u), ["ben", "cid"]);
        assert!(u.retire.is_empty() && u.forget.is_empty());

        // An expired (lapsed) subscription is due as well, and is left for the job to replace.
        let subs = vec![graph_sub("g-ann", "ann", now - Duration::hours(1), true)];
        let u = upkeep(&env, &graph_settings(true), &push(), &users[..1], subs, now);
        assert_eq!(users_of(&u), ["ann"]);
        assert!(u.retire.is_empty());
    }

    #[test]
    fn a_backend_switch_retires_the_other_backends_subscriptions() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true), user("ben", true)];
        let now = at(10, 0);
        let subs = vec![
            sub("e-ann", "ann", now, true),
            graph_sub("g-ben", "ben", now + Duration::days(5), true),
        ];
        // Now Graph: Ann's EWS subscription is retired (answered Unsubscribe) and she gets a
        // Graph one; Ben's Graph subscription is fine.
        let u = upkeep(
            &env,
            &graph_settings(true),
            &push(),
            &users,
            subs.clone(),
            now,
        );
        let retired: Vec<&str> = u.retire.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(retired, ["e-ann"]);
        assert_eq!(users_of(&u), ["ann"]);
        // Back to EWS: Ben's Graph subscription is retired and his job (which also deletes it
        // at Graph) makes an EWS one.
        let u = upkeep(&env, &settings(true), &push(), &users, subs, now);
        let retired: Vec<&str> = u.retire.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(retired, ["g-ben"]);
        assert_eq!(users_of(&u), ["ben"]);
    }

    #[test]
    fn retired_graph_subscriptions_get_a_job_to_end_them_and_are_forgotten_once_gone() {
        let env = EnvironmentId::new("prod");
        let users = [user("ann", true), user("ben", false), user("cid", true)];
        let now = at(10, 0);
        let mut old_live = graph_sub("g-old-live", "cid", now + Duration::days(3), false);
        old_live.last_seen = now - Duration::days(3);
        let mut old_gone = graph_sub("g-old-gone", "cid", now - Duration::days(2), false);
        old_gone.last_seen = now - Duration::days(3);
        let subs = vec![
            // Push is off: Ann's live subscription is retired, and must be deleted at Graph.
            graph_sub("g-ann", "ann", now + Duration::days(5), true),
            // Ben left: his retired subscription still lives at Graph.
            graph_sub("g-ben", "ben", now + Duration::days(5), false),
            old_live,
            old_gone,
        ];
        let u = upkeep(&env, &graph_settings(false), &push(), &users, subs, now);
        let retired: Vec<&str> = u.retire.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(retired, ["g-ann"]);
        assert_eq!(
            users_of(&u),
            ["ann", "ben", "cid"],
            "a Subscribe job ends them (and makes no new one: push is off, Ben is inactive)"
        );
        assert_eq!(
            u.forget,
            [SubscriptionId::new("g-old-gone")],
            "kept while it may live at Graph"
        );
    }

    // ---- Graph: the worker's job ---------------------------------------------------------

    /// A mailbox that only does subscriptions, recording every call (also the worker's tests'
    /// mailbox, in `jobs.rs`).
    #[derive(Default)]
    pub(crate) struct FakeMailbox {
        pub(crate) created: Mutex<Vec<PushRequest>>,
        pub(crate) renewed: Mutex<Vec<(SubscriptionId, DateTime<Utc>)>>,
        pub(crate) deleted: Mutex<Vec<SubscriptionId>>,
        /// Subscriptions Graph no longer knows (renewal answers SubscriptionNotFound).
        pub(crate) unknown: Mutex<Vec<SubscriptionId>>,
        /// Deleting fails for these (Graph unreachable).
        pub(crate) undeletable: Mutex<Vec<SubscriptionId>>,
        /// Graph grants at most this lifetime.
        pub(crate) cap: Option<Duration>,
    }

    fn unsupported<T>() -> Result<T, MailboxError> {
        Err(MailboxError::Unsupported("contacts"))
    }

    #[async_trait]
    impl Mailbox for FakeMailbox {
        async fn ensure_contact_folder(
            &self,
            _: &MailboxAddress,
        ) -> Result<ContactFolder, MailboxError> {
            unsupported()
        }
        async fn find_stamped_contacts(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: &[CrmStamp],
        ) -> Result<Vec<StampedItem>, MailboxError> {
            unsupported()
        }
        async fn create_contacts(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: &[NewContact],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            unsupported()
        }
        async fn update_contacts(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: &[ContactUpdate],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            unsupported()
        }
        async fn delete_items(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
            unsupported()
        }
        async fn current_versions(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            unsupported()
        }
        async fn sync_contact_folder(
            &self,
            _: &MailboxAddress,
            _: &FolderId,
            _: Option<&FolderCursor>,
        ) -> Result<FolderChanges, MailboxError> {
            unsupported()
        }
        async fn subscribe_calendar(
            &self,
            _: &MailboxAddress,
            request: &PushRequest,
        ) -> Result<Subscribed, MailboxError> {
            let mut created = self
                .created
                .lock()
                .map_err(|_| MailboxError::Unsupported("lock"))?;
            created.push(request.clone());
            let expires_at = match (request.expires_at, self.cap) {
                (Some(asked), Some(cap)) => Some(asked.min(at(10, 0) + cap)),
                (asked, _) => asked,
            };
            Ok(Subscribed {
                id: SubscriptionId::new(format!("g-new-{}", created.len())),
                watermark: None,
                expires_at,
            })
        }
        async fn renew_subscription(
            &self,
            mailbox: &MailboxAddress,
            id: &SubscriptionId,
            expires_at: DateTime<Utc>,
        ) -> Result<DateTime<Utc>, MailboxError> {
            if self
                .unknown
                .lock()
                .map_err(|_| MailboxError::Unsupported("lock"))?
                .contains(id)
            {
                return Err(MailboxError::SubscriptionNotFound {
                    mailbox: mailbox.clone(),
                });
            }
            self.renewed
                .lock()
                .map_err(|_| MailboxError::Unsupported("lock"))?
                .push((id.clone(), expires_at));
            Ok(expires_at)
        }
        async fn unsubscribe(
            &self,
            _: &MailboxAddress,
            id: &SubscriptionId,
        ) -> Result<(), MailboxError> {
            if self
                .undeletable
                .lock()
                .map_err(|_| MailboxError::Unsupported("lock"))?
                .contains(id)
            {
                return Err(MailboxError::Unreachable {
                    url: "https://graph.example/v1.0".into(),
                    source: Box::new(std::io::Error::other("connection reset")),
                });
            }
            self.deleted
                .lock()
                .map_err(|_| MailboxError::Unsupported("lock"))?
                .push(id.clone());
            Ok(())
        }
    }

    struct World {
        store: MemoryStore,
        queue: InMemoryQueue,
        mailbox: FakeMailbox,
        push: PushSettings,
        env: EnvironmentId,
        user: UserId,
        address: MailboxAddress,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryStore::default(),
                queue: InMemoryQueue::default(),
                mailbox: FakeMailbox::default(),
                push: push(),
                env: EnvironmentId::new("prod"),
                user: UserId::new("ann"),
                address: MailboxAddress::new("ann@example.com"),
            }
        }

        async fn subscribe(
            &self,
            backend: ExchangeBackend,
            now: DateTime<Utc>,
        ) -> Result<SubscribeOutcome, SubscribeError> {
            subscribe_user(&SubscribeContext {
                env: &self.env,
                user: &self.user,
                address: &self.address,
                backend,
                store: &self.store,
                queue: &self.queue,
                mailbox: &self.mailbox,
                push: &self.push,
                now,
            })
            .await
        }

        async fn stored(&self, id: &str) -> Result<PushSubscription, Box<dyn std::error::Error>> {
            Ok(self
                .store
                .subscription(&self.env, &SubscriptionId::new(id))
                .await?
                .ok_or_else(|| format!("no subscription {id}"))?)
        }

        async fn queued(&self) -> Result<Vec<Job>, Box<dyn std::error::Error>> {
            Ok(self
                .queue
                .receive(10, std::time::Duration::ZERO)
                .await?
                .into_iter()
                .map(|d| d.job)
                .collect())
        }
    }

    #[tokio::test]
    async fn a_graph_subscription_names_both_urls_the_client_state_and_the_lifetime() -> TestResult
    {
        let w = World::new();
        let now = at(10, 0);
        let outcome = w.subscribe(ExchangeBackend::Graph, now).await?;
        assert_eq!(
            outcome,
            SubscribeOutcome::Created {
                id: SubscriptionId::new("g-new-1"),
                resumed: false
            }
        );
        let token = w.store.push_token(&w.env).await?.ok_or("no token")?;
        let requests = w.mailbox.created.lock().map_err(|_| "lock")?.clone();
        let [request] = requests.as_slice() else {
            return Err(format!("{requests:?}").into());
        };
        assert_eq!(request.url, "https://push.example/graph/prod");
        assert_eq!(
            request.lifecycle_url.as_deref(),
            Some("https://push.example/graph/prod/lifecycle")
        );
        assert_eq!(
            request.client_state.as_ref().map(Secret::expose),
            Some(token.as_str())
        );
        assert_eq!(request.watermark, None);
        assert_eq!(request.expires_at, Some(now + Duration::minutes(10_070)));
        let stored = w.stored("g-new-1").await?;
        assert_eq!(stored.backend, ExchangeBackend::Graph);
        assert_eq!(stored.expires_at, request.expires_at);
        assert_eq!(stored.watermark, None);
        assert!(stored.active);
        assert!(
            w.queued().await?.is_empty(),
            "a first subscription needs no catch-up pull"
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_expiry_graph_grants_is_the_one_stored() -> TestResult {
        let mut w = World::new();
        w.mailbox.cap = Some(Duration::minutes(4230));
        w.subscribe(ExchangeBackend::Graph, at(10, 0)).await?;
        assert_eq!(
            w.stored("g-new-1").await?.expires_at,
            Some(at(10, 0) + Duration::minutes(4230))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_live_graph_subscription_is_renewed_by_every_job() -> TestResult {
        let w = World::new();
        let now = at(10, 0);
        w.store
            .put_subscription(&graph_sub("g-ann", "ann", now + Duration::hours(20), true))
            .await?;
        let outcome = w.subscribe(ExchangeBackend::Graph, now).await?;
        let asked = now + Duration::minutes(10_070);
        assert_eq!(
            outcome,
            SubscribeOutcome::Renewed {
                id: SubscriptionId::new("g-ann"),
                expires_at: asked
            }
        );
        assert_eq!(w.stored("g-ann").await?.expires_at, Some(asked));
        assert!(w.mailbox.created.lock().map_err(|_| "lock")?.is_empty());
        // A reauthorizationRequired a minute later renews again, though renewal is not due:
        // only a renewal answers it.
        let again = w
            .subscribe(ExchangeBackend::Graph, now + Duration::minutes(1))
            .await?;
        assert!(
            matches!(again, SubscribeOutcome::Renewed { .. }),
            "{again:?}"
        );
        assert_eq!(w.mailbox.renewed.lock().map_err(|_| "lock")?.len(), 2);
        assert!(w.mailbox.created.lock().map_err(|_| "lock")?.is_empty());
        assert!(w.queued().await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_subscription_graph_lost_is_replaced_and_a_pull_covers_the_gap() -> TestResult {
        let w = World::new();
        let now = at(10, 0);
        w.store
            .put_subscription(&graph_sub("g-ann", "ann", now + Duration::hours(20), true))
            .await?;
        w.mailbox
            .unknown
            .lock()
            .map_err(|_| "lock")?
            .push(SubscriptionId::new("g-ann"));
        let outcome = w.subscribe(ExchangeBackend::Graph, now).await?;
        assert_eq!(
            outcome,
            SubscribeOutcome::Created {
                id: SubscriptionId::new("g-new-1"),
                resumed: false
            }
        );
        let old = w.stored("g-ann").await?;
        assert!(!old.active);
        assert_eq!(
            old.expires_at,
            Some(now),
            "gone at Graph: nothing to delete"
        );
        assert!(w.stored("g-new-1").await?.active);
        let jobs = w.queued().await?;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].kind, JobKind::CalendarPull);
        assert_eq!(jobs[0].user, w.user);
        Ok(())
    }

    #[tokio::test]
    async fn a_lapsed_subscription_is_replaced_and_a_pull_covers_the_gap() -> TestResult {
        let w = World::new();
        let now = at(10, 0);
        w.store
            .put_subscription(&graph_sub("g-ann", "ann", now - Duration::hours(1), true))
            .await?;
        let outcome = w.subscribe(ExchangeBackend::Graph, now).await?;
        assert!(
            matches!(outcome, SubscribeOutcome::Created { .. }),
            "{outcome:?}"
        );
        assert!(
            w.mailbox.renewed.lock().map_err(|_| "lock")?.is_empty(),
            "an expired subscription is not renewed"
        );
        assert!(!w.stored("g-ann").await?.active);
        let jobs = w.queued().await?;
        assert_eq!(
            jobs.iter().map(|j| &j.kind).collect::<Vec<_>>(),
            [&JobKind::CalendarPull]
        );
        Ok(())
    }

    #[tokio::test]
    async fn switching_backends_replaces_the_subscription_and_retires_the_old_one() -> TestResult {
        let w = World::new();
        let now = at(10, 0);
        w.store
            .put_subscription(&sub("e-ann", "ann", now, true))
            .await?;
        w.subscribe(ExchangeBackend::Graph, now).await?;
        assert!(
            !w.stored("e-ann").await?.active,
            "answered Unsubscribe from now on"
        );
        assert!(w.stored("g-new-1").await?.active);

        // And back: the Graph subscription is retired, to be deleted by `end_retired`.
        let outcome = w.subscribe(ExchangeBackend::Ews, now).await?;
        assert!(
            matches!(outcome, SubscribeOutcome::Created { .. }),
            "{outcome:?}"
        );
        let requests = w.mailbox.created.lock().map_err(|_| "lock")?.clone();
        assert!(
            requests[1]
                .url
                .starts_with("https://push.example/ews/prod/")
        );
        assert_eq!(requests[1].client_state, None);
        let graph = w.stored("g-new-1").await?;
        assert!(!graph.active && live_at_graph(&graph, now));
        Ok(())
    }

    #[tokio::test]
    async fn retired_graph_subscriptions_are_deleted_at_graph_best_effort() -> TestResult {
        let w = World::new();
        let now = at(10, 0);
        for s in [
            graph_sub("g-retired", "ann", now + Duration::days(3), false),
            graph_sub("g-stuck", "ann", now + Duration::days(3), false),
            graph_sub("g-expired", "ann", now - Duration::days(1), false),
            graph_sub("g-active", "ann", now + Duration::days(3), true),
            graph_sub("g-ben", "ben", now + Duration::days(3), false),
        ] {
            w.store.put_subscription(&s).await?;
        }
        w.mailbox
            .undeletable
            .lock()
            .map_err(|_| "lock")?
            .push(SubscriptionId::new("g-stuck"));
        let ended = end_retired(&w.env, &w.user, &w.store, &w.mailbox, now).await?;
        assert_eq!(ended, 1);
        assert_eq!(
            *w.mailbox.deleted.lock().map_err(|_| "lock")?,
            [SubscriptionId::new("g-retired")],
            "only Ann's retired ones still live at Graph; g-stuck failed"
        );
        assert_eq!(w.stored("g-retired").await?.expires_at, Some(now));
        assert!(
            live_at_graph(&w.stored("g-stuck").await?, now),
            "tried again later"
        );
        assert!(w.stored("g-active").await?.active);
        Ok(())
    }
}
