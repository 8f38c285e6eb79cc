//! The DynamoDB store's own failures and their mapping into the port's [`StoreError`].
//!
//! A lost condition becomes [`StoreError::Conflict`]; everything else the SDK reports
//! (throttling, 5xx, dispatch and timeout failures after the SDK's own retries, validation
//! errors) becomes [`StoreError::Unavailable`] with the SDK error kept as the source, so logs show
//! the operation, the AWS error code and the request id.

use aws_sdk_dynamodb::error::SdkError;
use lnsync_core::error::StoreError;
use std::time::Duration;

/// What can go wrong inside the DynamoDB store, kept as the source of [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum DynamoStoreError {
    /// An SDK call failed; `source` is the SDK's error with its metadata.
    #[error("DynamoDB {op} failed")]
    Call {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A request could not be built (a required field was missing): a bug here.
    #[error("building a DynamoDB request failed")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
    /// A batch call kept returning unprocessed entries after every retry (sustained
    /// throttling of the partition).
    #[error("DynamoDB {op} left {left} entries unprocessed after {attempts} attempts")]
    Unprocessed {
        op: &'static str,
        left: usize,
        attempts: u32,
    },
    #[error("table {table} did not become ACTIVE within {waited:?}")]
    NotActive { table: String, waited: Duration },
}

impl DynamoStoreError {
    pub(super) fn build(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
        unavailable(DynamoStoreError::Build(e))
    }
}

pub(super) fn unavailable(e: DynamoStoreError) -> StoreError {
    StoreError::Unavailable {
        source: Box::new(e),
    }
}

/// The port error for a failed SDK call that had no condition to lose.
pub(super) fn call_error<E, R>(op: &'static str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    unavailable(DynamoStoreError::Call {
        op,
        source: Box::new(e),
    })
}

/// A stored item lnsync cannot read.
pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        message: format!("{what}: {detail}"),
    }
}
