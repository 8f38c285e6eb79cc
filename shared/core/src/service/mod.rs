//! The sync service: reads what a run needs through the ports, asks a planner what to do, and
//! executes the plan one batch at a time, persisting each pair's link right after its write
//! (R34) and advancing cursors only once the changes they cover are applied and saved (R35).
//!
//! - [`contacts`]: the contact run (feed read once per environment, applied per user).
//! - [`calendar`]: the calendar run (LN read once per environment, both ways per user).

pub mod calendar;
pub mod contacts;

pub use calendar::{CalendarFeed, CalendarOptions, CalendarSync};
pub use contacts::{ContactFeed, ContactSync, UserRun};

use crate::error::{Classify, ErrorClass, LnError, MailboxError, StoreError};
use crate::plan::DeletionGate;
use std::time::Duration;

/// Why a user's run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Ln(#[from] LnError),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another run holds this user's lease")]
    Busy,
    /// R30: a side listed nothing while links exist; the run stopped and deleted nothing.
    #[error("safety stop: {reason}")]
    SafetyStop { reason: String },
    /// The LN data of the user can't work, e.g. an active sync user without an e-mail address.
    #[error("sync user {user}: {reason}")]
    InvalidUser {
        user: crate::ids::UserId,
        reason: String,
    },
}

impl Classify for SyncError {
    fn class(&self) -> ErrorClass {
        match self {
            SyncError::Ln(e) => e.class(),
            SyncError::Mailbox(e) => e.class(),
            SyncError::Store(e) => e.class(),
            SyncError::Busy => ErrorClass::Transient,
            SyncError::SafetyStop { .. } => ErrorClass::Permanent,
            SyncError::InvalidUser { .. } => ErrorClass::Configuration,
        }
    }
}

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub deletion_gate: DeletionGate,
    /// How long a run's lease on a (user, kind) lasts if the run dies without releasing it.
    pub lease_ttl: Duration,
    /// How many users of an environment run at once in one process.
    pub user_concurrency: usize,
    /// Repair mode (R12): also read the "CRM Contacts" folder incrementally each run and
    /// restore LN values on contacts edited or deleted in Outlook.
    pub repair: bool,
    /// Calendar tunables (R15–R30).
    pub calendar: CalendarOptions,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            deletion_gate: DeletionGate::default(),
            lease_ttl: Duration::from_secs(15 * 60),
            user_concurrency: 4,
            repair: false,
            calendar: CalendarOptions::default(),
        }
    }
}
