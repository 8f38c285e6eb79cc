//! One contact run over every started environment (what `lnsync run` does), reported per user.
//!
//! A failure stays as small as it can: an environment whose LN can't be read fails for its
//! users only (listed from the store, since LN couldn't say who they are); a mailbox that fails
//! fails for its user only.

use crate::config::{Config, EnvironmentConfig};
use lnsync_core::Classify;
use lnsync_core::ids::{EnvironmentId, MailboxAddress, UserId};
use lnsync_core::model::{ExchangeBackend, RunCounts, RunOutcome, Settings, SyncUser};
use lnsync_core::ports::{Clock, LnGateway, Mailbox, StateStore};
use lnsync_core::service::{ContactSync, SyncOptions};
use std::fmt::Write as _;
use std::sync::Arc;

/// Builds the adapters of one environment. The live implementation is in `compose`; tests may
/// inject their own.
pub trait Connector: Send + Sync {
    fn ln(&self, env: &EnvironmentConfig) -> Result<Arc<dyn LnGateway>, String>;
    fn mailbox(
        &self,
        env: &EnvironmentConfig,
        settings: &Settings,
    ) -> Result<Arc<dyn Mailbox>, String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentStatus {
    Ran,
    /// Not started in the store (R1): nothing scheduled.
    Stopped,
    /// *Synchronize Contacts* is off in LN's COM parameters (R2).
    ContactsOff,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub user: UserId,
    pub mailbox: Option<MailboxAddress>,
    pub outcome: RunOutcome,
    pub counts: RunCounts,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentReport {
    pub env: EnvironmentId,
    pub company: String,
    pub status: EnvironmentStatus,
    pub users: Vec<UserReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub environments: Vec<EnvironmentReport>,
}

impl RunReport {
    /// True when an environment or a user failed: `lnsync run` then exits non-zero.
    pub fn has_failures(&self) -> bool {
        self.environments.iter().any(|e| {
            matches!(e.status, EnvironmentStatus::Failed(_))
                || e.users
                    .iter()
                    .any(|u| matches!(u.outcome, RunOutcome::Failed | RunOutcome::Busy))
        })
    }

    pub fn totals(&self) -> RunCounts {
        let mut t = RunCounts::default();
        for u in self.environments.iter().flat_map(|e| &e.users) {
            t.created += u.counts.created;
            t.updated += u.counts.updated;
            t.deleted += u.counts.deleted;
            t.skipped += u.counts.skipped;
            t.errors += u.counts.errors;
            t.held += u.counts.held;
        }
        t
    }

    /// A plain-text table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for env in &self.environments {
            let status = match &env.status {
                EnvironmentStatus::Ran => String::new(),
                EnvironmentStatus::Stopped => {
                    " — stopped (start it with `lnsync env start`)".to_owned()
                }
                EnvironmentStatus::ContactsOff => " — Synchronize Contacts is off in LN".to_owned(),
                EnvironmentStatus::Failed(e) => format!(" — FAILED: {e}"),
            };
            let _ = writeln!(
                out,
                "environment {} (company {}){status}",
                env.env, env.company
            );
            if env.users.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<12} {:<34} {:<9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5}",
                "user",
                "mailbox",
                "result",
                "created",
                "updated",
                "deleted",
                "skipped",
                "errors",
                "held"
            );
            for u in &env.users {
                let outcome = match u.outcome {
                    RunOutcome::Succeeded => "ok",
                    RunOutcome::Partial => "partial",
                    RunOutcome::Failed => "FAILED",
                    RunOutcome::Busy => "busy",
                };
                let c = u.counts;
                let mailbox = u.mailbox.as_ref().map_or("-", |m| m.as_str());
                let _ = writeln!(
                    out,
                    "  {:<12} {:<34} {:<9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5}",
                    u.user.as_str(),
                    mailbox,
                    outcome,
                    c.created,
                    c.updated,
                    c.deleted,
                    c.skipped,
                    c.errors,
                    c.held
                );
                if let Some(e) = &u.error {
                    let _ = writeln!(out, "      error: {e}");
                }
            }
        }
        out
    }
}

/// Runs contacts once for every started environment of `config`.
pub async fn run_contacts(
    config: &Config,
    store: &dyn StateStore,
    clock: &dyn Clock,
    connector: &dyn Connector,
) -> RunReport {
    let holder = format!("lnsync-{}", uuid::Uuid::new_v4());
    let mut report = RunReport::default();
    for env in &config.environments {
        let (status, users) =
            run_environment(env, &config.sync, store, clock, connector, &holder).await;
        report.environments.push(EnvironmentReport {
            env: env.id.clone(),
            company: env.company.clone(),
            status,
            users,
        });
    }
    report
}

async fn run_environment(
    env: &EnvironmentConfig,
    options: &SyncOptions,
    store: &dyn StateStore,
    clock: &dyn Clock,
    connector: &dyn Connector,
    holder: &str,
) -> (EnvironmentStatus, Vec<UserReport>) {
    match store.environment(&env.id).await {
        Ok(Some(state)) if state.started => {}
        Ok(_) => return (EnvironmentStatus::Stopped, Vec::new()),
        Err(e) => {
            return (
                EnvironmentStatus::Failed(format!("state store: {e}")),
                Vec::new(),
            );
        }
    }
    // Everything that fails before users run fails each known user, so the report shows who
    // was not synchronized.
    let fail_all = |message: String| async move {
        let known = store.user_states(&env.id).await.unwrap_or_default();
        let users = known
            .into_iter()
            .map(|s| UserReport {
                user: s.user,
                mailbox: Some(s.mailbox),
                outcome: RunOutcome::Failed,
                counts: RunCounts::default(),
                error: Some(message.clone()),
            })
            .collect();
        (EnvironmentStatus::Failed(message), users)
    };
    let ln = match connector.ln(env) {
        Ok(ln) => ln,
        Err(e) => return fail_all(e).await,
    };
    let settings = match ln.settings().await {
        Ok(s) => s,
        Err(e) => return fail_all(error_chain(&e)).await,
    };
    if !settings.synchronize_contacts {
        return (EnvironmentStatus::ContactsOff, Vec::new());
    }
    if settings.exchange_backend == ExchangeBackend::Graph {
        return fail_all(
            "LN selects the Microsoft Graph backend, which this build does not support yet"
                .to_owned(),
        )
        .await;
    }
    let users: Vec<SyncUser> = match ln.sync_users().await {
        Ok(u) => u,
        Err(e) => return fail_all(error_chain(&e)).await,
    };
    let mailbox = match connector.mailbox(env, &settings) {
        Ok(m) => m,
        Err(e) => return fail_all(e).await,
    };
    let sync = ContactSync {
        env: &env.id,
        store,
        clock,
        options,
    };
    match sync
        .run(ln.as_ref(), mailbox.as_ref(), &users, holder)
        .await
    {
        Ok(runs) => {
            let mut reports: Vec<UserReport> = runs
                .into_iter()
                .map(|r| UserReport {
                    user: r.user,
                    mailbox: Some(r.mailbox),
                    outcome: r.outcome,
                    counts: r.counts,
                    error: r.error.map(|e| {
                        tracing::warn!(env = %env.id, class = ?e.class(), error = %error_chain(&e), "user run failed");
                        error_chain(&e)
                    }),
                })
                .collect();
            reports.sort_by(|a, b| a.user.cmp(&b.user));
            (EnvironmentStatus::Ran, reports)
        }
        Err(e) => {
            // The feed could not be read: every active user misses this run.
            let message = error_chain(&e);
            let users = users
                .into_iter()
                .filter(|u| u.active)
                .map(|u| UserReport {
                    user: u.user,
                    mailbox: Some(u.email),
                    outcome: RunOutcome::Failed,
                    counts: RunCounts::default(),
                    error: Some(message.clone()),
                })
                .collect();
            (EnvironmentStatus::Failed(message), users)
        }
    }
}

/// An error and its sources on one line ("LN at … is unreachable: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
