//! The worker function: an SQS batch of jobs in, the failed messages out.
//!
//! - [`handle`]: the handler, a plain async function over a [`Worker`] (tests call it directly).
//! - [`inbound`]: one SQS record as the runtime's [`InboundMessage`].
//!
//! Everything about running a job lives in `lnsync_runtime::jobs`, shared with `lnsync`; this
//! crate only speaks the Lambda event format. The event source mapping must have
//! `FunctionResponseTypes: [ReportBatchItemFailures]`, or one failure retries the whole batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lnsync_core::ports::Receipt;
use lnsync_runtime::jobs::{InboundMessage, Worker};

/// One SQS record. A record without a message id can't be reported as failed; it gets a
/// placeholder so the batch still runs (Lambda always sends ids).
pub fn inbound(record: &SqsMessage) -> InboundMessage {
    InboundMessage {
        message_id: record.message_id.clone().unwrap_or_default(),
        receipt: Receipt(record.receipt_handle.clone().unwrap_or_default()),
        body: record.body.clone().unwrap_or_default(),
        group: record.attributes.get("MessageGroupId").cloned(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
    }
}

/// Runs the batch's jobs and names every message that failed (partial batch response).
pub async fn handle(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<InboundMessage> = event.records.iter().map(inbound).collect();
    let report = worker.run_batch(&messages).await;
    let mut response = SqsBatchResponse::default();
    for id in report.failed {
        response.add_failure(id);
    }
    response
}
