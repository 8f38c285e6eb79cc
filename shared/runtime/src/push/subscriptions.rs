//! The life of a push subscription (R31, R33).
//!
//! - The scheduler's tick ([`upkeep`]) decides, from the store alone, which active sync users
//!   need a subscription (none yet, or silent for 2 × StatusFrequency: the server stopped
//!   calling) and enqueues a `Subscribe` job for each; it retires the subscriptions nobody
//!   wants any more (push turned off, user no longer active, mailbox changed), so their next
//!   notification is answered `Unsubscribe`; and it forgets retired ones after a day.
//! - The worker's `Subscribe` job ([`subscribe_user`]) talks to Exchange: it resubscribes from
//!   the last persisted watermark so events of the silent period are delivered, falls back to a
//!   subscription without one on `ErrorInvalidWatermark` (and queues a calendar pull, which
//!   reads every change since its own cursor), saves the new subscription and retires the old.
//!
//! A stopped environment needs no upkeep: the push endpoint answers `Unsubscribe` for it.

use super::{ews_notification_url, new_push_token};
use crate::config::PushSettings;
use crate::schedule::job_id;
use chrono::{DateTime, Duration, Utc};
use lnsync_core::error::{Classify, ErrorClass, MailboxError, QueueError, StoreError};
use lnsync_core::ids::{EnvironmentId, MailboxAddress, SubscriptionId, UserId};
use lnsync_core::model::{ExchangeBackend, Job, JobKind, PushSubscription, Settings, SyncUser};
use lnsync_core::ports::{JobQueue, Mailbox, PushRequest, StateStore};

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
use std::collections::HashMap;

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
/// sync on, and a push URL this deployment can be reached at.
pub fn push_wanted(settings: &Settings, push: &PushSettings) -> bool {
    settings.push_enabled
        && settings.synchronize_activities
        && push.public_url.is_some()
        && settings.exchange_backend == ExchangeBackend::Ews
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
    let active_users: HashMap<&UserId, &SyncUser> = users
        .iter()
        .filter(|u| u.active && !u.email.as_str().trim().is_empty())
        .map(|u| (&u.user, u))
        .collect();
    let mut healthy: HashMap<UserId, ()> = HashMap::new();
    for sub in subscriptions {
        if !sub.active {
            if now - sub.last_seen > RETIRED_KEPT {
                out.forget.push(sub.id);
            }
            continue;
        }
        let still_wanted = wanted
            && active_users
                .get(&sub.user)
                .is_some_and(|u| u.email == sub.mailbox);
        if !still_wanted {
            out.retire.push(PushSubscription {
                active: false,
                ..sub
            });
        } else if !sub.is_silent(now) {
            healthy.insert(sub.user.clone(), ());
        }
        // A silent subscription stays active until its replacement exists: the Subscribe job
        // resumes from its watermark and retires it.
    }
    if wanted {
        // One job per user and StatusFrequency period: ticks inside the period send the same
        // id, which the queue de-duplicates, and the job itself does nothing once a healthy
        // subscription exists.
        let period = Duration::minutes(i64::from(push.status_frequency_minutes.max(1)));
        let slot = DateTime::<Utc>::from_timestamp(
            now.timestamp() - now.timestamp().rem_euclid(period.num_seconds()),
            0,
        )
        .unwrap_or(now);
        let mut due: Vec<&&SyncUser> = active_users
            .values()
            .filter(|u| !healthy.contains_key(&u.user))
            .collect();
        due.sort_by(|a, b| a.user.cmp(&b.user));
        for user in due {
            out.jobs.push(Job {
                id: job_id(env, &user.user, &JobKind::Subscribe, slot),
                env: env.clone(),
                user: user.user.clone(),
                kind: JobKind::Subscribe,
                enqueued_at: now,
            });
        }
    }
    out
}

/// What a `Subscribe` job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// A healthy subscription already existed (a repeated job, or a duplicate delivery).
    Kept(SubscriptionId),
    /// A new subscription; `resumed` when it started from the previous one's watermark.
    Created { id: SubscriptionId, resumed: bool },
}

/// The worker's `Subscribe` job for one user (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn subscribe_user(
    env: &EnvironmentId,
    user: &UserId,
    address: &MailboxAddress,
    store: &dyn StateStore,
    queue: &dyn JobQueue,
    mailbox: &dyn Mailbox,
    push: &PushSettings,
    now: DateTime<Utc>,
) -> Result<SubscribeOutcome, SubscribeError> {
    let Some(base) = &push.public_url else {
        return Err(SubscribeError::NoPushUrl);
    };
    let mut mine: Vec<PushSubscription> = store
        .subscriptions(env)
        .await?
        .into_iter()
        .filter(|s| &s.user == user)
        .collect();
    if let Some(s) = mine
        .iter()
        .find(|s| s.active && &s.mailbox == address && !s.is_silent(now))
    {
        return Ok(SubscribeOutcome::Kept(s.id.clone()));
    }
    // The newest watermark of this mailbox: everything after it was not yet delivered.
    mine.sort_by_key(|s| s.last_seen);
    let watermark = mine
        .iter()
        .rev()
        .filter(|s| &s.mailbox == address)
        .find_map(|s| s.watermark.clone());
    let token = store.ensure_push_token(env, &new_push_token()).await?;
    let mut request = PushRequest {
        url: ews_notification_url(base, env, &token),
        status_frequency_minutes: push.status_frequency_minutes,
        watermark,
        client_state: None,
        lifecycle_url: None,
        expires_at: None,
    };
    let resumed = request.watermark.is_some();
    let created = match mailbox.subscribe_calendar(address, &request).await {
        Err(MailboxError::InvalidCursor { .. }) if resumed => {
            // The watermark aged out (Exchange keeps about 30 days): events since it can't be
            // replayed, so a pull catches up from its own cursor instead.
            tracing::warn!(env = %env, user = %user, "push watermark expired; subscribing afresh and queueing a calendar pull");
            request.watermark = None;
            let created = mailbox.subscribe_calendar(address, &request).await?;
            queue
                .enqueue(&[Job {
                    id: job_id(env, user, &JobKind::CalendarPull, now),
                    env: env.clone(),
                    user: user.clone(),
                    kind: JobKind::CalendarPull,
                    enqueued_at: now,
                }])
                .await?;
            (created, false)
        }
        other => (other?, resumed),
    };
    let (created, resumed) = created;
    store
        .put_subscription(&PushSubscription {
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
        })
        .await?;
    // Retired only once the replacement is saved: a crash in between leaves two active
    // subscriptions, which costs a duplicate notification, never a lost one.
    for old in mine.into_iter().filter(|s| s.active) {
        store
            .put_subscription(&PushSubscription {
                active: false,
                ..old
            })
            .await?;
    }
    tracing::info!(env = %env, user = %user, subscription = %created.id, resumed, "push subscription created");
    Ok(SubscribeOutcome::Created {
        id: created.id,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lnsync_core::model::{IntervalUnit, PullInterval};

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
}
