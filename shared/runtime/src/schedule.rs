//! The scheduler's tick: which users are due, as jobs on the queue (R3, R6, R7).
//!
//! Per started environment a tick reads LN's settings and sync users (so a change takes effect
//! at the next tick, no restart: R3), registers new users and changed mailboxes in the store,
//! and enqueues a job for every active user whose contact (or calendar) run is due on its
//! aligned boundary (R6). A run is due when its `next_*_run` is unset (a new user runs at once)
//! or not after now; a user that missed several boundaries (an outage) gets one catch-up job,
//! and its next run is set to the next boundary after now (R7).
//!
//! Work per tick is O(due users + users' state rows); no item (link, contact) is ever read.
//! Jobs are enqueued first and the next due times saved after: a tick that dies in between is
//! repeated by the next tick with the same deterministic job ids ([`job_id`]), which the queue's
//! de-duplication drops.

use crate::config::{EnvironmentConfig, PushSettings};
use crate::push::subscriptions::upkeep;
use crate::runner::{Connector, error_chain};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lnsync_core::ids::SubscriptionId;
use lnsync_core::ids::{EnvironmentId, JobId, UserId};
use lnsync_core::model::{Job, JobKind, PullInterval, PushSubscription, SyncUser, UserState};
use lnsync_core::ports::{JobQueue, StateStore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// How many user-state writes a tick has in flight.
const STATE_WRITE_CONCURRENCY: usize = 16;

/// Whether the scheduler enqueues calendar jobs (when LN's *Synchronize Activities* is on).
/// A switch so a build whose workers can't run them would not fill the dead-letter queue.
pub const CALENDAR_JOBS: bool = true;

/// The id of the job of (environment, user, kind) for the boundary `boundary`: the same inputs
/// give the same id, so a repeated tick is de-duplicated by the queue. Ids fit SQS's 128-char
/// de-duplication id; longer ones are hashed.
pub fn job_id(
    env: &EnvironmentId,
    user: &UserId,
    kind: &JobKind,
    boundary: DateTime<Utc>,
) -> JobId {
    let readable = format!(
        "{env}/{user}/{}/{}",
        kind.label(),
        boundary.format("%Y%m%dT%H%M%SZ")
    );
    if readable.len() <= 128 && readable.chars().all(|c| c.is_ascii_graphic()) {
        JobId::new(readable)
    } else {
        JobId::new(format!(
            "h-{}",
            hex::encode(Sha256::digest(readable.as_bytes()))
        ))
    }
}

/// What a tick did in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentTick {
    pub env: EnvironmentId,
    pub status: TickStatus,
    /// Active users LN lists.
    pub active_users: usize,
    /// User states written (new users, changed mailboxes, moved due times).
    pub users_written: usize,
    pub jobs: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickStatus {
    Scheduled,
    /// Not started in the store (R1).
    Stopped,
    Failed(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub environments: Vec<EnvironmentTick>,
    /// Environments started in the store that this deployment has no configuration for.
    pub unconfigured: Vec<EnvironmentId>,
}

impl TickReport {
    pub fn jobs(&self) -> usize {
        self.environments.iter().map(|e| e.jobs).sum()
    }

    pub fn has_failures(&self) -> bool {
        self.environments
            .iter()
            .any(|e| matches!(e.status, TickStatus::Failed(_)))
    }
}

/// The boundary a due run serves, when it is due at `now`.
fn due(
    next: Option<DateTime<Utc>>,
    interval: &PullInterval,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match next {
        Some(next) if next > now => None,
        _ => Some(interval.boundary_at_or_before(now)),
    }
}

/// Moves a due time: after a run to the next boundary; an interval shortened in LN (R3) pulls a
/// far-off due time in to the new interval's next boundary without running now.
fn next_run(
    next: Option<DateTime<Utc>>,
    ran: bool,
    interval: &PullInterval,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let boundary = interval.next_boundary(now);
    match next {
        _ if ran => Some(boundary),
        Some(next) if next > boundary => Some(boundary),
        other => other,
    }
}

struct Planned {
    tick: EnvironmentTick,
    jobs: Vec<Job>,
    states: Vec<UserState>,
    /// Push subscriptions to retire (answered `Unsubscribe` from now on) and to forget.
    retire: Vec<PushSubscription>,
    forget: Vec<SubscriptionId>,
}

/// One tick at `now` over every environment of `environments` that is started in the store.
/// With push configured, it also keeps each active user's push subscription alive (R33: EWS
/// ones recreated when silent, Graph ones renewed before they expire) and retires unwanted ones
/// (see [`crate::push::subscriptions`]).
pub async fn tick(
    environments: &[EnvironmentConfig],
    store: &dyn StateStore,
    queue: &dyn JobQueue,
    connector: &dyn Connector,
    push: &PushSettings,
    now: DateTime<Utc>,
) -> TickReport {
    let mut report = TickReport::default();
    let started: Vec<EnvironmentId> = match store.environments().await {
        Ok(all) => all
            .into_iter()
            .filter(|e| e.started)
            .map(|e| e.env)
            .collect(),
        Err(e) => {
            let message = format!("state store: {}", error_chain(&e));
            report.environments = environments
                .iter()
                .map(|env| failed(&env.id, message.clone()))
                .collect();
            return report;
        }
    };
    report.unconfigured = started
        .iter()
        .filter(|id| !environments.iter().any(|e| &e.id == *id))
        .cloned()
        .collect();
    for id in &report.unconfigured {
        tracing::error!(env = %id, "environment is started but not configured in this deployment");
    }

    let mut planned = Vec::new();
    for env in environments {
        if !started.contains(&env.id) {
            report.environments.push(EnvironmentTick {
                env: env.id.clone(),
                status: TickStatus::Stopped,
                active_users: 0,
                users_written: 0,
                jobs: 0,
            });
            continue;
        }
        match plan_environment(env, store, connector, push, now).await {
            Ok(p) => planned.push(p),
            Err(message) => {
                tracing::error!(env = %env.id, error = %message, "tick failed for the environment");
                report.environments.push(failed(&env.id, message));
            }
        }
    }

    // One enqueue for all environments: the queue fills whole batches (10 per SQS call).
    let jobs: Vec<Job> = planned
        .iter()
        .flat_map(|p| p.jobs.iter().cloned())
        .collect();
    if !jobs.is_empty()
        && let Err(e) = queue.enqueue(&jobs).await
    {
        // Nothing is saved: the next tick finds the same users due and sends the same ids.
        let message = format!("job queue: {}", error_chain(&e));
        tracing::error!(error = %message, jobs = jobs.len(), "could not enqueue the tick's jobs");
        for p in planned {
            report
                .environments
                .push(failed(&p.tick.env, message.clone()));
        }
        return report;
    }
    for mut p in planned {
        // Concurrently: a tick's time grows with its due users, and each write is one round
        // trip (1,000 sequential PutItems would take most of a Lambda timeout).
        // The writes are built before they are streamed: a closure returning a future that
        // borrows its argument makes the whole tick non-`Send` (a higher-ranked lifetime rustc
        // cannot prove), and `lnsync serve` runs the tick inside a spawned task.
        let writes: Vec<_> = p
            .states
            .iter()
            .map(|state| store.put_user_state(state))
            .collect();
        let mut results: Vec<Result<(), String>> = futures::stream::iter(writes)
            .buffer_unordered(STATE_WRITE_CONCURRENCY)
            .map(|r| r.map_err(|e| format!("state store: {}", error_chain(&e))))
            .collect()
            .await;
        let written = results.iter().filter(|r| r.is_ok()).count();
        for sub in &p.retire {
            tracing::info!(env = %sub.env, user = %sub.user, subscription = %sub.id, "push subscription retired");
            results.push(
                store
                    .put_subscription(sub)
                    .await
                    .map_err(|e| format!("state store: {}", error_chain(&e))),
            );
        }
        for id in &p.forget {
            results.push(
                store
                    .delete_subscription(&p.tick.env, id)
                    .await
                    .map_err(|e| format!("state store: {}", error_chain(&e))),
            );
        }
        // The jobs are queued; a lost due time only means the next tick sends the same ids
        // again, which the queue drops inside its de-duplication window.
        let problem = results.into_iter().find_map(Result::err);
        p.tick.users_written = written;
        if let Some(message) = problem {
            p.tick.status = TickStatus::Failed(message);
        }
        tracing::info!(env = %p.tick.env, active_users = p.tick.active_users, jobs = p.tick.jobs, users_written = written, "tick");
        report.environments.push(p.tick);
    }
    report
}

fn failed(env: &EnvironmentId, message: String) -> EnvironmentTick {
    EnvironmentTick {
        env: env.clone(),
        status: TickStatus::Failed(message),
        active_users: 0,
        users_written: 0,
        jobs: 0,
    }
}

async fn plan_environment(
    env: &EnvironmentConfig,
    store: &dyn StateStore,
    connector: &dyn Connector,
    push: &PushSettings,
    now: DateTime<Utc>,
) -> Result<Planned, String> {
    let ln = connector.ln(env)?;
    let settings = ln.settings().await.map_err(|e| error_chain(&e))?;
    let users: Vec<SyncUser> = ln.sync_users().await.map_err(|e| error_chain(&e))?;
    let mut known: HashMap<UserId, UserState> = store
        .user_states(&env.id)
        .await
        .map_err(|e| format!("state store: {}", error_chain(&e)))?
        .into_iter()
        .map(|s| (s.user.clone(), s))
        .collect();
    let calendar = CALENDAR_JOBS && settings.synchronize_activities;
    let mut planned = Planned {
        tick: EnvironmentTick {
            env: env.id.clone(),
            status: TickStatus::Scheduled,
            active_users: 0,
            users_written: 0,
            jobs: 0,
        },
        jobs: Vec::new(),
        states: Vec::new(),
        retire: Vec::new(),
        forget: Vec::new(),
    };
    // R4: active users with a mailbox; the others keep their state and get no jobs.
    for user in users
        .iter()
        .filter(|u| u.active && !u.email.as_str().trim().is_empty())
    {
        planned.tick.active_users += 1;
        let before = known.remove(&user.user);
        let mut state = before.clone().unwrap_or_else(|| {
            UserState::new(env.id.clone(), user.user.clone(), user.email.clone())
        });
        if state.mailbox != user.email {
            // A new mailbox has its own "CRM Contacts" folder, found again by the next run.
            state.mailbox = user.email.clone();
            state.contact_folder = None;
        }
        let kinds = [
            (
                JobKind::ContactPull,
                settings.synchronize_contacts,
                settings.contact_pull_interval,
                state.next_contact_run,
            ),
            (
                JobKind::CalendarPull,
                calendar,
                settings.calendar_pull_interval,
                state.next_calendar_run,
            ),
        ];
        for (kind, enabled, interval, next) in kinds {
            if !enabled {
                continue;
            }
            let boundary = due(next, &interval, now);
            if let Some(boundary) = boundary {
                planned.jobs.push(Job {
                    id: job_id(&env.id, &user.user, &kind, boundary),
                    env: env.id.clone(),
                    user: user.user.clone(),
                    kind: kind.clone(),
                    enqueued_at: now,
                });
            }
            let moved = next_run(next, boundary.is_some(), &interval, now);
            match kind {
                JobKind::ContactPull => state.next_contact_run = moved,
                _ => state.next_calendar_run = moved,
            }
        }
        if before.as_ref() != Some(&state) {
            planned.states.push(state);
        }
    }
    let subscriptions = store
        .subscriptions(&env.id)
        .await
        .map_err(|e| format!("state store: {}", error_chain(&e)))?;
    let push_upkeep = upkeep(&env.id, &settings, push, &users, subscriptions, now);
    planned.jobs.extend(push_upkeep.jobs);
    planned.retire = push_upkeep.retire;
    planned.forget = push_upkeep.forget;
    planned.tick.jobs = planned.jobs.len();
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lnsync_core::model::IntervalUnit;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    const QUARTER: PullInterval = PullInterval {
        value: 15,
        unit: IntervalUnit::Minutes,
    };

    #[test]
    fn due_on_boundaries_with_one_catch_up() {
        // New user: due now, for the current boundary.
        assert_eq!(due(None, &QUARTER, at(9, 7)), Some(at(9, 0)));
        assert_eq!(next_run(None, true, &QUARTER, at(9, 7)), Some(at(9, 15)));
        // Not yet due.
        assert_eq!(due(Some(at(9, 15)), &QUARTER, at(9, 14)), None);
        // Due exactly on the boundary.
        assert_eq!(due(Some(at(9, 15)), &QUARTER, at(9, 15)), Some(at(9, 15)));
        // Outage from 9:15 to 11:07: one catch-up, then the next boundary.
        assert_eq!(due(Some(at(9, 15)), &QUARTER, at(11, 7)), Some(at(11, 0)));
        assert_eq!(
            next_run(Some(at(9, 15)), true, &QUARTER, at(11, 7)),
            Some(at(11, 15))
        );
    }

    #[test]
    fn a_shortened_interval_takes_effect_at_the_next_tick() {
        let next_day = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).single();
        assert_eq!(
            next_run(next_day, false, &QUARTER, at(9, 7)),
            Some(at(9, 15))
        );
    }

    #[test]
    fn job_ids_are_deterministic_and_fit_sqs() {
        let (e, u) = (EnvironmentId::new("prod"), UserId::new("alice"));
        let a = job_id(&e, &u, &JobKind::ContactPull, at(9, 0));
        assert_eq!(a.as_str(), "prod/alice/contacts/20261125T090000Z");
        assert_eq!(a, job_id(&e, &u, &JobKind::ContactPull, at(9, 0)));
        assert_ne!(a, job_id(&e, &u, &JobKind::CalendarPull, at(9, 0)));
        let long = job_id(
            &e,
            &UserId::new("x".repeat(200)),
            &JobKind::ContactPull,
            at(9, 0),
        );
        assert!(long.as_str().len() <= 128 && long.as_str().starts_with("h-"));
    }
}
