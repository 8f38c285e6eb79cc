//! The serverless [`JobQueue`]: an SQS FIFO queue with a FIFO dead-letter queue.
//!
//! - [`SqsJobQueue`]: the queue over an injected `aws_sdk_sqs::Client` and a queue URL. The
//!   message group is [`Job::group`] (environment/user, R36), the de-duplication id is the job
//!   id (R34); the dead-letter queue is given or discovered from the queue's `RedrivePolicy`.
//! - `setup`: [`create_queues`] and the queue attributes as constants (tests, local use; the
//!   IaC template mirrors them).
//! - [`SqsQueueError`]: the adapter's failures, kept as the source of the port's error.
//!
//! Semantics the worker must know (also in `docs/serverless.md`):
//! - One receive can return several messages of one group, in order. A worker processes them
//!   in order and stops the group at the first failure, leaving the rest to come back.
//! - [`JobQueue::retry_later`] is `ChangeMessageVisibility`: the next receive of the message
//!   counts toward `maxReceiveCount`, so a job throttled often enough ends in the dead-letter
//!   queue like one that failed.
//! - SQS remembers a de-duplication id for five minutes whether or not the message was deleted.

mod error;
mod setup;

pub use error::{FailedEntry, SqsQueueError};
pub use setup::{
    DEAD_LETTER_RETENTION, DEAD_LETTER_SUFFIX, FIFO_SUFFIX, QUEUE_RETENTION, QueueUrls,
    create_queues,
};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use error::{build_error, call_error, unavailable};
use lnsync_core::error::QueueError;
use lnsync_core::model::Job;
use lnsync_core::ports::{Delivery, JobQueue, Receipt};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Entries per `SendMessageBatch` / messages per `ReceiveMessage` (the service limits).
const BATCH_MAX: usize = 10;
/// The longest long poll SQS allows.
const MAX_WAIT_SECONDS: u64 = 20;
/// The longest visibility SQS allows a message (12 hours), hence the longest retry delay.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// Between short polls while less than a second of a receive's wait is left: long polling
/// only takes whole seconds, and rounding a 300 ms wait up to a second would make the caller
/// wait three times as long as it asked.
const SHORT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts for batch entries SQS failed on its side (not the caller's fault).
const SEND_ATTEMPTS: u32 = 5;
/// How long `dead_letters` holds the dead-letter messages it read before handing them back:
/// long enough to page through the queue, short enough that a crash mid-way hides them
/// only briefly.
const PEEK_VISIBILITY: Duration = Duration::from_secs(30);
/// The most dead letters one `dead_letters` call reads (the console shows a page, not all).
const DEAD_LETTERS_MAX: usize = 1000;

/// The SQS FIFO implementation of [`JobQueue`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: Arc<str>,
    /// Given at construction, or found on first use from the queue's `RedrivePolicy`.
    dead_letter_url: Arc<OnceCell<String>>,
}

impl SqsJobQueue {
    /// A queue over the FIFO queue at `queue_url`. Its dead-letter queue is discovered from the
    /// queue's `RedrivePolicy` when first needed.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: Arc::from(queue_url.into()),
            dead_letter_url: Arc::new(OnceCell::new()),
        }
    }

    /// Names the dead-letter queue instead of discovering it (saves a call per cold start and
    /// the `sqs:GetQueueAttributes` permission).
    pub fn with_dead_letter_queue(mut self, dead_letter_url: impl Into<String>) -> Self {
        self.dead_letter_url = Arc::new(OnceCell::new_with(Some(dead_letter_url.into())));
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The dead-letter queue's URL: given, or read from the redrive policy once.
    pub async fn dead_letter_url(&self) -> Result<&str, QueueError> {
        self.dead_letter_url
            .get_or_try_init(|| self.discover_dead_letter_queue())
            .await
            .map(String::as_str)
    }

    async fn discover_dead_letter_queue(&self) -> Result<String, QueueError> {
        let policy = self
            .client
            .get_queue_attributes()
            .queue_url(self.queue_url())
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| call_error("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
            .ok_or_else(|| QueueError::Rejected {
                message: format!("queue {} has no RedrivePolicy", self.queue_url),
            })?;
        let (account, name) = dead_letter_target(&policy).ok_or_else(|| QueueError::Rejected {
            message: format!(
                "queue {}: unreadable RedrivePolicy {policy:?}",
                self.queue_url
            ),
        })?;
        self.client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| call_error("GetQueueUrl", e))?
            .queue_url
            .ok_or_else(|| QueueError::Rejected {
                message: format!("no URL for dead-letter queue {name}"),
            })
    }

    async fn send_batch(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let mut entries = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let body = serde_json::to_string(job).map_err(|e| QueueError::Rejected {
                message: format!("job {} cannot be encoded: {e}", job.id),
            })?;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    // Batch-local ids: they only pair results with entries.
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(fifo_token(&job.group()))
                    .message_deduplication_id(fifo_token(job.id.as_str()))
                    .build()
                    .map_err(build_error)?,
            );
        }
        let mut attempt = 0;
        loop {
            let out = self
                .client
                .send_message_batch()
                .queue_url(self.queue_url())
                .set_entries(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| call_error("SendMessageBatch", e))?;
            if out.failed().is_empty() {
                return Ok(());
            }
            let failed: Vec<FailedEntry> = out.failed().iter().map(FailedEntry::from_sdk).collect();
            if failed.iter().any(|f| f.sender_fault) {
                // The request itself is wrong for these entries: resending can't help.
                return Err(QueueError::Rejected {
                    message: error::chain(&SqsQueueError::BatchEntries {
                        failed,
                        attempts: attempt + 1,
                    }),
                });
            }
            attempt += 1;
            if attempt >= SEND_ATTEMPTS {
                return Err(unavailable(SqsQueueError::BatchEntries {
                    failed,
                    attempts: attempt,
                }));
            }
            // Resend only the failed entries (a server-side hiccup). A resent job may land
            // behind a later job of its user that went through; that is harmless, since jobs
            // are pulls that read current state and may run in any order (R34).
            let retry: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
            entries.retain(|e| retry.contains(e.id()));
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
    }

    async fn receive_once(
        &self,
        max: usize,
        wait_seconds: u64,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(self.queue_url())
            .max_number_of_messages(i32::try_from(max.clamp(1, BATCH_MAX)).unwrap_or(1))
            .wait_time_seconds(i32::try_from(wait_seconds).unwrap_or(0))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| call_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Turns received messages into deliveries. A message whose body is not a job is made
    /// visible again at once, so it burns through its receives and lands in the dead-letter
    /// queue quickly; later messages of its group in the same batch are handed back too, so no
    /// job overtakes an earlier one of its user.
    async fn deliveries(&self, messages: Vec<Message>) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(messages.len());
        let mut stopped: HashSet<String> = HashSet::new();
        for m in messages {
            let group = system_attribute(&m, &MessageSystemAttributeName::MessageGroupId)
                .unwrap_or_default()
                .to_owned();
            let Some(receipt) = m.receipt_handle.clone() else {
                continue;
            };
            if stopped.contains(&group) {
                self.hand_back(&receipt).await;
                continue;
            }
            match serde_json::from_str::<Job>(m.body().unwrap_or_default()) {
                Ok(job) => out.push(Delivery {
                    job,
                    receipt: Receipt(receipt),
                    receive_count: system_attribute(
                        &m,
                        &MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                }),
                Err(e) => {
                    tracing::warn!(
                        message_id = m.message_id().unwrap_or_default(),
                        group = group.as_str(),
                        error = %e,
                        "SQS message is not a job; handing it back towards the dead-letter queue"
                    );
                    stopped.insert(group);
                    self.hand_back(&receipt).await;
                }
            }
        }
        out
    }

    /// Makes a received message visible again now; failure only delays it by the visibility
    /// timeout, so it is logged, not returned.
    async fn hand_back(&self, receipt: &str) {
        if let Err(e) = self
            .client
            .change_message_visibility()
            .queue_url(self.queue_url())
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
        {
            tracing::warn!(error = %error::chain(&e), "could not hand an SQS message back");
        }
    }

    /// Makes the dead letters read by `dead_letters` visible again.
    async fn release_dead_letters(&self, dead_letter_url: &str, receipts: Vec<String>) {
        for chunk in receipts.chunks(BATCH_MAX) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, receipt) in chunk.iter().enumerate() {
                match ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                {
                    Ok(entry) => entries.push(entry),
                    Err(e) => tracing::warn!(error = %e, "could not build a visibility change"),
                }
            }
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(dead_letter_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => tracing::warn!(
                    failed = out.failed().len(),
                    "some dead letters stay hidden until their visibility ends"
                ),
                Err(e) => tracing::warn!(
                    error = %error::chain(&e),
                    "dead letters stay hidden until their visibility ends"
                ),
            }
        }
    }
}

/// A value SQS accepts as a message group or de-duplication id (1–128 characters of ASCII
/// letters, digits and punctuation). Ids that don't fit are replaced by their SHA-256, which
/// keeps equal ids equal and different ids apart.
fn fifo_token(raw: &str) -> String {
    if !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic()) {
        raw.to_owned()
    } else {
        hex::encode(Sha256::digest(raw.as_bytes()))
    }
}

fn system_attribute<'m>(m: &'m Message, name: &MessageSystemAttributeName) -> Option<&'m str> {
    m.attributes().and_then(|a| a.get(name)).map(String::as_str)
}

/// (account, queue name) of the `deadLetterTargetArn` in a redrive policy
/// (`arn:aws:sqs:region:account:name`).
fn dead_letter_target(policy: &str) -> Option<(&str, &str)> {
    let value: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = value.get("deadLetterTargetArn")?.as_str()?;
    // The ARN borrows from `value`; find the same text inside `policy` to return borrowed parts.
    let start = policy.find(arn)?;
    let arn = &policy[start..start + arn.len()];
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, _, account, name) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "sqs" && !name.is_empty()).then_some((account, name))
}

/// Whole seconds SQS should make a message invisible for `delay`: rounded up, so the job never
/// comes back before the hint says (R37), and at most 12 hours.
fn visibility_seconds(delay: Duration) -> i32 {
    let delay = delay.min(MAX_VISIBILITY);
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn is_unknown_receipt_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("ReceiptHandleIsInvalid" | "InvalidIdFormat" | "MessageNotInflight")
    )
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        for chunk in jobs.chunks(BATCH_MAX) {
            self.send_batch(chunk).await?;
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_seconds = left.as_secs().min(MAX_WAIT_SECONDS);
            let messages = self.receive_once(max, wait_seconds).await?;
            if !messages.is_empty() {
                let deliveries = self.deliveries(messages).await;
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            if wait_seconds == 0 {
                tokio::time::sleep(left.min(SHORT_POLL_INTERVAL)).await;
            }
        }
    }

    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        match self
            .client
            .delete_message()
            .queue_url(self.queue_url())
            .receipt_handle(&receipt.0)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if is_unknown_receipt_code(aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)) =>
            {
                Err(QueueError::UnknownReceipt)
            }
            Err(e) => Err(call_error("DeleteMessage", e)),
        }
    }

    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(self.queue_url())
            .receipt_handle(&receipt.0)
            .visibility_timeout(visibility_seconds(delay))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if is_unknown_receipt_code(aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)) =>
            {
                Err(QueueError::UnknownReceipt)
            }
            Err(e) => Err(call_error("ChangeMessageVisibility", e)),
        }
    }

    /// Reads the dead-letter queue without consuming it: messages are received with a short
    /// visibility, page after page until none is left, then made visible again. A FIFO queue
    /// hides the rest of a group while its head is in flight, so per user only the messages of
    /// the first receive are seen: enough for a console that shows which users have failed
    /// jobs. Undecodable messages are skipped with a warning.
    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError> {
        let dead_letter_url = self.dead_letter_url().await?.to_owned();
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        let mut receipts = Vec::new();
        let read = loop {
            if seen.len() >= DEAD_LETTERS_MAX {
                break Ok(());
            }
            let out = match self
                .client
                .receive_message()
                .queue_url(&dead_letter_url)
                .max_number_of_messages(i32::try_from(BATCH_MAX).unwrap_or(10))
                .wait_time_seconds(0)
                .visibility_timeout(i32::try_from(PEEK_VISIBILITY.as_secs()).unwrap_or(30))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => break Err(call_error("ReceiveMessage", e)),
            };
            let messages = out.messages.unwrap_or_default();
            let mut new = 0;
            for m in messages {
                let id = m.message_id().unwrap_or_default().to_owned();
                if let Some(r) = m.receipt_handle() {
                    receipts.push(r.to_owned());
                }
                if !seen.insert(id) {
                    continue;
                }
                new += 1;
                match serde_json::from_str::<Job>(m.body().unwrap_or_default()) {
                    Ok(job) => jobs.push(job),
                    Err(e) => tracing::warn!(
                        message_id = m.message_id().unwrap_or_default(),
                        error = %e,
                        "dead letter is not a job"
                    ),
                }
            }
            if new == 0 {
                break Ok(());
            }
        };
        // Hand everything back, even after a failed page, so nothing stays hidden.
        self.release_dead_letters(&dead_letter_url, receipts).await;
        read.map(|()| jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_tokens_pass_through_or_hash() {
        assert_eq!(fifo_token("prod/U001"), "prod/U001");
        assert_eq!(fifo_token("job-1:contacts"), "job-1:contacts");
        let hashed = fifo_token("Zürich/ü");
        assert_eq!(hashed.len(), 64);
        assert_eq!(hashed, fifo_token("Zürich/ü"));
        assert_ne!(hashed, fifo_token("Zürich/u"));
        assert_eq!(fifo_token(&"x".repeat(129)).len(), 64);
        assert_eq!(fifo_token("has space").len(), 64);
        assert_eq!(fifo_token("").len(), 64);
    }

    #[test]
    fn redrive_policy_names_account_and_queue() {
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:jobs-dlq.fifo","maxReceiveCount":5}"#;
        assert_eq!(
            dead_letter_target(policy),
            Some(("123456789012", "jobs-dlq.fifo"))
        );
        assert_eq!(dead_letter_target("{}"), None);
        assert_eq!(
            dead_letter_target(r#"{"deadLetterTargetArn":"arn:aws:sns:x:1:t"}"#),
            None
        );
    }

    #[test]
    fn visibility_rounds_up_and_caps_at_twelve_hours() {
        assert_eq!(visibility_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1)), 1);
        assert_eq!(visibility_seconds(Duration::from_secs(5)), 5);
        assert_eq!(visibility_seconds(Duration::from_secs(99 * 3600)), 43_200);
    }
}
