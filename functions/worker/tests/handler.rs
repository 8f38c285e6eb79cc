//! The worker handler against the LN and EWS simulators, the SQLite store and the in-process
//! FIFO queue: the same job code that runs on AWS, minus the AWS clients.

use aws_lambda_events::event::sqs::SqsEvent;
use ews_sim::faults::{FaultAction, FaultRule};
use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{CursorKind, EnvironmentState, Job};
use lnsync_core::ports::{Delivery, JobQueue, StateStore, SystemClock};
use lnsync_runtime::jobs::{JobOutcome, Worker};
use lnsync_runtime::schedule::tick;
use lnsync_tests::harness::{
    BoxError, TestResult, World, contact_code, live_connector, qualifying_contacts,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    world: World,
    queue: Arc<InMemoryQueue>,
    worker: Worker,
}

/// LN's *Synchronize Activities* off: the tick queues contact jobs only.
fn contacts_only(world: &World) -> TestResult {
    let settings: ln_sim::model::Settings =
        serde_json::from_value(json!({"synchronizeActivities": false}))?;
    world.ln.store().set_settings("100", settings)?;
    Ok(())
}

async fn setup(
    users: usize,
    contacts: usize,
    queue: InMemoryQueueConfig,
) -> Result<Setup, BoxError> {
    let world = World::single(users, qualifying_contacts(contacts)).await?;
    contacts_only(&world)?;
    let queue = Arc::new(InMemoryQueue::new(queue));
    let mut connector = live_connector();
    // As in Lambda: a long LN throttling hint comes back as an error instead of a sleep.
    connector.ln_max_wait = Duration::from_secs(1);
    let worker = Worker::new(
        world.config.environments.clone(),
        world.config.sync.clone(),
        world.store.clone(),
        queue.clone(),
        Arc::new(connector),
        Arc::new(SystemClock),
    );
    Ok(Setup {
        world,
        queue,
        worker,
    })
}

impl Setup {
    /// A scheduler tick now; returns the number of jobs it queued.
    async fn tick(&self) -> usize {
        tick(
            &self.world.config.environments,
            self.world.store.as_ref(),
            self.queue.as_ref(),
            &live_connector(),
            &Default::default(),
            chrono::Utc::now(),
        )
        .await
        .jobs()
    }

    async fn receive(&self) -> Result<Vec<Delivery>, BoxError> {
        Ok(self.queue.receive(10, Duration::from_millis(300)).await?)
    }

    fn user(&self, i: usize) -> UserId {
        UserId::new(self.world.user(0, i))
    }
}

/// The SQS event Lambda would build from these deliveries.
fn event(deliveries: &[Delivery]) -> Result<SqsEvent, BoxError> {
    let records: Vec<_> = deliveries
        .iter()
        .map(|d| {
            Ok(json!({
                "messageId": format!("msg-{}", d.job.id),
                "receiptHandle": d.receipt.0,
                "body": serde_json::to_string(&d.job)?,
                "attributes": {
                    "ApproximateReceiveCount": d.receive_count.to_string(),
                    "MessageGroupId": d.job.group(),
                },
                "eventSource": "aws:sqs",
            }))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// Acknowledges what the handler did not report as failed, as the event source mapping does.
async fn acknowledge(
    queue: &InMemoryQueue,
    deliveries: &[Delivery],
    failed: &[String],
) -> TestResult {
    for d in deliveries {
        if !failed.contains(&format!("msg-{}", d.job.id)) {
            queue.complete(&d.receipt).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_ticks_jobs_sync_every_user_and_read_the_feed_once() -> TestResult {
    let s = setup(3, 30, InMemoryQueueConfig::default()).await?;
    assert_eq!(s.tick().await, 3);
    let deliveries = s.receive().await?;
    assert_eq!(deliveries.len(), 3);
    s.world.clear_logs();
    let response = lnsync_worker::handle(&s.worker, event(&deliveries)?).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let codes: Vec<String> = (0..30).map(contact_code).collect();
    for user in 0..3 {
        s.world.assert_in_sync("prod", user, &codes).await?;
    }
    // R14: one read of the change feed (and of the deletions) for the three users.
    assert_eq!(s.world.ln_gets("100", "Contacts").len(), 1);
    assert_eq!(s.world.ln_gets("100", "DeletedObjects").len(), 1);
    assert_eq!(s.worker.feeds.feed_reads(), 1);
    s.world.validate_ews_requests()?;
    Ok(())
}

#[tokio::test]
async fn the_same_message_twice_writes_once_also_concurrently() -> TestResult {
    let s = setup(2, 20, InMemoryQueueConfig::default()).await?;
    s.tick().await;
    let deliveries = s.receive().await?;
    let ev = event(&deliveries)?;
    // Two invocations with the same batch at once (a visibility timeout ran out mid-run).
    let (a, b) = tokio::join!(
        lnsync_worker::handle(&s.worker, ev.clone()),
        lnsync_worker::handle(&s.worker, ev.clone())
    );
    // One CreateItem per user (20 contacts fit one batch): nothing was written twice.
    assert_eq!(s.world.ews.count_operation("CreateItem"), 2);
    // A delivery that lost the lease is failed for a later retry; the retry finds the job done.
    let mut retried = failures(&a);
    retried.extend(failures(&b));
    s.world.clear_logs();
    let again = lnsync_worker::handle(&s.worker, ev.clone()).await;
    assert!(
        failures(&again).is_empty(),
        "{again:?} (first: {retried:?})"
    );
    assert_eq!(s.world.ews.write_calls(), 0, "a redelivery writes nothing");
    assert_eq!(
        s.world.ln_gets("100", "Contacts").len(),
        0,
        "a redelivery of a done job does not even read LN"
    );
    let codes: Vec<String> = (0..20).map(contact_code).collect();
    s.world.assert_in_sync("prod", 0, &codes).await?;
    s.world.assert_in_sync("prod", 1, &codes).await?;
    Ok(())
}

#[tokio::test]
async fn one_failing_job_of_five_is_reported_alone_and_dead_letters_with_state_untouched()
-> TestResult {
    let config = InMemoryQueueConfig {
        visibility: Duration::from_millis(100),
        max_receives: 3,
        ..InMemoryQueueConfig::default()
    };
    let s = setup(5, 10, config).await?;
    let broken = s.world.mailbox(0, 2).to_owned();
    s.world.ews.add_fault(FaultRule {
        mailbox: Some(broken.clone()),
        operation: None,
        count: 1000,
        action: FaultAction::SoapFault {
            code: "ErrorNonExistentMailbox".into(),
            message: None,
        },
    });
    assert_eq!(s.tick().await, 5);
    let deliveries = s.receive().await?;
    assert_eq!(deliveries.len(), 5);
    let response = lnsync_worker::handle(&s.worker, event(&deliveries)?).await;
    let broken_job = deliveries
        .iter()
        .find(|d| d.job.user == s.user(2))
        .map(|d| d.job.clone())
        .ok_or("no job for the broken user")?;
    assert_eq!(failures(&response), vec![format!("msg-{}", broken_job.id)]);
    acknowledge(&s.queue, &deliveries, &failures(&response)).await?;

    // Redelivered until the queue's maxReceiveCount, then dead-lettered.
    for _ in 0..10 {
        if !s.queue.dead_letters().await?.is_empty() {
            break;
        }
        let again = s.receive().await?;
        if again.is_empty() {
            continue;
        }
        let response = lnsync_worker::handle(&s.worker, event(&again)?).await;
        assert_eq!(failures(&response).len(), again.len());
    }
    assert_eq!(s.queue.dead_letters().await?, vec![broken_job]);
    let (env, user) = (EnvironmentId::new("prod"), s.user(2));
    assert_eq!(s.world.link_count("prod", user.as_str()).await?, 0);
    assert!(
        s.world
            .store
            .cursor(&env, &user, CursorKind::LnContacts)
            .await?
            .is_none(),
        "the failed user's watermark did not move"
    );
    assert!(s.world.crm_folder(&broken).is_none());
    // The others are done.
    let codes: Vec<String> = (0..10).map(contact_code).collect();
    for i in [0, 1, 3, 4] {
        s.world.assert_in_sync("prod", i, &codes).await?;
    }
    Ok(())
}

fn job(user: &str, boundary: &str) -> Result<Job, BoxError> {
    Ok(serde_json::from_value(json!({
        "id": format!("prod/{user}/contacts/{boundary}"),
        "env": "prod",
        "user": user,
        "kind": "contact-pull",
        "enqueued_at": chrono::Utc::now(),
    }))?)
}

fn message(id: &str, job: &Job) -> Result<lnsync_runtime::jobs::InboundMessage, BoxError> {
    Ok(lnsync_runtime::jobs::InboundMessage {
        message_id: id.to_owned(),
        receipt: lnsync_core::ports::Receipt(format!("r-{id}")),
        body: serde_json::to_string(job)?,
        group: Some(job.group()),
        receive_count: 1,
    })
}

#[tokio::test]
async fn after_a_failure_the_rest_of_its_group_fails_unrun() -> TestResult {
    let s = setup(2, 5, InMemoryQueueConfig::default()).await?;
    s.tick().await; // registers the users
    let broken = s.world.mailbox(0, 0).to_owned();
    s.world.ews.add_fault(FaultRule {
        mailbox: Some(broken.clone()),
        operation: None,
        count: 1000,
        action: FaultAction::SoapFault {
            code: "ErrorNonExistentMailbox".into(),
            message: None,
        },
    });
    let alice = s.world.user(0, 0).to_owned();
    let bob = s.world.user(0, 1).to_owned();
    let batch = vec![
        message("a1", &job(&alice, "1")?)?,
        message("b1", &job(&bob, "1")?)?,
        message("a2", &job(&alice, "2")?)?,
    ];
    s.world.clear_logs();
    let report = s.worker.run_batch(&batch).await;
    assert_eq!(report.failed, vec!["a1".to_owned(), "a2".to_owned()]);
    assert!(matches!(&report.outcomes[1].1, JobOutcome::Done { .. }));
    assert!(
        matches!(&report.outcomes[2].1, JobOutcome::Retry { error, .. } if error.contains("earlier message")),
        "{:?}",
        report.outcomes[2]
    );
    // a2 never reached Exchange: the broken mailbox saw exactly one run's requests.
    let one_run = s.world.ews_requests_for(&broken).len();
    assert_eq!(one_run, 1, "{:?}", s.world.ews_requests_for(&broken));
    Ok(())
}

#[tokio::test]
async fn a_throttling_hint_becomes_a_visibility_change() -> TestResult {
    let s = setup(1, 5, InMemoryQueueConfig::default()).await?;
    s.tick().await;
    let deliveries = s.receive().await?;
    s.world.ln.add_fault(
        ln_sim::FaultRule::throttle(120)
            .entity_set("Contacts")
            .times(10),
    );
    let response = lnsync_worker::handle(&s.worker, event(&deliveries)?).await;
    assert_eq!(failures(&response).len(), 1);
    // The message is invisible for the hinted 120 s, not the queue's default 60 s: nothing
    // comes back now, and the worker did not sleep.
    assert!(
        s.queue
            .receive(10, Duration::from_millis(200))
            .await?
            .is_empty()
    );
    let run = s.world.store.last_runs(&EnvironmentId::new("prod")).await?;
    assert!(run.iter().all(|r| r.counts.created == 0));
    Ok(())
}

#[tokio::test]
async fn a_stopped_environment_drops_its_queued_jobs() -> TestResult {
    let s = setup(1, 5, InMemoryQueueConfig::default()).await?;
    s.tick().await;
    let deliveries = s.receive().await?;
    s.world
        .store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new("prod"),
            started: false,
            updated_at: chrono::Utc::now(),
        })
        .await?;
    s.world.clear_logs();
    let response = lnsync_worker::handle(&s.worker, event(&deliveries)?).await;
    assert!(failures(&response).is_empty());
    assert_eq!(s.world.ln_gets("100", "Contacts").len(), 0);
    assert_eq!(s.world.ews.requests().len(), 0);
    Ok(())
}

#[tokio::test]
async fn calendar_jobs_run_through_the_calendar_service() -> TestResult {
    let s = setup(2, 3, InMemoryQueueConfig::default()).await?;
    s.world.ln.store().set_settings(
        "100",
        serde_json::from_value(json!({"synchronizeActivities": true}))?,
    )?;
    assert_eq!(s.tick().await, 4, "a contact and a calendar job per user");
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let deliveries = s.receive().await?;
        if deliveries.is_empty() {
            break;
        }
        let response = lnsync_worker::handle(&s.worker, event(&deliveries)?).await;
        assert!(failures(&response).is_empty(), "{response:?}");
        acknowledge(&s.queue, &deliveries, &[]).await?;
        kinds.extend(deliveries.iter().map(|d| d.job.kind.clone()));
    }
    assert_eq!(kinds.len(), 4);
    let runs = s.world.store.last_runs(&EnvironmentId::new("prod")).await?;
    let calendar: Vec<_> = runs
        .iter()
        .filter(|r| r.kind == lnsync_core::model::LinkKind::Event)
        .collect();
    assert_eq!(calendar.len(), 2, "{runs:?}");
    assert!(
        calendar
            .iter()
            .all(|r| r.outcome == lnsync_core::model::RunOutcome::Succeeded),
        "{calendar:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_a_job_fails_alone() -> TestResult {
    let s = setup(1, 1, InMemoryQueueConfig::default()).await?;
    let ev: SqsEvent = serde_json::from_value(json!({"Records": [
        {"messageId": "junk", "receiptHandle": "r", "body": "not json"}
    ]}))?;
    let response = lnsync_worker::handle(&s.worker, ev).await;
    assert_eq!(failures(&response), vec!["junk".to_owned()]);
    Ok(())
}

#[test]
fn the_fixture_parses_into_jobs() -> TestResult {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/sqs-contact-pull.json"
    ))?;
    let ev: SqsEvent = serde_json::from_str(&text)?;
    for record in &ev.records {
        let m = lnsync_worker::inbound(record);
        let job: Job = serde_json::from_str(&m.body)?;
        assert_eq!(m.group.as_deref(), Some(job.group().as_str()));
    }
    Ok(())
}
