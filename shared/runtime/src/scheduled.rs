//! `lnsync run --schedule`: the serverless scheduler and worker in one process.
//!
//! Every `tick_every` the process calls the same [`schedule::tick`] the scheduler Lambda calls
//! (due users → contact and calendar jobs on their aligned boundaries, R6, one catch-up after an
//! outage, R7) onto an in-process FIFO queue ([`InMemoryQueue`], SQS FIFO semantics), and drains
//! that queue with the same [`Worker`] the worker Lambda uses (R14 feed cache, done marks,
//! per-user order, retries and dead letters, R34–R37). Nothing here decides *what* runs; it only
//! paces the two shared pieces.
//!
//! Shutdown is graceful: once `shutdown` resolves, no new tick starts and no new job is taken;
//! the jobs already running finish (their cursors and links are saved as usual), then the loop
//! returns. A job that was cut short anyway (kill -9) is safe to repeat (R34).

use crate::config::Config;
use crate::jobs::{InboundMessage, JobOutcome, Worker};
use crate::runner::{Connector, SyncKind, error_chain};
use crate::schedule;
use async_trait::async_trait;
use futures::FutureExt;
use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
use lnsync_core::error::QueueError;
use lnsync_core::model::Job;
use lnsync_core::ports::{Clock, Delivery, JobQueue, Receipt, StateStore};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What a scheduled process did until it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleSummary {
    pub ticks: u64,
    /// Jobs that ran (succeeded or partial), per kind.
    pub ran: BTreeMap<SyncKind, u64>,
    /// Jobs that failed (they are retried after the queue's visibility timeout).
    pub failed: u64,
}

/// The pacing of [`run_scheduled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulePacing {
    /// How often the scheduler's tick runs (the Lambda's EventBridge rule; here a minute, so a
    /// 15-minute interval starts within a minute of its boundary).
    pub tick_every: Duration,
    /// The in-process queue: visibility (retry delay of a failed job), receives before a job is
    /// dead-lettered, de-duplication window.
    pub queue: InMemoryQueueConfig,
}

impl Default for SchedulePacing {
    fn default() -> Self {
        Self {
            tick_every: Duration::from_secs(60),
            queue: InMemoryQueueConfig::default(),
        }
    }
}

/// Ticks and drains until `shutdown` resolves; `on_job` hears about every job as it ends.
pub async fn run_scheduled(
    config: &Config,
    store: Arc<dyn StateStore>,
    connector: Arc<dyn Connector>,
    clock: Arc<dyn Clock>,
    pacing: SchedulePacing,
    shutdown: impl Future<Output = ()>,
    on_job: impl Fn(&Job, &JobOutcome),
) -> ScheduleSummary {
    let intake = Intake::new(pacing.queue);
    run_scheduled_with(
        config, store, &intake, connector, clock, pacing, shutdown, on_job,
    )
    .await
}

/// The in-process queue of a scheduled process and what wakes its worker between ticks: jobs
/// enqueued through [`Intake::queue`] (by the push endpoint of `lnsync serve`) run at once
/// instead of at the next tick.
pub struct Intake {
    queue: Arc<InMemoryQueue>,
    wake: Arc<Notify>,
}

impl Intake {
    pub fn new(config: InMemoryQueueConfig) -> Self {
        Self {
            queue: Arc::new(InMemoryQueue::new(config)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The queue as producers see it: every enqueue wakes the worker.
    pub fn queue(&self) -> Arc<dyn JobQueue> {
        Arc::new(WakingQueue {
            inner: self.queue.clone(),
            wake: self.wake.clone(),
        })
    }
}

/// A queue that wakes the scheduled loop after each enqueue.
struct WakingQueue {
    inner: Arc<InMemoryQueue>,
    wake: Arc<Notify>,
}

#[async_trait]
impl JobQueue for WakingQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        self.inner.enqueue(jobs).await?;
        // `notify_one` stores a permit when nobody waits, so a job enqueued while a batch runs
        // is picked up right after it.
        self.wake.notify_one();
        Ok(())
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.inner.complete(receipt).await
    }
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_later(receipt, delay).await?;
        Ok(())
    }
    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError> {
        self.inner.dead_letters().await
    }
}

/// [`run_scheduled`] over a given intake (so `lnsync serve` can hand its queue to the push
/// endpoint).
#[allow(clippy::too_many_arguments)]
pub async fn run_scheduled_with(
    config: &Config,
    store: Arc<dyn StateStore>,
    intake: &Intake,
    connector: Arc<dyn Connector>,
    clock: Arc<dyn Clock>,
    pacing: SchedulePacing,
    shutdown: impl Future<Output = ()>,
    on_job: impl Fn(&Job, &JobOutcome),
) -> ScheduleSummary {
    let queue = intake.queue.clone();
    let wake = intake.wake.clone();
    let worker = Worker::new(
        config.environments.clone(),
        config.sync.clone(),
        store.clone(),
        queue.clone(),
        connector.clone(),
        clock.clone(),
    )
    .with_push(config.push.clone());
    // A batch is what runs at once: one job per user (the queue gives one message per group),
    // as many users as the configuration runs concurrently. Small batches keep a shutdown's
    // wait short; the worker's feed cache still reads each LN feed once per boundary (R14).
    let batch = config.sync.user_concurrency.clamp(1, 10);
    let mut summary = ScheduleSummary::default();
    let mut interval = tokio::time::interval(pacing.tick_every.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dead_letters = 0usize;
    tokio::pin!(shutdown);
    'ticks: loop {
        let ticked = tokio::select! {
            biased;
            () = &mut shutdown => break 'ticks,
            _ = interval.tick() => true,
            // Pushed jobs run now; the tick keeps its own time.
            () = wake.notified() => false,
        };
        if ticked {
            let report = schedule::tick(
                &config.environments,
                store.as_ref(),
                queue.as_ref(),
                connector.as_ref(),
                &config.push,
                clock.now(),
            )
            .await;
            summary.ticks += 1;
            tracing::debug!(jobs = report.jobs(), "tick");
        }

        // Drain what is deliverable now; failed jobs come back after their visibility timeout,
        // at a later tick.
        loop {
            // A shutdown between batches takes no new job.
            if shutdown.as_mut().now_or_never().is_some() {
                break 'ticks;
            }
            let deliveries = match queue.receive(batch, Duration::ZERO).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "in-process queue");
                    break;
                }
            };
            if deliveries.is_empty() {
                break;
            }
            let messages: Vec<InboundMessage> = deliveries
                .iter()
                .map(|d| InboundMessage {
                    message_id: d.receipt.0.clone(),
                    receipt: d.receipt.clone(),
                    // A Job always serializes; an empty body would fail as unreadable.
                    body: serde_json::to_string(&d.job).unwrap_or_default(),
                    group: Some(d.job.group()),
                    receive_count: d.receive_count,
                })
                .collect();
            let run = worker.run_batch(&messages);
            tokio::pin!(run);
            let mut stopping = false;
            // The batch is never cancelled: a shutdown only stops what comes after it.
            let report = tokio::select! {
                report = &mut run => report,
                () = &mut shutdown => {
                    stopping = true;
                    tracing::info!(jobs = messages.len(), "stopping after the jobs in progress");
                    run.await
                }
            };
            for (delivery, (_, outcome)) in deliveries.iter().zip(&report.outcomes) {
                if outcome.is_success() {
                    if let Err(e) = queue.complete(&delivery.receipt).await {
                        // The done mark keeps a redelivery from running again (R34).
                        tracing::warn!(job_id = %delivery.job.id, error = %error_chain(&e), "could not complete the job");
                    }
                    if let (JobOutcome::Done { .. }, Some(kind)) =
                        (outcome, SyncKind::of_job(&delivery.job.kind))
                    {
                        *summary.ran.entry(kind).or_default() += 1;
                    }
                } else {
                    summary.failed += 1;
                    // A failed job is due again after its hint (or the queue's visibility);
                    // wake the loop then rather than at the next tick, which may be far off.
                    let due = match outcome {
                        JobOutcome::Retry {
                            after: Some(after), ..
                        } => *after,
                        _ => pacing.queue.visibility,
                    };
                    let wake = wake.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(due).await;
                        wake.notify_one();
                    });
                }
                on_job(&delivery.job, outcome);
            }
            if stopping {
                break 'ticks;
            }
        }
        // Dead letters live only in this process: say so loudly, they are not retried (R37).
        if let Ok(dead) = queue.dead_letters().await
            && dead.len() > dead_letters
        {
            for job in &dead[dead_letters..] {
                tracing::error!(env = %job.env, user = %job.user, job_id = %job.id, kind = job.kind.label(), "job failed too often and was dropped; the next boundary runs it again");
            }
            dead_letters = dead.len();
        }
    }
    summary
}
