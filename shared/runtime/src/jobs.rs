//! Running queued jobs: what the worker function does with an SQS batch, over any store, queue
//! and connector (SQLite + in-process queue in tests, DynamoDB + SQS on AWS).
//!
//! Delivery rules (R34–R37):
//! - A job may arrive more than once, also concurrently. A job that completed leaves a done mark
//!   ([`StateStore::mark_job_done`]) and a redelivery is acknowledged without running; two
//!   concurrent deliveries meet at the per-user lease inside the contact service, and the loser
//!   is retried later (it then finds the done mark).
//! - Failures are reported per message; the queue redelivers them and, after its
//!   `maxReceiveCount`, moves them to the dead-letter queue. A failed run moved no cursor, so the
//!   user's state is as before (R35).
//! - A throttling hint becomes a visibility change ([`JobQueue::retry_later`]) instead of a sleep
//!   inside a billed invocation.
//! - Messages of one group (one user) are handled in order; after a failure the group's later
//!   messages of the batch fail too, without running, so nothing overtakes (FIFO, R36).
//!
//! R14 (the LN feed once per environment, not per user): see [`FeedCache`].

use crate::config::{EnvironmentConfig, PushSettings};
use crate::push::subscriptions::{
    SubscribeContext, SubscribeError, SubscribeOutcome, end_retired, live_at_graph, push_wanted,
    subscribe_user,
};
use crate::runner::{Connector, SyncKind, error_chain};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lnsync_core::error::{Classify, ErrorClass, StoreError};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{
    CursorKind, Employee, ExchangeBackend, Job, JobKind, LnWatermark, RunCounts, RunOutcome,
    Settings, SyncUser,
};
use lnsync_core::ports::Window;
use lnsync_core::ports::{Clock, JobQueue, LnGateway, Mailbox, Receipt, StateStore};
use lnsync_core::service::calendar::CalendarWatermark;
use lnsync_core::service::{
    CalendarFeed, CalendarSync, ContactFeed, ContactSync, EventTarget, SyncError, SyncOptions,
    UserRun,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a job waits when another run holds its user's lease: long enough for a typical run
/// to finish, short enough that a crashed holder's job is not delayed much past its lease.
pub const BUSY_RETRY: Duration = Duration::from_secs(30);
/// How long a single-event job waits when its user's lease is held (by the pull, or by another
/// event of the same meeting queued from the other side): such runs are short, and push is
/// about latency.
pub const PUSH_BUSY_RETRY: Duration = Duration::from_secs(2);
/// How long a done mark suppresses redeliveries. Longer than SQS's 5-minute de-duplication
/// window and than any visibility timeout, so every redelivery of a completed job finds it.
pub const JOB_DONE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How old the settings and the directory of sync users and employees a push job uses may be.
/// A push job must not cost a full LN read each (R14), and who is who changes rarely: a new
/// sync user waits at most this long to be recognised by push, never by the pull.
pub const PUSH_READ_MAX_AGE: chrono::Duration = chrono::Duration::minutes(5);

/// A message as the queue delivered it (an SQS record, or an in-process delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// What the batch response names on failure (SQS `messageId`).
    pub message_id: String,
    pub receipt: Receipt,
    pub body: String,
    /// The FIFO message group, when the queue says so; else the job's own group.
    pub group: Option<String>,
    /// 1 on first delivery.
    pub receive_count: u32,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The run happened (succeeded, or partial with item problems recorded for the console).
    Done {
        outcome: RunOutcome,
        counts: RunCounts,
    },
    /// A redelivery of a job that already completed: nothing ran.
    AlreadyDone,
    /// Nothing to do, and nothing to retry (environment stopped, feature off in LN).
    Dropped(String),
    /// Failed; retry, after `after` when the service said how long (throttling, busy lease).
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Failed in a way a retry is unlikely to fix; the queue still retries it up to its
    /// `maxReceiveCount`, then dead-letters it for an administrator (R37).
    Failed(String),
}

impl JobOutcome {
    /// Whether the message is acknowledged (deleted) rather than reported as failed.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            JobOutcome::Done { .. } | JobOutcome::AlreadyDone | JobOutcome::Dropped(_)
        )
    }

    fn from_error(e: &SyncError) -> Self {
        Self::classified(e.class(), error_chain(e))
    }

    fn classified(class: ErrorClass, error: String) -> Self {
        match class {
            ErrorClass::Throttled(d) => JobOutcome::Retry {
                after: Some(d),
                error,
            },
            ErrorClass::Transient | ErrorClass::Conflict => {
                JobOutcome::Retry { after: None, error }
            }
            ErrorClass::Permanent | ErrorClass::Configuration => JobOutcome::Failed(error),
        }
    }
}

/// The result of a batch: which messages failed (for SQS `batchItemFailures`) and every
/// message's outcome, in input order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub failed: Vec<String>,
    pub outcomes: Vec<(String, JobOutcome)>,
}

// ---------------------------------------------------------------------------------------------
// R14: one feed read per environment
// ---------------------------------------------------------------------------------------------

/// A per-container cache of each environment's LN settings and contact feed.
///
/// A cached read serves a job when it was made **at or after the job was enqueued** (so it holds
/// every change the job's boundary is about) and, for the feed, when it **starts at or before the
/// user's watermark** (so the user's part of the feed is complete). The worker first warms the
/// cache for each environment of a batch from the oldest watermark of that batch's users, so a
/// batch costs one settings read and two feed reads per environment, and later batches of the
/// same boundary in the same container reuse them. Only the newest read per environment is kept.
///
/// Limits: the cache is per container, so N concurrently running worker containers make up to N
/// reads per environment and boundary (bounded by the function's reserved concurrency, not by
/// the number of users); and a user whose watermark is older than the cached feed (a user whose
/// earlier runs failed) causes one more read from that older point.
#[derive(Default)]
pub struct FeedCache {
    envs: Mutex<HashMap<EnvironmentId, Arc<tokio::sync::Mutex<EnvEntry>>>>,
    feed_reads: AtomicU64,
    settings_reads: AtomicU64,
}

#[derive(Default)]
struct EnvEntry {
    settings: Option<(Arc<Settings>, DateTime<Utc>)>,
    directory: Option<(Arc<Directory>, DateTime<Utc>)>,
    contacts: Option<(Arc<ContactFeed>, DateTime<Utc>)>,
    calendar: Option<(Arc<CalendarFeed>, DateTime<Utc>)>,
}

/// Who is who in an environment: every sync user and employee (meeting ownership, R5).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub users: Vec<SyncUser>,
    pub employees: Vec<Employee>,
}

/// Whether a feed read from `from` holds everything at or after `watermark`.
fn covers(from: LnWatermark, watermark: LnWatermark) -> bool {
    fn component(from: Option<DateTime<Utc>>, w: Option<DateTime<Utc>>) -> bool {
        match (from, w) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(f), Some(w)) => f <= w,
        }
    }
    component(from.changes, watermark.changes) && component(from.deletions, watermark.deletions)
}

/// Whether a calendar feed read from `from` holds everything a user at `w` has not applied:
/// the same rule per watermark component, and the window's slice read from an end no later
/// than the user's.
fn covers_calendar(from: CalendarWatermark, w: CalendarWatermark) -> bool {
    let ln = |c: CalendarWatermark| LnWatermark {
        changes: c.changes,
        deletions: c.deletions,
    };
    let end = LnWatermark {
        changes: from.window_end,
        deletions: None,
    };
    let user_end = LnWatermark {
        changes: w.window_end,
        deletions: None,
    };
    covers(ln(from), ln(w)) && covers(end, user_end)
}

/// The older of two calendar watermarks per component; "never" is the oldest.
fn older_calendar(a: CalendarWatermark, b: CalendarWatermark) -> CalendarWatermark {
    let ln = LnWatermark {
        changes: a.changes,
        deletions: a.deletions,
    }
    .min(LnWatermark {
        changes: b.changes,
        deletions: b.deletions,
    });
    CalendarWatermark {
        changes: ln.changes,
        deletions: ln.deletions,
        window_end: match (a.window_end, b.window_end) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        },
    }
}

impl FeedCache {
    fn entry(&self, env: &EnvironmentId) -> Arc<tokio::sync::Mutex<EnvEntry>> {
        let mut envs = self.envs.lock().unwrap_or_else(PoisonError::into_inner);
        envs.entry(env.clone()).or_default().clone()
    }

    /// Contact feed reads made so far (tests assert R14 with it).
    pub fn feed_reads(&self) -> u64 {
        self.feed_reads.load(Ordering::SeqCst)
    }

    pub fn settings_reads(&self) -> u64 {
        self.settings_reads.load(Ordering::SeqCst)
    }

    /// The environment's settings as read at or after `not_before`.
    pub async fn settings(
        &self,
        env: &EnvironmentId,
        ln: &dyn LnGateway,
        clock: &dyn Clock,
        not_before: DateTime<Utc>,
    ) -> Result<Arc<Settings>, SyncError> {
        let entry = self.entry(env);
        // Held across the read so concurrent jobs of one environment wait for one read.
        let mut entry = entry.lock().await;
        if let Some((settings, at)) = &entry.settings
            && *at >= not_before
        {
            return Ok(settings.clone());
        }
        let at = clock.now();
        self.settings_reads.fetch_add(1, Ordering::SeqCst);
        let settings = Arc::new(ln.settings().await?);
        entry.settings = Some((settings.clone(), at));
        Ok(settings)
    }

    /// The environment's sync users and employees as read at or after `not_before`; a calendar
    /// feed read since then serves too (it carries both).
    pub async fn directory(
        &self,
        env: &EnvironmentId,
        ln: &dyn LnGateway,
        clock: &dyn Clock,
        not_before: DateTime<Utc>,
    ) -> Result<Arc<Directory>, SyncError> {
        let entry = self.entry(env);
        let mut entry = entry.lock().await;
        if let Some((d, at)) = &entry.directory
            && *at >= not_before
        {
            return Ok(d.clone());
        }
        if let Some((feed, at)) = &entry.calendar
            && *at >= not_before
        {
            return Ok(Arc::new(Directory {
                users: feed.users.clone(),
                employees: feed.employees.clone(),
            }));
        }
        let at = clock.now();
        let (users, employees) = futures::try_join!(ln.sync_users(), ln.employees())?;
        let d = Arc::new(Directory { users, employees });
        entry.directory = Some((d.clone(), at));
        Ok(d)
    }

    /// The environment's contact feed, read at or after `not_before`, from `from` or earlier.
    pub async fn contact_feed(
        &self,
        env: &EnvironmentId,
        ln: &dyn LnGateway,
        clock: &dyn Clock,
        from: LnWatermark,
        not_before: DateTime<Utc>,
    ) -> Result<Arc<ContactFeed>, SyncError> {
        let entry = self.entry(env);
        let mut entry = entry.lock().await;
        if let Some((feed, at)) = &entry.contacts
            && *at >= not_before
            && covers(feed.read_from, from)
        {
            return Ok(feed.clone());
        }
        let at = clock.now();
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        let feed = Arc::new(ContactFeed::read(ln, from).await?);
        entry.contacts = Some((feed.clone(), at));
        Ok(feed)
    }

    /// The environment's calendar feed for `window` (with its sync users), read at or after
    /// `not_before`, from `from` or earlier.
    pub async fn calendar_feed(
        &self,
        env: &EnvironmentId,
        ln: &dyn LnGateway,
        clock: &dyn Clock,
        from: CalendarWatermark,
        window: Window,
        not_before: DateTime<Utc>,
    ) -> Result<Arc<CalendarFeed>, SyncError> {
        let entry = self.entry(env);
        let mut entry = entry.lock().await;
        if let Some((feed, at)) = &entry.calendar
            && *at >= not_before
            && feed.window() == window
            && covers_calendar(feed.read_from, from)
        {
            return Ok(feed.clone());
        }
        let at = clock.now();
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        // Ownership of meetings needs every sync user of the environment, not only this job's.
        let users = ln.sync_users().await?;
        let feed = Arc::new(CalendarFeed::read(ln, window, from, &users).await?);
        entry.calendar = Some((feed.clone(), at));
        Ok(feed)
    }
}

// ---------------------------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------------------------

/// Runs jobs. Built once per process or Lambda container: its connector keeps LN tokens and
/// per-mailbox back-off, its cache the environments' feeds.
pub struct Worker {
    pub environments: Vec<EnvironmentConfig>,
    pub options: SyncOptions,
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub connector: Arc<dyn Connector>,
    pub clock: Arc<dyn Clock>,
    pub feeds: FeedCache,
    /// Where Exchange reaches the push endpoint, for `Subscribe` jobs (R31).
    pub push: PushSettings,
    /// This container's part of every lease holder name, for the logs.
    instance: String,
}

impl Worker {
    pub fn new(
        environments: Vec<EnvironmentConfig>,
        options: SyncOptions,
        store: Arc<dyn StateStore>,
        queue: Arc<dyn JobQueue>,
        connector: Arc<dyn Connector>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            environments,
            options,
            store,
            queue,
            connector,
            clock,
            feeds: FeedCache::default(),
            push: PushSettings::default(),
            instance: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The push settings `Subscribe` jobs use (default: no push URL, so none are made).
    pub fn with_push(mut self, push: PushSettings) -> Self {
        self.push = push;
        self
    }

    fn environment(&self, id: &EnvironmentId) -> Option<&EnvironmentConfig> {
        self.environments.iter().find(|e| &e.id == id)
    }

    /// Handles a batch: failures are reported per message, throttled ones get their visibility
    /// changed, and a group's messages after its first failure are failed without running.
    pub async fn run_batch(&self, messages: &[InboundMessage]) -> BatchReport {
        let parsed: Vec<Result<Job, String>> = messages
            .iter()
            .map(|m| {
                serde_json::from_str::<Job>(&m.body)
                    .map_err(|e| format!("message body is not a job: {e}"))
            })
            .collect();
        self.warm(&parsed).await;

        // Groups in order of first appearance, each a list of indexes in batch order.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (m, job)) in messages.iter().zip(&parsed).enumerate() {
            let group = m
                .group
                .clone()
                .or_else(|| job.as_ref().ok().map(Job::group))
                .unwrap_or_else(|| m.message_id.clone());
            if !groups.contains_key(&group) {
                order.push(group.clone());
            }
            groups.entry(group).or_default().push(i);
        }
        let runs = futures::stream::iter(order.into_iter().filter_map(|g| groups.remove(&g)))
            .map(|indexes| self.run_group(messages, &parsed, indexes))
            .buffer_unordered(self.options.user_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut outcomes: Vec<Option<JobOutcome>> = vec![None; messages.len()];
        for (i, outcome) in runs.into_iter().flatten() {
            outcomes[i] = Some(outcome);
        }
        let mut report = BatchReport::default();
        for (m, outcome) in messages.iter().zip(outcomes) {
            let outcome = outcome.unwrap_or_else(|| JobOutcome::Failed("not processed".to_owned()));
            if !outcome.is_success() {
                report.failed.push(m.message_id.clone());
            }
            report.outcomes.push((m.message_id.clone(), outcome));
        }
        report
    }

    async fn run_group(
        &self,
        messages: &[InboundMessage],
        parsed: &[Result<Job, String>],
        indexes: Vec<usize>,
    ) -> Vec<(usize, JobOutcome)> {
        let mut out = Vec::new();
        let mut failed: Option<String> = None;
        for i in indexes {
            let message = &messages[i];
            let outcome = match (&failed, &parsed[i]) {
                (Some(first), _) => JobOutcome::Retry {
                    after: None,
                    error: format!("an earlier message of its group failed ({first})"),
                },
                (None, Err(e)) => JobOutcome::Failed(e.clone()),
                (None, Ok(job)) => {
                    let outcome = self.run_job(job).await;
                    log_outcome(job, message, &outcome);
                    outcome
                }
            };
            if !outcome.is_success() && failed.is_none() {
                failed = Some(message.message_id.clone());
                if let JobOutcome::Retry {
                    after: Some(delay), ..
                } = &outcome
                    && let Err(e) = self.queue.retry_later(&message.receipt, *delay).await
                {
                    // The message still fails and comes back after the queue's own visibility
                    // timeout, only later than the hint asked.
                    tracing::warn!(message_id = %message.message_id, error = %error_chain(&e), "could not delay the message");
                }
            }
            out.push((i, outcome));
        }
        out
    }

    /// R14: reads each environment's settings and contact feed once for the whole batch, from
    /// the oldest watermark of the batch's users. Errors are left to the jobs to report.
    async fn warm(&self, parsed: &[Result<Job, String>]) {
        type Users<'a> = (Vec<&'a UserId>, Vec<&'a UserId>, DateTime<Utc>);
        let mut by_env: HashMap<&EnvironmentId, Users<'_>> = HashMap::new();
        for job in parsed.iter().flatten() {
            let e = by_env
                .entry(&job.env)
                .or_insert_with(|| (Vec::new(), Vec::new(), job.enqueued_at));
            match job.kind {
                JobKind::ContactPull => e.0.push(&job.user),
                JobKind::CalendarPull => e.1.push(&job.user),
                JobKind::SingleEvent { .. } | JobKind::Subscribe => continue,
            }
            e.2 = e.2.max(job.enqueued_at);
        }
        for (env_id, (contact_users, calendar_users, not_before)) in by_env {
            if contact_users.is_empty() && calendar_users.is_empty() {
                continue;
            }
            let Some(env) = self.environment(env_id) else {
                continue;
            };
            // A stopped environment's jobs are dropped without touching LN (R1).
            if !matches!(self.store.environment(env_id).await, Ok(Some(s)) if s.started) {
                continue;
            }
            let Ok(ln) = self.connector.ln(env) else {
                continue;
            };
            let clock = self.clock.as_ref();
            let Ok(settings) = self
                .feeds
                .settings(env_id, ln.as_ref(), clock, not_before)
                .await
            else {
                continue;
            };
            if settings.synchronize_contacts && !contact_users.is_empty() {
                let mut from: Option<LnWatermark> = None;
                for user in contact_users {
                    if let Ok(w) = self.watermark(env_id, user).await {
                        from = Some(from.map_or(w, |f| f.min(w)));
                    }
                }
                let _ = self
                    .feeds
                    .contact_feed(
                        env_id,
                        ln.as_ref(),
                        clock,
                        from.unwrap_or_default(),
                        not_before,
                    )
                    .await;
            }
            if settings.synchronize_activities && !calendar_users.is_empty() {
                let mut from: Option<CalendarWatermark> = None;
                for user in calendar_users {
                    if let Ok(w) = self.calendar_watermark(env_id, user).await {
                        from = Some(from.map_or(w, |f| older_calendar(f, w)));
                    }
                }
                let window = self.calendar_sync(env_id).window();
                let _ = self
                    .feeds
                    .calendar_feed(
                        env_id,
                        ln.as_ref(),
                        clock,
                        from.unwrap_or_default(),
                        window,
                        not_before,
                    )
                    .await;
            }
        }
    }

    fn calendar_sync<'a>(&'a self, env: &'a EnvironmentId) -> CalendarSync<'a> {
        CalendarSync {
            env,
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            options: &self.options,
        }
    }

    async fn calendar_watermark(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<CalendarWatermark, SyncError> {
        match self
            .store
            .cursor(env, user, CursorKind::LnActivities)
            .await?
        {
            None => Ok(CalendarWatermark::default()),
            Some(c) => serde_json::from_str(&c.value).map_err(|e| {
                SyncError::Store(StoreError::Corrupt {
                    message: format!("activity watermark of {user}: {e}"),
                })
            }),
        }
    }

    async fn watermark(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<LnWatermark, SyncError> {
        match self.store.cursor(env, user, CursorKind::LnContacts).await? {
            None => Ok(LnWatermark::default()),
            Some(c) => serde_json::from_str(&c.value).map_err(|e| {
                SyncError::Store(StoreError::Corrupt {
                    message: format!("contact watermark of {user}: {e}"),
                })
            }),
        }
    }

    /// Runs one job (see the module docs for the delivery rules).
    pub async fn run_job(&self, job: &Job) -> JobOutcome {
        let Some(env) = self.environment(&job.env) else {
            return JobOutcome::Failed(format!(
                "environment {} is not configured in this deployment",
                job.env
            ));
        };
        match self.store.environment(&job.env).await {
            Ok(Some(state)) if state.started => {}
            // R1: a stopped environment keeps its state and runs nothing, also queued jobs.
            Ok(_) => return JobOutcome::Dropped(format!("environment {} is stopped", job.env)),
            Err(e) => return JobOutcome::from_error(&e.into()),
        }
        match &job.kind {
            JobKind::ContactPull | JobKind::CalendarPull => {}
            // Both re-read current state, so running one twice is harmless and no done mark
            // is needed: a redelivered notification job makes no write the second time.
            JobKind::SingleEvent {
                exchange_id,
                activity,
            } => {
                let target = match (exchange_id, activity) {
                    (Some(id), _) => EventTarget::Exchange(id.clone()),
                    (None, Some(key)) => EventTarget::Activity(key.clone()),
                    (None, None) => {
                        return JobOutcome::Failed("an event job names no event".to_owned());
                    }
                };
                return match self.single_event(env, job, &target).await {
                    Ok(outcome) => outcome,
                    Err(e) => JobOutcome::from_error(&e),
                };
            }
            JobKind::Subscribe => {
                return match self.subscribe(env, job).await {
                    Ok(outcome) => outcome,
                    Err(e) => JobOutcome::classified(e.class(), error_chain(&e)),
                };
            }
        }
        // A zero-length mark is a test that leaves nothing behind: it fails only while a
        // completed run's mark (JOB_DONE_TTL) is alive, and an expired mark counts as absent.
        match self
            .store
            .mark_job_done(&job.id, self.clock.now(), Duration::ZERO)
            .await
        {
            Ok(false) => return JobOutcome::AlreadyDone,
            Ok(true) => {}
            Err(e) => return JobOutcome::from_error(&e.into()),
        }
        match self.pull(env, job).await {
            Ok(outcome) => outcome,
            Err(e) => JobOutcome::from_error(&e),
        }
    }

    /// The LN side a push job needs before it can run: the client and the environment's
    /// settings (calendar sync on?), reused while younger than [`PUSH_READ_MAX_AGE`]. `Err` is
    /// the job's outcome when it cannot run.
    async fn push_context(
        &self,
        env: &EnvironmentConfig,
        job: &Job,
    ) -> Result<(Arc<dyn LnGateway>, Arc<Settings>), JobOutcome> {
        let ln = self.connector.ln(env).map_err(JobOutcome::Failed)?;
        let not_before = job.enqueued_at - PUSH_READ_MAX_AGE;
        let settings = self
            .feeds
            .settings(&job.env, ln.as_ref(), self.clock.as_ref(), not_before)
            .await
            .map_err(|e| JobOutcome::from_error(&e))?;
        if !settings.synchronize_activities {
            return Err(JobOutcome::Dropped(
                "Synchronize Activities is off in LN".to_owned(),
            ));
        }
        Ok((ln, settings))
    }

    /// A single-event sync after a push notification (R31): the event's owner (for an LN
    /// webhook, found now) reconciles just that event, under the calendar lease (R36).
    async fn single_event(
        &self,
        env: &EnvironmentConfig,
        job: &Job,
        target: &EventTarget,
    ) -> Result<JobOutcome, SyncError> {
        let (ln, settings) = match self.push_context(env, job).await {
            Ok(c) => c,
            Err(outcome) => return Ok(outcome),
        };
        let not_before = job.enqueued_at - PUSH_READ_MAX_AGE;
        let directory = self
            .feeds
            .directory(&job.env, ln.as_ref(), self.clock.as_ref(), not_before)
            .await?;
        let sync = self.calendar_sync(&job.env);
        let user = if job.user.is_any() {
            let EventTarget::Activity(key) = target else {
                return Ok(JobOutcome::Failed(
                    "an Exchange event job must name its user".to_owned(),
                ));
            };
            match sync
                .owner_of_activity(ln.as_ref(), key, &directory.users, &directory.employees)
                .await?
            {
                Some(owner) => owner,
                None => {
                    return Ok(JobOutcome::Dropped(format!(
                        "activity {key} is no sync user's meeting"
                    )));
                }
            }
        } else {
            match directory.users.iter().find(|u| u.user == job.user) {
                Some(u) => u.clone(),
                None => {
                    return Ok(JobOutcome::Dropped(format!(
                        "{} is not a sync user any more",
                        job.user
                    )));
                }
            }
        };
        let mailbox: Arc<dyn Mailbox> = match self.connector.mailbox(env, &settings) {
            Ok(m) => m,
            Err(e) => return Ok(JobOutcome::Failed(e)),
        };
        let holder = format!("{}/{}", self.instance, uuid::Uuid::new_v4().simple());
        let run = sync
            .sync_event(
                ln.as_ref(),
                mailbox.as_ref(),
                &user,
                target,
                &directory.users,
                &directory.employees,
                &holder,
            )
            .await;
        Ok(run_outcome(run, PUSH_BUSY_RETRY))
    }

    /// Creates, renews or recreates the user's push subscription (R31, R33), then ends the
    /// user's retired Graph subscriptions at Graph (see [`crate::push::subscriptions`]).
    async fn subscribe(
        &self,
        env: &EnvironmentConfig,
        job: &Job,
    ) -> Result<JobOutcome, SubscribeError> {
        let ln = match self.connector.ln(env) {
            Ok(ln) => ln,
            Err(e) => return Ok(JobOutcome::Failed(e)),
        };
        let not_before = job.enqueued_at - PUSH_READ_MAX_AGE;
        let settings = match self
            .feeds
            .settings(&job.env, ln.as_ref(), self.clock.as_ref(), not_before)
            .await
        {
            Ok(s) => s,
            Err(e) => return Ok(JobOutcome::from_error(&e)),
        };
        let outcome = self
            .subscribe_if_wanted(env, job, ln.as_ref(), &settings)
            .await;
        // Whatever became of the subscription: a failure to make one must not keep the old
        // ones alive at Graph.
        let ended = self.end_retired_graph(env, job, &settings).await;
        match outcome? {
            JobOutcome::Done { outcome, counts } => Ok(JobOutcome::Done {
                outcome,
                counts: RunCounts {
                    deleted: counts.deleted + ended,
                    ..counts
                },
            }),
            JobOutcome::Dropped(_) if ended > 0 => Ok(JobOutcome::Done {
                outcome: RunOutcome::Succeeded,
                counts: RunCounts {
                    deleted: ended,
                    ..RunCounts::default()
                },
            }),
            other => Ok(other),
        }
    }

    async fn subscribe_if_wanted(
        &self,
        env: &EnvironmentConfig,
        job: &Job,
        ln: &dyn LnGateway,
        settings: &Settings,
    ) -> Result<JobOutcome, SubscribeError> {
        if !push_wanted(settings, &self.push) {
            return Ok(JobOutcome::Dropped(
                "push or calendar sync is off in LN, or this deployment has no push URL".to_owned(),
            ));
        }
        // LN's list, not the store's: the tick also queues this job for users it retired
        // (to end their Graph subscriptions), who must not get a new one.
        let not_before = job.enqueued_at - PUSH_READ_MAX_AGE;
        let directory = match self
            .feeds
            .directory(&job.env, ln, self.clock.as_ref(), not_before)
            .await
        {
            Ok(d) => d,
            Err(e) => return Ok(JobOutcome::from_error(&e)),
        };
        let Some(user) = directory
            .users
            .iter()
            .find(|u| u.user == job.user && u.active && !u.email.as_str().trim().is_empty())
        else {
            return Ok(JobOutcome::Dropped(format!(
                "{} is not an active sync user",
                job.user
            )));
        };
        let mailbox: Arc<dyn Mailbox> = match self.connector.mailbox(env, settings) {
            Ok(m) => m,
            Err(e) => return Ok(JobOutcome::Failed(e)),
        };
        let done = subscribe_user(&SubscribeContext {
            env: &job.env,
            user: &job.user,
            address: &user.email,
            backend: settings.exchange_backend,
            store: self.store.as_ref(),
            queue: self.queue.as_ref(),
            mailbox: mailbox.as_ref(),
            push: &self.push,
            now: self.clock.now(),
        })
        .await?;
        let counts = match done {
            SubscribeOutcome::Kept(_) => RunCounts::default(),
            SubscribeOutcome::Created { .. } => RunCounts {
                created: 1,
                ..RunCounts::default()
            },
            SubscribeOutcome::Renewed { .. } => RunCounts {
                updated: 1,
                ..RunCounts::default()
            },
        };
        Ok(JobOutcome::Done {
            outcome: RunOutcome::Succeeded,
            counts,
        })
    }

    /// Deletes the user's retired Graph subscriptions at Graph; best effort (they lapse at
    /// their expiry otherwise), so problems are logged, not failed. Answers how many ended.
    async fn end_retired_graph(
        &self,
        env: &EnvironmentConfig,
        job: &Job,
        settings: &Settings,
    ) -> u32 {
        let now = self.clock.now();
        let pending = match self.store.subscriptions(&job.env).await {
            Ok(subs) => subs
                .iter()
                .any(|s| s.user == job.user && !s.active && live_at_graph(s, now)),
            Err(e) => {
                tracing::warn!(env = %job.env, user = %job.user, error = %error_chain(&e), "could not read the user's subscriptions");
                return 0;
            }
        };
        if !pending {
            return 0;
        }
        // A Graph client even when LN has switched the environment back to EWS: the retired
        // subscriptions live at Graph.
        let graph = Settings {
            exchange_backend: ExchangeBackend::Graph,
            ..settings.clone()
        };
        let mailbox = match self.connector.mailbox(env, &graph) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(env = %job.env, user = %job.user, error = %e, "no Graph client to delete retired subscriptions with; they lapse at their expiry");
                return 0;
            }
        };
        match end_retired(
            &job.env,
            &job.user,
            self.store.as_ref(),
            mailbox.as_ref(),
            now,
        )
        .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(env = %job.env, user = %job.user, error = %error_chain(&e), "could not record deleted Graph subscriptions");
                0
            }
        }
    }

    /// A contact or calendar pull of one user, with the environment's cached LN reads.
    async fn pull(&self, env: &EnvironmentConfig, job: &Job) -> Result<JobOutcome, SyncError> {
        let Some(state) = self.store.user_state(&job.env, &job.user).await? else {
            return Ok(JobOutcome::Failed(format!(
                "user {} of environment {} is unknown; the scheduler registers users",
                job.user, job.env
            )));
        };
        let ln = match self.connector.ln(env) {
            Ok(ln) => ln,
            Err(e) => return Ok(JobOutcome::Failed(e)),
        };
        let clock = self.clock.as_ref();
        let settings = self
            .feeds
            .settings(&job.env, ln.as_ref(), clock, job.enqueued_at)
            .await?;
        let Some(kind) = SyncKind::of_job(&job.kind) else {
            return Ok(JobOutcome::Failed(format!(
                "a {} job is not a pull",
                job.kind.label()
            )));
        };
        if !kind.enabled(&settings) {
            return Ok(JobOutcome::Dropped(format!(
                "{} is off in LN",
                kind.switch()
            )));
        }
        let calendar = kind == SyncKind::Calendar;
        let mailbox: Arc<dyn Mailbox> = match self.connector.mailbox(env, &settings) {
            Ok(m) => m,
            Err(e) => return Ok(JobOutcome::Failed(e)),
        };
        let mut user = SyncUser {
            user: job.user.clone(),
            name: job.user.to_string(),
            active: true,
            email: state.mailbox.clone(),
        };
        // One holder per execution: two deliveries of one job in this container must not share
        // a (re-entrant) lease.
        let holder = format!("{}/{}", self.instance, uuid::Uuid::new_v4().simple());
        let run: UserRun = if calendar {
            let sync = self.calendar_sync(&job.env);
            let watermark = self.calendar_watermark(&job.env, &job.user).await?;
            let feed = self
                .feeds
                .calendar_feed(
                    &job.env,
                    ln.as_ref(),
                    clock,
                    watermark,
                    sync.window(),
                    job.enqueued_at,
                )
                .await?;
            if let Some(listed) = feed.users.iter().find(|u| u.user == job.user) {
                user = listed.clone();
            }
            sync.run_user(ln.as_ref(), mailbox.as_ref(), &user, &feed, &holder)
                .await
        } else {
            let watermark = self.watermark(&job.env, &job.user).await?;
            let feed = self
                .feeds
                .contact_feed(&job.env, ln.as_ref(), clock, watermark, job.enqueued_at)
                .await?;
            let sync = ContactSync {
                env: &job.env,
                store: self.store.as_ref(),
                clock,
                options: &self.options,
            };
            sync.run_user(ln.as_ref(), mailbox.as_ref(), &user, &feed, &holder)
                .await
        };
        let outcome = run_outcome(run, BUSY_RETRY);
        if matches!(outcome, JobOutcome::Done { .. })
            && let Err(e) = self
                .store
                .mark_job_done(&job.id, self.clock.now(), JOB_DONE_TTL)
                .await
        {
            // Losing this mark only costs an idle re-run on a redelivery.
            tracing::warn!(job_id = %job.id, error = %error_chain(&e), "could not mark the job done");
        }
        Ok(outcome)
    }
}

/// A user's run as a job outcome: a busy lease is retried after `busy_retry`.
fn run_outcome(run: UserRun, busy_retry: Duration) -> JobOutcome {
    match (run.outcome, run.error) {
        (RunOutcome::Succeeded | RunOutcome::Partial, _) => JobOutcome::Done {
            outcome: run.outcome,
            counts: run.counts,
        },
        (RunOutcome::Busy, _) => JobOutcome::Retry {
            after: Some(busy_retry),
            error: "another run holds this user's lease".to_owned(),
        },
        (_, Some(e)) => JobOutcome::from_error(&e),
        (_, None) => JobOutcome::Retry {
            after: None,
            error: "the run failed".to_owned(),
        },
    }
}

fn log_outcome(job: &Job, message: &InboundMessage, outcome: &JobOutcome) {
    let (env, user, job_id, kind) = (&job.env, &job.user, &job.id, job.kind.label());
    let receive_count = message.receive_count;
    match outcome {
        JobOutcome::Done { outcome, counts } => tracing::info!(
            env = %env, user = %user, job_id = %job_id, kind, receive_count,
            outcome = ?outcome, created = counts.created, updated = counts.updated,
            deleted = counts.deleted, errors = counts.errors, held = counts.held, "job done"
        ),
        JobOutcome::AlreadyDone => tracing::info!(
            env = %env, user = %user, job_id = %job_id, kind, receive_count,
            "redelivered job already done; skipped"
        ),
        JobOutcome::Dropped(reason) => tracing::info!(
            env = %env, user = %user, job_id = %job_id, kind, reason = %reason, "job dropped"
        ),
        JobOutcome::Retry { after, error } => tracing::warn!(
            env = %env, user = %user, job_id = %job_id, kind, receive_count,
            retry_after_ms = after.map(|d| d.as_millis() as u64), error = %error, "job failed; will retry"
        ),
        JobOutcome::Failed(error) => tracing::error!(
            env = %env, user = %user, job_id = %job_id, kind, receive_count,
            error = %error, "job failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The worker's `Subscribe` job around `push::subscriptions`: which backend's client it asks
    //! for, whom it subscribes, and that it ends retired Graph subscriptions. The subscription
    //! rules themselves are tested in `push::subscriptions`.

    use super::*;
    use crate::config::{LnConfig, SecretSource};
    use crate::push::subscriptions::tests::FakeMailbox;
    use async_trait::async_trait;
    use chrono::TimeZone;
    use lnsync_adapters::memqueue::InMemoryQueue;
    use lnsync_core::error::LnError;
    use lnsync_core::ids::{
        ActivityKey, ContactCode, JobId, LnVersion, MailboxAddress, SubscriptionId,
    };
    use lnsync_core::model::{
        Activity, Attendee, Contact, DeletedEntity, DeletedObject, EnvironmentState, IntervalUnit,
        PullInterval, PushSubscription,
    };
    use lnsync_core::ports::{ActivityPatch, AttendeePatch, NewActivity};
    use lnsync_core::secret::Secret;
    use lnsync_core::testing::{ManualClock, MemoryStore};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
            .single()
            .unwrap_or_default()
    }

    /// LN as a Subscribe job reads it: settings and the directory, nothing else.
    struct DirectoryLn {
        settings: Settings,
        users: Vec<SyncUser>,
    }

    fn not_here<T>() -> Result<T, LnError> {
        Err(LnError::Configuration("not read by a Subscribe job".into()))
    }

    #[async_trait]
    impl LnGateway for DirectoryLn {
        async fn settings(&self) -> Result<Settings, LnError> {
            Ok(self.settings.clone())
        }
        async fn sync_users(&self) -> Result<Vec<SyncUser>, LnError> {
            Ok(self.users.clone())
        }
        async fn employees(&self) -> Result<Vec<Employee>, LnError> {
            Ok(Vec::new())
        }
        async fn contacts_changed_since(
            &self,
            _: Option<DateTime<Utc>>,
        ) -> Result<Vec<Contact>, LnError> {
            not_here()
        }
        async fn contacts_by_key(&self, _: &[ContactCode]) -> Result<Vec<Contact>, LnError> {
            not_here()
        }
        async fn deleted_since(
            &self,
            _: DeletedEntity,
            _: Option<DateTime<Utc>>,
        ) -> Result<Vec<DeletedObject>, LnError> {
            not_here()
        }
        async fn activities_in_window(
            &self,
            _: Window,
            _: Option<DateTime<Utc>>,
        ) -> Result<Vec<Activity>, LnError> {
            not_here()
        }
        async fn activity(&self, _: &ActivityKey) -> Result<Option<Activity>, LnError> {
            not_here()
        }
        async fn create_activity(&self, _: &NewActivity) -> Result<Activity, LnError> {
            not_here()
        }
        async fn update_activity(
            &self,
            _: &ActivityKey,
            _: &LnVersion,
            _: &ActivityPatch,
        ) -> Result<Activity, LnError> {
            not_here()
        }
        async fn update_attendee(
            &self,
            _: &ActivityKey,
            _: u32,
            _: Option<&LnVersion>,
            _: &AttendeePatch,
        ) -> Result<(Attendee, Option<LnVersion>), LnError> {
            not_here()
        }
        async fn add_attendee(&self, _: &ActivityKey, _: &Attendee) -> Result<Attendee, LnError> {
            not_here()
        }
        async fn delete_attendee(
            &self,
            _: &ActivityKey,
            _: u32,
            _: Option<&LnVersion>,
        ) -> Result<(), LnError> {
            not_here()
        }
        async fn delete_activity(&self, _: &ActivityKey, _: &LnVersion) -> Result<(), LnError> {
            not_here()
        }
    }

    /// Hands out one fake mailbox per backend and records which backends were asked for.
    struct FakeConnector {
        ln: Arc<DirectoryLn>,
        ews: Arc<FakeMailbox>,
        graph: Arc<FakeMailbox>,
        asked: Mutex<Vec<ExchangeBackend>>,
    }

    impl Connector for FakeConnector {
        fn ln(&self, _: &EnvironmentConfig) -> Result<Arc<dyn LnGateway>, String> {
            Ok(self.ln.clone())
        }
        fn mailbox(
            &self,
            _: &EnvironmentConfig,
            settings: &Settings,
        ) -> Result<Arc<dyn Mailbox>, String> {
            self.asked
                .lock()
                .map_err(|_| "lock")?
                .push(settings.exchange_backend);
            Ok(match settings.exchange_backend {
                ExchangeBackend::Ews => self.ews.clone(),
                ExchangeBackend::Graph => self.graph.clone(),
            })
        }
    }

    fn settings(backend: ExchangeBackend, push_enabled: bool) -> Settings {
        let hourly = PullInterval {
            value: 1,
            unit: IntervalUnit::Hours,
        };
        Settings {
            exchange_backend: backend,
            exchange_url: None,
            azure_tenant: Some("corp.example".into()),
            client_id: Some("app-1".into()),
            contact_pull_interval: hourly,
            calendar_pull_interval: hourly,
            push_enabled,
            synchronize_contacts: true,
            synchronize_activities: true,
        }
    }

    fn alice(active: bool) -> SyncUser {
        SyncUser {
            user: UserId::new("alice"),
            name: "Alice".into(),
            active,
            email: MailboxAddress::new("alice@corp.example"),
        }
    }

    fn graph_sub(id: &str, active: bool) -> PushSubscription {
        PushSubscription {
            env: EnvironmentId::new("prod"),
            user: UserId::new("alice"),
            id: SubscriptionId::new(id),
            mailbox: MailboxAddress::new("alice@corp.example"),
            backend: ExchangeBackend::Graph,
            watermark: None,
            status_frequency_minutes: 30,
            created_at: now() - chrono::Duration::days(2),
            last_seen: now() - chrono::Duration::days(1),
            expires_at: Some(now() + chrono::Duration::days(4)),
            active,
        }
    }

    struct Setup {
        worker: Worker,
        store: Arc<MemoryStore>,
        connector: Arc<FakeConnector>,
    }

    async fn setup(
        settings: Settings,
        users: Vec<SyncUser>,
    ) -> Result<Setup, Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::default());
        store
            .put_environment(&EnvironmentState {
                env: EnvironmentId::new("prod"),
                started: true,
                updated_at: now(),
            })
            .await?;
        let connector = Arc::new(FakeConnector {
            ln: Arc::new(DirectoryLn { settings, users }),
            ews: Arc::default(),
            graph: Arc::default(),
            asked: Mutex::default(),
        });
        let env = EnvironmentConfig {
            id: EnvironmentId::new("prod"),
            company: "100".into(),
            ln: LnConfig {
                ionapi: SecretSource::Value(Secret::new("{}")),
                service_path: None,
                page_size: None,
                webhook_secret: None,
            },
            exchange: None,
            graph: None,
        };
        let worker = Worker::new(
            vec![env],
            SyncOptions::default(),
            store.clone(),
            Arc::new(InMemoryQueue::default()),
            connector.clone(),
            Arc::new(ManualClock::new(now())),
        )
        .with_push(PushSettings {
            public_url: url::Url::parse("https://push.example").ok(),
            ..PushSettings::default()
        });
        Ok(Setup {
            worker,
            store,
            connector,
        })
    }

    fn subscribe_job() -> Job {
        Job {
            id: JobId::new("prod/alice/subscribe/20261129T100000Z"),
            env: EnvironmentId::new("prod"),
            user: UserId::new("alice"),
            kind: JobKind::Subscribe,
            enqueued_at: now(),
        }
    }

    fn counts(outcome: &JobOutcome) -> Option<(u32, u32, u32)> {
        match outcome {
            JobOutcome::Done { counts, .. } => {
                Some((counts.created, counts.updated, counts.deleted))
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn on_graph_the_job_subscribes_through_the_graph_client() -> TestResult {
        let s = setup(settings(ExchangeBackend::Graph, true), vec![alice(true)]).await?;
        let outcome = s.worker.run_job(&subscribe_job()).await;
        assert_eq!(counts(&outcome), Some((1, 0, 0)), "{outcome:?}");
        assert_eq!(
            *s.connector.asked.lock().map_err(|_| "lock")?,
            [ExchangeBackend::Graph]
        );
        let subs = s.store.subscriptions(&EnvironmentId::new("prod")).await?;
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].backend, ExchangeBackend::Graph);
        assert_eq!(subs[0].mailbox.as_str(), "alice@corp.example");
        Ok(())
    }

    #[tokio::test]
    async fn a_user_ln_no_longer_lists_as_active_gets_no_subscription_and_loses_the_old_one()
    -> TestResult {
        let s = setup(settings(ExchangeBackend::Graph, true), vec![alice(false)]).await?;
        s.store.put_subscription(&graph_sub("g-old", false)).await?;
        let outcome = s.worker.run_job(&subscribe_job()).await;
        assert_eq!(counts(&outcome), Some((0, 0, 1)), "{outcome:?}");
        assert!(
            s.connector
                .graph
                .created
                .lock()
                .map_err(|_| "lock")?
                .is_empty()
        );
        assert_eq!(
            *s.connector.graph.deleted.lock().map_err(|_| "lock")?,
            [SubscriptionId::new("g-old")]
        );
        Ok(())
    }

    #[tokio::test]
    async fn back_on_ews_the_graph_subscription_is_replaced_and_deleted_at_graph() -> TestResult {
        let s = setup(settings(ExchangeBackend::Ews, true), vec![alice(true)]).await?;
        s.store.put_subscription(&graph_sub("g-live", true)).await?;
        let outcome = s.worker.run_job(&subscribe_job()).await;
        assert_eq!(counts(&outcome), Some((1, 0, 1)), "{outcome:?}");
        assert_eq!(s.connector.ews.created.lock().map_err(|_| "lock")?.len(), 1);
        assert_eq!(
            *s.connector.graph.deleted.lock().map_err(|_| "lock")?,
            [SubscriptionId::new("g-live")]
        );
        assert_eq!(
            *s.connector.asked.lock().map_err(|_| "lock")?,
            [ExchangeBackend::Ews, ExchangeBackend::Graph]
        );
        Ok(())
    }

    #[tokio::test]
    async fn with_push_off_and_nothing_to_end_the_job_is_dropped() -> TestResult {
        let s = setup(settings(ExchangeBackend::Graph, false), vec![alice(true)]).await?;
        let outcome = s.worker.run_job(&subscribe_job()).await;
        assert!(matches!(outcome, JobOutcome::Dropped(_)), "{outcome:?}");
        assert!(s.connector.asked.lock().map_err(|_| "lock")?.is_empty());
        Ok(())
    }
}
