//! The queues' shape in one place: the FIFO job queue, its FIFO dead-letter queue and the redrive
//! policy between them. [`create_queues`] builds them (tests and a local `lnsync`); the
//! deployment template (infra/) must declare the same attributes.

use super::error::call_error;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use lnsync_core::error::QueueError;
use std::time::Duration;

/// SQS requires FIFO queue names to end so.
pub const FIFO_SUFFIX: &str = ".fifo";
/// The dead-letter queue of `<name>.fifo` is `<name>-dlq.fifo`.
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";
/// How long the dead-letter queue keeps a job: the maximum, so an administrator has two weeks
/// to look at a failed job in the console (R37). A FIFO message keeps its original enqueue
/// time when moved, so this must exceed the job queue's retention.
pub const DEAD_LETTER_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long the job queue keeps an unreceived job (the SQS default, four days): a job older
/// than that is stale anyway, the scheduler enqueues a fresh one.
pub const QUEUE_RETENTION: Duration = Duration::from_secs(4 * 24 * 3600);

/// The URLs of a job queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub queue_url: String,
    pub dead_letter_url: String,
}

/// Creates (or finds, if they exist with the same attributes) the FIFO queue `<name>.fifo` with
/// the given visibility timeout, and its FIFO dead-letter queue `<name>-dlq.fifo`, wired by a
/// redrive policy that moves a message after `max_receives` receives.
///
/// De-duplication is by explicit id (the job id), not by content: two jobs with equal bodies are
/// different jobs, and one job re-sent is the same job.
pub async fn create_queues(
    client: &Client,
    name: &str,
    visibility: Duration,
    max_receives: u32,
) -> Result<QueueUrls, QueueError> {
    let dead_letter_url = client
        .create_queue()
        .queue_name(format!("{name}{DEAD_LETTER_SUFFIX}{FIFO_SUFFIX}"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DEAD_LETTER_RETENTION.as_secs().to_string(),
        )
        .send()
        .await
        .map_err(|e| call_error("CreateQueue", e))?
        .queue_url
        .unwrap_or_default();
    let dead_letter_arn = client
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| call_error("GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receives,
    });
    let queue_url = client
        .create_queue()
        .queue_name(format!("{name}{FIFO_SUFFIX}"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            QUEUE_RETENTION.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| call_error("CreateQueue", e))?
        .queue_url
        .unwrap_or_default();
    Ok(QueueUrls {
        queue_url,
        dead_letter_url,
    })
}
