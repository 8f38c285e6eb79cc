//! The in-process [`JobQueue`] for the single-process runner, with SQS FIFO semantics so the
//! worker code behaves the same here and on AWS.
//!
//! - Message group = [`Job::group`]: within a group, strict order; while a group's head is in
//!   flight (received, not completed, visibility not expired) nothing later of that group is
//!   delivered. Other groups are unaffected (R36).
//! - De-duplication by job id within [`InMemoryQueueConfig::dedup_window`]: a second enqueue of
//!   the same id is dropped, even after the first was completed (as SQS does).
//! - Visibility timeout: an uncompleted delivery becomes visible again, with `receive_count + 1`.
//!   [`JobQueue::retry_later`] sets the visibility to `now + delay` (R37).
//! - After `max_receives` deliveries, a message that would be delivered again goes to the
//!   dead-letter list instead ([`JobQueue::dead_letters`]), and its group moves on.
//!
//! Unlike SQS, one `receive` returns at most one message per group, so a batch never holds two
//! messages of the same user. Time is tokio's clock, so tests can `tokio::time::pause()`.

use async_trait::async_trait;
use lnsync_core::error::QueueError;
use lnsync_core::ids::JobId;
use lnsync_core::model::Job;
use lnsync_core::ports::{Delivery, JobQueue, Receipt};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Settings of an [`InMemoryQueue`]. Defaults match the SQS queues of the AWS deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryQueueConfig {
    /// How long a received message stays invisible unless completed (SQS default 30 s; ours 60 s,
    /// longer than a typical user run).
    pub visibility: Duration,
    /// Deliveries before a message goes to the dead-letter list (SQS `maxReceiveCount`).
    pub max_receives: u32,
    /// How long a job id suppresses a second enqueue of the same id (SQS: 5 minutes, fixed).
    pub dedup_window: Duration,
}

impl Default for InMemoryQueueConfig {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(60),
            max_receives: 5,
            dedup_window: Duration::from_secs(5 * 60),
        }
    }
}

/// An in-process FIFO job queue. See the module docs for its semantics.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    config: InMemoryQueueConfig,
    state: Mutex<State>,
    /// Wakes waiting receivers when something may have become deliverable: an enqueue, a
    /// completion (the group's next message), or a changed visibility.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Each group's messages in order; only the head can be in flight.
    groups: HashMap<String, VecDeque<Message>>,
    /// The current receipt of each in-flight head → its group. Older receipts of a redelivered
    /// message are not here, so they are unknown.
    receipts: HashMap<String, String>,
    /// Job ids seen within the de-duplication window, with when they were first seen.
    seen: HashMap<JobId, Instant>,
    /// The same ids in arrival order, so expired ones are purged without a scan.
    seen_order: VecDeque<(Instant, JobId)>,
    dead: Vec<Job>,
    next_seq: u64,
    next_receipt: u64,
}

#[derive(Debug)]
struct Message {
    /// Arrival order across groups: older heads are delivered first.
    seq: u64,
    job: Job,
    receive_count: u32,
    /// Deliverable from this instant (enqueue time, or end of visibility / retry delay).
    visible_at: Instant,
    /// The receipt of the latest delivery, while the message is the in-flight head.
    receipt: Option<String>,
}

impl InMemoryQueue {
    pub fn new(config: InMemoryQueueConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    pub fn config(&self) -> InMemoryQueueConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few map operations with no user code; a panic inside one
        // would be a bug here, and the state stays usable for the rest of the process.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers up to `max` heads visible at `now`, oldest first. When nothing is deliverable,
    /// also returns the earliest instant at which a blocked head becomes visible.
    fn take(&self, max: usize, now: Instant) -> (Vec<Delivery>, Option<Instant>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut ready: Vec<(u64, String)> = Vec::new();
        let mut next_visible: Option<Instant> = None;
        let mut emptied: Vec<String> = Vec::new();
        for (group, messages) in state.groups.iter_mut() {
            while let Some(head) = messages.front() {
                if head.visible_at > now {
                    next_visible =
                        Some(next_visible.map_or(head.visible_at, |t| t.min(head.visible_at)));
                    break;
                }
                if head.receive_count >= self.config.max_receives {
                    // Received often enough: dead-letter it and let the group move on.
                    if let Some(dead) = messages.pop_front() {
                        if let Some(r) = &dead.receipt {
                            state.receipts.remove(r);
                        }
                        state.dead.push(dead.job);
                    }
                    continue;
                }
                ready.push((head.seq, group.clone()));
                break;
            }
            if messages.is_empty() {
                emptied.push(group.clone());
            }
        }
        for group in emptied {
            state.groups.remove(&group);
        }
        ready.sort_unstable();
        let mut out = Vec::new();
        for (_, group) in ready.into_iter().take(max) {
            let Some(head) = state.groups.get_mut(&group).and_then(VecDeque::front_mut) else {
                continue;
            };
            state.next_receipt += 1;
            let receipt = format!("mq-{}-{}", head.seq, state.next_receipt);
            if let Some(old) = head.receipt.replace(receipt.clone()) {
                state.receipts.remove(&old);
            }
            state.receipts.insert(receipt.clone(), group);
            head.receive_count += 1;
            head.visible_at = later(now, self.config.visibility);
            out.push(Delivery {
                job: head.job.clone(),
                receipt: Receipt(receipt),
                receive_count: head.receive_count,
            });
        }
        let next_visible = if out.is_empty() { next_visible } else { None };
        (out, next_visible)
    }

    /// Forgets de-duplication ids older than the window.
    fn purge_seen(&self, state: &mut State, now: Instant) {
        while let Some((at, _)) = state.seen_order.front() {
            if now.saturating_duration_since(*at) < self.config.dedup_window {
                break;
            }
            if let Some((at, id)) = state.seen_order.pop_front() {
                // Only forget the id if this entry is the one that recorded it.
                if state.seen.get(&id) == Some(&at) {
                    state.seen.remove(&id);
                }
            }
        }
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

#[async_trait]
impl JobQueue for InMemoryQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let now = Instant::now();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            self.purge_seen(state, now);
            for job in jobs {
                if state.seen.contains_key(&job.id) {
                    continue;
                }
                state.seen.insert(job.id.clone(), now);
                state.seen_order.push_back((now, job.id.clone()));
                state.next_seq += 1;
                let message = Message {
                    seq: state.next_seq,
                    job: job.clone(),
                    receive_count: 0,
                    visible_at: now,
                    receipt: None,
                };
                state
                    .groups
                    .entry(job.group())
                    .or_default()
                    .push_back(message);
            }
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = later(Instant::now(), wait);
        loop {
            // Register for wake-ups before looking, so a change between the look and the wait
            // is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let (batch, next_visible) = self.take(max, now);
            if !batch.is_empty() || now >= deadline {
                return Ok(batch);
            }
            let wake = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let group = state
                .receipts
                .remove(&receipt.0)
                .ok_or(QueueError::UnknownReceipt)?;
            if let Some(messages) = state.groups.get_mut(&group) {
                if messages.front().and_then(|m| m.receipt.as_ref()) == Some(&receipt.0) {
                    messages.pop_front();
                }
                if messages.is_empty() {
                    state.groups.remove(&group);
                }
            }
        }
        // The group's next message may now be deliverable.
        self.changed.notify_waiters();
        Ok(())
    }

    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let group = state
                .receipts
                .get(&receipt.0)
                .ok_or(QueueError::UnknownReceipt)?;
            let head = state
                .groups
                .get_mut(group)
                .and_then(VecDeque::front_mut)
                .filter(|m| m.receipt.as_ref() == Some(&receipt.0))
                .ok_or(QueueError::UnknownReceipt)?;
            head.visible_at = later(Instant::now(), delay);
        }
        // Waiters sleeping until the old visibility must recompute their wake-up.
        self.changed.notify_waiters();
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError> {
        Ok(self.lock().dead.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use lnsync_core::ids::{EnvironmentId, UserId};
    use lnsync_core::model::JobKind;

    fn job(id: &str, user: &str) -> Job {
        Job {
            id: JobId::new(id),
            env: EnvironmentId::new("e"),
            user: UserId::new(user),
            kind: JobKind::ContactPull,
            enqueued_at: Utc::now(),
        }
    }

    fn quick() -> InMemoryQueue {
        InMemoryQueue::new(InMemoryQueueConfig {
            visibility: Duration::from_millis(20),
            ..InMemoryQueueConfig::default()
        })
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_one_message_per_group() {
        let q = quick();
        q.enqueue(&[job("a1", "a"), job("a2", "a"), job("b1", "b")])
            .await
            .expect("enqueue");
        let got = q.receive(10, Duration::ZERO).await.expect("receive");
        let ids: Vec<_> = got.iter().map(|d| d.job.id.as_str()).collect();
        assert_eq!(ids, ["a1", "b1"]);
    }

    #[tokio::test]
    async fn a_receipt_is_unknown_once_completed_or_superseded() {
        let q = quick();
        q.enqueue(&[job("a1", "a")]).await.expect("enqueue");
        let first = q
            .receive(1, Duration::ZERO)
            .await
            .expect("receive")
            .remove(0);
        let again = q
            .receive(1, Duration::from_millis(500))
            .await
            .expect("redelivery")
            .remove(0);
        assert_eq!(again.receive_count, 2);
        assert!(matches!(
            q.complete(&first.receipt).await,
            Err(QueueError::UnknownReceipt)
        ));
        q.complete(&again.receipt).await.expect("complete");
        assert!(matches!(
            q.complete(&again.receipt).await,
            Err(QueueError::UnknownReceipt)
        ));
        assert!(matches!(
            q.retry_later(&again.receipt, Duration::ZERO).await,
            Err(QueueError::UnknownReceipt)
        ));
    }

    #[tokio::test]
    async fn receive_of_zero_returns_at_once() {
        let q = quick();
        q.enqueue(&[job("a1", "a")]).await.expect("enqueue");
        assert!(
            q.receive(0, Duration::from_secs(60))
                .await
                .expect("receive")
                .is_empty()
        );
    }
}
