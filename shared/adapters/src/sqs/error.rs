//! The SQS queue's own failures and their mapping into the port's [`QueueError`].
//!
//! Throttling, 5xx, dispatch and timeout failures (after the SDK's own retries) become
//! [`QueueError::Unavailable`] with the SDK error kept as the source. A request SQS refuses on
//! its merits (a 4xx other than throttling: bad parameter, missing queue, denied) becomes
//! [`QueueError::Rejected`]: retrying can't help. `Rejected` has no source slot in the port, so
//! its message carries the whole error chain, including the AWS error code.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use lnsync_core::error::QueueError;

/// What can go wrong inside the SQS queue, kept as the source of [`QueueError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum SqsQueueError {
    /// An SDK call failed; `source` is the SDK's error with its metadata.
    #[error("SQS {op} failed")]
    Call {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A request could not be built (a required field was missing): a bug here.
    #[error("building an SQS request failed")]
    Build(#[from] aws_sdk_sqs::error::BuildError),
    /// Entries of a batch send kept failing on the service side after every retry.
    #[error("SQS SendMessageBatch: {} entries failed after {attempts} attempts: {}", failed.len(), describe(failed))]
    BatchEntries {
        failed: Vec<FailedEntry>,
        attempts: u32,
    },
}

/// One failed entry of a batch call, as SQS reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub code: String,
    pub message: Option<String>,
    pub sender_fault: bool,
}

impl FailedEntry {
    pub(super) fn from_sdk(e: &aws_sdk_sqs::types::BatchResultErrorEntry) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.message().map(str::to_owned),
            sender_fault: e.sender_fault(),
        }
    }
}

fn describe(failed: &[FailedEntry]) -> String {
    failed
        .iter()
        .map(|f| match &f.message {
            Some(m) => format!("{} ({m})", f.code),
            None => f.code.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn unavailable(e: SqsQueueError) -> QueueError {
    QueueError::Unavailable {
        source: Box::new(e),
    }
}

pub(super) fn build_error(e: aws_sdk_sqs::error::BuildError) -> QueueError {
    unavailable(SqsQueueError::Build(e))
}

/// Error codes that mean "slow down", whatever their HTTP status.
const THROTTLING_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "KmsThrottled",
    "OverLimit",
];

/// The port error for a failed SDK call: a refusal on the merits is `Rejected`, anything that
/// may pass later is `Unavailable`.
pub(super) fn call_error<E>(op: &'static str, e: SdkError<E, HttpResponse>) -> QueueError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let refused = match &e {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or_default();
            let status = ctx.raw().status().as_u16();
            (400..500).contains(&status) && !THROTTLING_CODES.contains(&code)
        }
        _ => false,
    };
    let err = SqsQueueError::Call {
        op,
        source: Box::new(e),
    };
    if refused {
        QueueError::Rejected {
            message: chain(&err),
        }
    } else {
        unavailable(err)
    }
}

/// "outer: inner: innermost", for messages that can't carry a source.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}
