//! Errors at the ports. Each adapter maps its own failures into these enums, keeping the source,
//! and each error knows its [`ErrorClass`] so the service and the runtimes can decide to retry,
//! wait, or report without looking at adapter details.

use crate::ids::{ExchangeItemId, MailboxAddress};
use std::time::Duration;

/// A boxed source error, so ports don't depend on adapter crates.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later; nothing is wrong with the request.
    Transient,
    /// The service asked us to wait this long (R37).
    Throttled(Duration),
    /// Someone else changed the thing; re-read and retry.
    Conflict,
    /// The request can't succeed as it is.
    Permanent,
    /// Settings, credentials or permissions are wrong: an administrator must act.
    Configuration,
}

impl ErrorClass {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorClass::Transient | ErrorClass::Throttled(_) | ErrorClass::Conflict
        )
    }
}

/// Anything that can say which class it is.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// Failures of the LN API (`LnGateway`).
#[derive(Debug, thiserror::Error)]
pub enum LnError {
    #[error("LN at {url} is unreachable")]
    Unreachable {
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("LN rejected the credentials: {message}")]
    Unauthorized { message: String },
    #[error("LN is throttling requests; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    #[error("LN {entity} {key} was changed by someone else (412 Precondition Failed)")]
    PreconditionFailed { entity: String, key: String },
    #[error("LN already has {entity} {existing_key} for this reference (409 Conflict)")]
    AlreadyExists {
        entity: String,
        existing_key: String,
    },
    #[error("LN {entity} {key} does not exist")]
    NotFound { entity: String, key: String },
    #[error("LN answered {status} {code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("LN sent a response lnsync cannot read: {message}")]
    Protocol {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("LN connection settings are invalid: {0}")]
    Configuration(String),
}

impl Classify for LnError {
    fn class(&self) -> ErrorClass {
        match self {
            LnError::Unreachable { .. } => ErrorClass::Transient,
            LnError::Unauthorized { .. } | LnError::Configuration(_) => ErrorClass::Configuration,
            LnError::Throttled { retry_after } => ErrorClass::Throttled(*retry_after),
            LnError::PreconditionFailed { .. } | LnError::AlreadyExists { .. } => {
                ErrorClass::Conflict
            }
            LnError::NotFound { .. } | LnError::Protocol { .. } => ErrorClass::Permanent,
            LnError::Server { status, .. } if *status >= 500 => ErrorClass::Transient,
            LnError::Server { .. } => ErrorClass::Permanent,
        }
    }
}

/// Failures of a whole mailbox call (`Mailbox`). Per-item failures are [`ItemError`]s.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("Exchange at {url} is unreachable")]
    Unreachable {
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("mailbox {mailbox} is throttled; retry after {retry_after:?}")]
    Throttled {
        mailbox: MailboxAddress,
        retry_after: Duration,
    },
    #[error("mailbox {mailbox}: {code}: {message}")]
    Configuration {
        mailbox: MailboxAddress,
        code: String,
        message: String,
    },
    #[error("the sync cursor of mailbox {mailbox} is no longer valid")]
    InvalidCursor { mailbox: MailboxAddress },
    #[error("the folder lnsync uses in mailbox {mailbox} no longer exists")]
    FolderNotFound { mailbox: MailboxAddress },
    #[error("the push subscription on mailbox {mailbox} no longer exists")]
    SubscriptionNotFound { mailbox: MailboxAddress },
    #[error("Exchange answered {code}: {message}")]
    Server {
        code: String,
        message: String,
        transient: bool,
    },
    #[error("Exchange sent a response lnsync cannot read: {message}")]
    Protocol {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{0} is not supported by this Exchange backend yet")]
    Unsupported(&'static str),
}

impl Classify for MailboxError {
    fn class(&self) -> ErrorClass {
        match self {
            MailboxError::Unreachable { .. } => ErrorClass::Transient,
            MailboxError::Throttled { retry_after, .. } => ErrorClass::Throttled(*retry_after),
            MailboxError::Configuration { .. } => ErrorClass::Configuration,
            MailboxError::InvalidCursor { .. }
            | MailboxError::FolderNotFound { .. }
            | MailboxError::SubscriptionNotFound { .. } => ErrorClass::Conflict,
            MailboxError::Server {
                transient: true, ..
            } => ErrorClass::Transient,
            MailboxError::Server { .. } | MailboxError::Protocol { .. } => ErrorClass::Permanent,
            MailboxError::Unsupported(_) => ErrorClass::Configuration,
        }
    }
}

/// The failure of one item inside a batched mailbox call (EWS per-item ResponseClass).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("item {0} no longer exists")]
    NotFound(ExchangeItemId),
    #[error("item {0} was changed since its version was read")]
    Conflict(ExchangeItemId),
    #[error("the folder for this item no longer exists")]
    FolderNotFound,
    #[error("throttled; retry after {0:?}")]
    Throttled(Duration),
    #[error("{code}: {message}")]
    Failed {
        code: String,
        message: String,
        transient: bool,
    },
}

impl Classify for ItemError {
    fn class(&self) -> ErrorClass {
        match self {
            ItemError::NotFound(_) | ItemError::FolderNotFound => ErrorClass::Conflict,
            ItemError::Conflict(_) => ErrorClass::Conflict,
            ItemError::Throttled(d) => ErrorClass::Throttled(*d),
            ItemError::Failed {
                transient: true, ..
            } => ErrorClass::Transient,
            ItemError::Failed { .. } => ErrorClass::Permanent,
        }
    }
}

/// Failures of the state store (`StateStore`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: another run changed the row (R36).
    #[error("{what} was changed by another run")]
    Conflict { what: String },
    #[error("the state store is unavailable")]
    Unavailable {
        #[source]
        source: BoxError,
    },
    #[error("the state store holds data lnsync cannot read: {message}")]
    Corrupt { message: String },
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Conflict { .. } => ErrorClass::Conflict,
            StoreError::Unavailable { .. } => ErrorClass::Transient,
            StoreError::Corrupt { .. } => ErrorClass::Permanent,
        }
    }
}

/// Failures of the job queue (`JobQueue`).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the job queue is unavailable")]
    Unavailable {
        #[source]
        source: BoxError,
    },
    #[error("the job queue rejected the request: {message}")]
    Rejected { message: String },
    #[error("unknown or expired receipt")]
    UnknownReceipt,
}

impl Classify for QueueError {
    fn class(&self) -> ErrorClass {
        match self {
            QueueError::Unavailable { .. } => ErrorClass::Transient,
            QueueError::Rejected { .. } | QueueError::UnknownReceipt => ErrorClass::Permanent,
        }
    }
}
