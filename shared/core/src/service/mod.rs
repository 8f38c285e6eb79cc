//! The sync service: reads what a run needs through the ports, asks a planner what to do, and
//! executes the plan one batch at a time, persisting each pair's link right after its write
//! (R34) and advancing cursors only once the changes they cover are applied and saved (R35).
//!
//! - [`contacts`]: the contact run (feed read once per environment, applied per user).
//! - [`calendar`]: the calendar run (LN read once per environment, both ways per user).

pub mod calendar;
pub mod contacts;

pub use calendar::{CalendarFeed, CalendarOptions, CalendarSync, EventTarget};
pub use contacts::{ContactFeed, ContactSync, UserRun};

use crate::error::{Classify, ErrorClass, LnError, MailboxError, StoreError};
use crate::ids::EnvironmentId;
use crate::model::{LinkKind, RunCounts, RunOutcome, RunRecord, SyncUser};
use crate::plan::DeletionGate;
use crate::ports::{Clock, StateStore};
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

/// Splits `users` into the active ones that have a mailbox and, for active users without an
/// e-mail address (R4: the mailbox is the user's e-mail in LN), failed runs saying why.
pub(crate) fn addressable_users(users: &[SyncUser]) -> (Vec<&SyncUser>, Vec<UserRun>) {
    let (active, unaddressable): (Vec<&SyncUser>, Vec<&SyncUser>) = users
        .iter()
        .filter(|u| u.active)
        .partition(|u| !u.email.as_str().trim().is_empty());
    let failed = unaddressable
        .into_iter()
        .map(|u| UserRun {
            user: u.user.clone(),
            mailbox: u.email.clone(),
            outcome: RunOutcome::Failed,
            counts: RunCounts::default(),
            error: Some(SyncError::InvalidUser {
                user: u.user.clone(),
                reason: "has no e-mail address in LN (ttaad2141m000), so no mailbox to synchronize"
                    .into(),
            }),
        })
        .collect();
    (active, failed)
}

/// Where one user's run happens: the store and clock, and which lease and run record it uses.
pub(crate) struct RunScope<'a> {
    pub env: &'a EnvironmentId,
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
    pub lease_ttl: Duration,
    /// The (user, kind) lease of R36/R7.
    pub lease_kind: &'a str,
    /// The kind the run is recorded under for the console (R39); `None`: not recorded (a
    /// single-event sync, so the console's last run stays the pull's).
    pub record_kind: Option<LinkKind>,
}

impl RunScope<'_> {
    /// Runs `body` under the user's lease and records the run (if it has a record kind). `body` returns the counts so
    /// far and its result; a run that finds the lease held is `Busy` and not recorded.
    pub(crate) async fn run<F, Fut>(&self, user: &SyncUser, holder: &str, body: F) -> UserRun
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = (RunCounts, Result<(), SyncError>)>,
    {
        let started_at = self.clock.now();
        let leased = self
            .store
            .acquire_lease(
                self.env,
                &user.user,
                self.lease_kind,
                holder,
                started_at,
                self.lease_ttl,
            )
            .await;
        let (outcome, counts, error) = match leased {
            Ok(false) => (
                RunOutcome::Busy,
                RunCounts::default(),
                Some(SyncError::Busy),
            ),
            Err(e) => (RunOutcome::Failed, RunCounts::default(), Some(e.into())),
            Ok(true) => {
                let (counts, result) = body().await;
                // A lease we fail to release expires on its own; the run's result stands.
                let _ = self
                    .store
                    .release_lease(self.env, &user.user, self.lease_kind, holder)
                    .await;
                match result {
                    Ok(()) if counts.errors == 0 && counts.held == 0 => {
                        (RunOutcome::Succeeded, counts, None)
                    }
                    Ok(()) => (RunOutcome::Partial, counts, None),
                    Err(e) => (RunOutcome::Failed, counts, Some(e)),
                }
            }
        };
        if outcome != RunOutcome::Busy
            && let Some(kind) = self.record_kind
        {
            let record = RunRecord {
                env: self.env.clone(),
                user: user.user.clone(),
                kind,
                started_at,
                finished_at: self.clock.now(),
                outcome,
                counts,
                error: error.as_ref().map(ToString::to_string),
            };
            // The run is done either way; losing its record only dims the console.
            let _ = self.store.record_run(&record).await;
        }
        UserRun {
            user: user.user.clone(),
            mailbox: user.email.clone(),
            outcome,
            counts,
            error,
        }
    }
}
