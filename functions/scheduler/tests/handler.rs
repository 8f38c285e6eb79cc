//! The scheduler handler against the LN simulator, the SQLite store and the in-process queue.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lnsync_adapters::memqueue::InMemoryQueue;
use lnsync_core::error::QueueError;
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{EnvironmentState, Job, JobKind, UserState};
use lnsync_core::ports::{Delivery, JobQueue, Receipt, StateStore, SystemClock};
use lnsync_scheduler::{Scheduler, handle};
use lnsync_tests::harness::{BoxError, TestResult, World, live_connector, qualifying_contacts};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The in-process queue, counting enqueue calls and jobs (SQS would batch them by 10).
#[derive(Default)]
struct CountingQueue {
    inner: InMemoryQueue,
    calls: AtomicUsize,
    jobs: AtomicUsize,
}

#[async_trait]
impl JobQueue for CountingQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.jobs.fetch_add(jobs.len(), Ordering::SeqCst);
        self.inner.enqueue(jobs).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.inner.complete(receipt).await
    }
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_later(receipt, delay).await
    }
    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError> {
        self.inner.dead_letters().await
    }
}

struct Setup {
    world: World,
    queue: Arc<CountingQueue>,
    scheduler: Scheduler,
}

async fn setup(users: usize) -> Result<Setup, BoxError> {
    let world = World::single(users, qualifying_contacts(3)).await?;
    // Contacts only, so job counts are users; calendar jobs have their own test.
    let settings: ln_sim::model::Settings =
        serde_json::from_value(json!({"synchronizeActivities": false}))?;
    world.ln.store().set_settings("100", settings)?;
    let queue = Arc::new(CountingQueue::default());
    let scheduler = Scheduler {
        environments: world.config.environments.clone(),
        store: world.store.clone(),
        queue: queue.clone(),
        connector: Arc::new(live_connector()),
        clock: Arc::new(SystemClock),
        push: Default::default(),
    };
    Ok(Setup {
        world,
        queue,
        scheduler,
    })
}

fn event(time: DateTime<Utc>) -> Result<EventBridgeEvent<Value>, BoxError> {
    Ok(serde_json::from_value(json!({
        "version": "0",
        "id": "tick",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": time,
        "detail": {}
    }))?)
}

fn at(text: &str) -> Result<DateTime<Utc>, BoxError> {
    Ok(text.parse()?)
}

impl Setup {
    async fn state(&self, user: usize) -> Result<UserState, BoxError> {
        self.world
            .user_state("prod", self.world.user(0, user))
            .await
    }

    async fn queued(&self) -> Result<Vec<Job>, BoxError> {
        let mut jobs = Vec::new();
        loop {
            let got = self.queue.receive(10, Duration::from_millis(50)).await?;
            if got.is_empty() {
                return Ok(jobs);
            }
            for d in got {
                self.queue.complete(&d.receipt).await?;
                jobs.push(d.job);
            }
        }
    }
}

#[tokio::test]
async fn a_tick_queues_one_job_per_due_user_and_records_the_next_boundary() -> TestResult {
    let s = setup(3).await?;
    s.world.clear_logs();
    let summary = handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?).await?;
    assert_eq!(summary["jobs"], 3, "{summary}");
    let jobs = s.queued().await?;
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.kind == JobKind::ContactPull));
    assert!(
        jobs.iter()
            .any(|j| j.id.as_str() == "prod/alice/contacts/20261130T090000Z"),
        "{jobs:?}"
    );
    // The simulator's default contact interval is one hour: the next run is on the hour (R6).
    assert_eq!(
        s.state(0).await?.next_contact_run,
        Some(at("2026-11-30T10:00:00Z")?)
    );
    // A tick reads settings and users, never item data.
    assert_eq!(s.world.ln_gets("100", "Contacts").len(), 0);
    assert_eq!(s.world.ln_gets("100", "DeletedObjects").len(), 0);
    assert_eq!(s.world.ln_gets("100", "Settings").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_repeated_tick_is_deduplicated_and_a_tick_with_nothing_due_sends_nothing() -> TestResult {
    let s = setup(2).await?;
    let t = at("2026-11-30T09:07:00Z")?;
    handle(&s.scheduler, event(t)?).await?;
    // Same event again (EventBridge retry), users' due times already moved: nothing due.
    let summary = handle(&s.scheduler, event(t)?).await?;
    assert_eq!(summary["jobs"], 0);
    assert_eq!(
        s.queue.calls.load(Ordering::SeqCst),
        1,
        "no queue call without due users"
    );
    // A tick that died before saving the due times sends the same ids again: deduplicated.
    for i in 0..2 {
        let mut state = s.state(i).await?;
        state.next_contact_run = None;
        s.world.store.put_user_state(&state).await?;
    }
    handle(&s.scheduler, event(t + ChronoDuration::seconds(30))?).await?;
    assert_eq!(s.queue.jobs.load(Ordering::SeqCst), 4);
    assert_eq!(
        s.queued().await?.len(),
        2,
        "the queue dropped the repeated ids"
    );
    Ok(())
}

#[tokio::test]
async fn an_outage_leads_to_one_catch_up_run() -> TestResult {
    let s = setup(1).await?;
    handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?).await?;
    s.queued().await?;
    // Six hours later: six boundaries missed, one job.
    let summary = handle(&s.scheduler, event(at("2026-11-30T15:20:00Z")?)?).await?;
    assert_eq!(summary["jobs"], 1);
    assert_eq!(s.queued().await?.len(), 1);
    assert_eq!(
        s.state(0).await?.next_contact_run,
        Some(at("2026-11-30T16:00:00Z")?)
    );
    Ok(())
}

#[tokio::test]
async fn new_users_and_changed_mailboxes_take_effect_at_the_next_tick() -> TestResult {
    let s = setup(1).await?;
    handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?).await?;
    s.queued().await?;
    let store = s.world.ln.store();
    store.upsert_sync_user(
        "100",
        ln_sim::model::SyncUser {
            user: "newbie".into(),
            name: Some("New".into()),
            active: true,
            email: Some("newbie@corp.example".into()),
        },
    )?;
    let alice = s.world.user(0, 0).to_owned();
    store.upsert_sync_user(
        "100",
        ln_sim::model::SyncUser {
            user: alice.clone(),
            name: None,
            active: true,
            email: Some("alice.new@corp.example".into()),
        },
    )?;
    let summary = handle(&s.scheduler, event(at("2026-11-30T09:20:00Z")?)?).await?;
    let jobs = s.queued().await?;
    assert_eq!(summary["jobs"], 1, "only the new user is due");
    assert_eq!(jobs[0].user, UserId::new("newbie"));
    let state = s.state(0).await?;
    assert_eq!(state.mailbox.as_str(), "alice.new@corp.example");
    assert_eq!(state.contact_folder, None);
    Ok(())
}

#[tokio::test]
async fn a_stopped_environment_schedules_nothing() -> TestResult {
    let s = setup(2).await?;
    s.world
        .store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new("prod"),
            started: false,
            updated_at: Utc::now(),
        })
        .await?;
    s.world.clear_logs();
    let summary = handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?).await?;
    assert_eq!(summary["jobs"], 0);
    assert_eq!(summary["environments"][0]["status"], "stopped");
    assert_eq!(s.queue.calls.load(Ordering::SeqCst), 0);
    assert!(s.world.ln.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_ln_fails_the_invocation() -> TestResult {
    let s = setup(1).await?;
    s.world.point_ln_at(
        "prod",
        &format!("http://{}", lnsync_tests::harness::dead_address()?),
    )?;
    let err = handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?)
        .await
        .err()
        .ok_or("must fail")?;
    assert!(err.to_string().contains("prod"), "{err}");
    Ok(())
}

#[tokio::test]
async fn calendar_jobs_follow_their_own_interval() -> TestResult {
    let s = setup(1).await?;
    // The simulator's defaults: contacts hourly, calendar every 15 minutes.
    let settings: ln_sim::model::Settings = serde_json::from_value(json!({}))?;
    s.world.ln.store().set_settings("100", settings)?;
    let summary = handle(&s.scheduler, event(at("2026-11-30T09:07:00Z")?)?).await?;
    assert_eq!(summary["jobs"], 2);
    let summary = handle(&s.scheduler, event(at("2026-11-30T09:16:00Z")?)?).await?;
    assert_eq!(summary["jobs"], 1, "only the calendar run is due at 9:15");
    let state = s.state(0).await?;
    assert_eq!(state.next_calendar_run, Some(at("2026-11-30T09:30:00Z")?));
    assert_eq!(state.next_contact_run, Some(at("2026-11-30T10:00:00Z")?));
    Ok(())
}

#[test]
fn the_fixture_is_a_scheduled_event() -> TestResult {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/scheduled.json"
    ))?;
    let ev: EventBridgeEvent<Value> = serde_json::from_str(&text)?;
    assert_eq!(ev.detail_type, "Scheduled Event");
    assert!(ev.time.is_some());
    Ok(())
}
