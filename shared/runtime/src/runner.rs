//! One run of contacts and calendars over every started environment (what `lnsync run` does),
//! reported per user and kind.
//!
//! Both kinds go through the same steps ([`run`]): the environment must be started (R1), LN's
//! settings are read once, each kind must be switched on in LN (R2) (both run on either
//! Exchange backend, EWS or Graph), the sync users and the mailbox are resolved once, and then the
//! kind's service runs (`ContactSync::run` or `CalendarSync::run`, each reading its LN feed once
//! for the environment, R14). Only that last call differs per kind ([`SyncKind`]).
//!
//! A failure stays as small as it can: an environment whose LN can't be read fails for its
//! users only (listed from the store, since LN couldn't say who they are); a mailbox that fails
//! fails for its user and kind only.

use crate::config::{Config, EnvironmentConfig};
use lnsync_core::Classify;
use lnsync_core::ids::{EnvironmentId, MailboxAddress, UserId};
use lnsync_core::model::{JobKind, RunCounts, RunOutcome, Settings, SyncUser};
use lnsync_core::ports::{Clock, LnGateway, Mailbox, StateStore};
use lnsync_core::service::{CalendarSync, ContactSync, SyncError, SyncOptions, UserRun};
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

/// What is synchronized: the two pulls of R2, each with its own switch and interval in LN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncKind {
    /// LN contacts → "CRM Contacts" (R8–R14).
    Contacts,
    /// LN appointments and calls ↔ Exchange meetings (R15–R30).
    Calendar,
}

impl SyncKind {
    pub const ALL: [SyncKind; 2] = [SyncKind::Contacts, SyncKind::Calendar];

    /// `contacts` or `calendar`, as in job ids, logs and the report.
    pub fn label(self) -> &'static str {
        self.job_kind().label()
    }

    /// The scheduled job of this kind.
    pub fn job_kind(self) -> JobKind {
        match self {
            SyncKind::Contacts => JobKind::ContactPull,
            SyncKind::Calendar => JobKind::CalendarPull,
        }
    }

    /// The kind of a scheduled pull; `None` for a single-event (push) job.
    pub fn of_job(kind: &JobKind) -> Option<SyncKind> {
        match kind {
            JobKind::ContactPull => Some(SyncKind::Contacts),
            JobKind::CalendarPull => Some(SyncKind::Calendar),
            JobKind::SingleEvent { .. } | JobKind::Subscribe => None,
        }
    }

    /// LN's COM parameter that switches the kind on (R2).
    pub fn switch(self) -> &'static str {
        match self {
            SyncKind::Contacts => "Synchronize Contacts",
            SyncKind::Calendar => "Synchronize Activities",
        }
    }

    pub fn enabled(self, settings: &Settings) -> bool {
        match self {
            SyncKind::Contacts => settings.synchronize_contacts,
            SyncKind::Calendar => settings.synchronize_activities,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentStatus {
    Ran,
    /// Not started in the store (R1): nothing scheduled.
    Stopped,
    /// The kind's switch (*Synchronize Contacts*, *Synchronize Activities*) is off in LN's COM
    /// parameters (R2).
    Off,
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

/// One kind's run in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentReport {
    pub env: EnvironmentId,
    pub company: String,
    pub kind: SyncKind,
    pub status: EnvironmentStatus,
    pub users: Vec<UserReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Per environment, one entry per kind that was asked for, in [`SyncKind`] order.
    pub environments: Vec<EnvironmentReport>,
}

fn add(t: &mut RunCounts, c: &RunCounts) {
    t.created += c.created;
    t.updated += c.updated;
    t.deleted += c.deleted;
    t.skipped += c.skipped;
    t.errors += c.errors;
    t.held += c.held;
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

    /// Counts over every environment, user and kind.
    pub fn totals(&self) -> RunCounts {
        let mut t = RunCounts::default();
        for u in self.environments.iter().flat_map(|e| &e.users) {
            add(&mut t, &u.counts);
        }
        t
    }

    /// Counts of one kind over every environment and user.
    pub fn totals_of(&self, kind: SyncKind) -> RunCounts {
        let mut t = RunCounts::default();
        for e in self.environments.iter().filter(|e| e.kind == kind) {
            for u in &e.users {
                add(&mut t, &u.counts);
            }
        }
        t
    }

    /// The line of `user` for `kind` in environment `env`.
    pub fn user(&self, env: &str, user: &str, kind: SyncKind) -> Option<&UserReport> {
        self.environments
            .iter()
            .filter(|e| e.env.as_str() == env && e.kind == kind)
            .flat_map(|e| &e.users)
            .find(|u| u.user.as_str() == user)
    }

    /// A plain-text table for people: per environment, one row per user and kind.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Environments in the order they were run; each has one entry per kind.
        let mut envs: Vec<&EnvironmentId> = Vec::new();
        for e in &self.environments {
            if !envs.contains(&&e.env) {
                envs.push(&e.env);
            }
        }
        for id in envs {
            let kinds: Vec<&EnvironmentReport> =
                self.environments.iter().filter(|e| &e.env == id).collect();
            let Some(first) = kinds.first() else {
                continue;
            };
            // A status every kind shares (stopped, LN unreachable) is said once, on the
            // environment's line; otherwise each kind that did not run gets its own line.
            let shared = kinds.iter().all(|k| k.status == first.status);
            let suffix = if shared {
                match status_text(first.kind, &first.status) {
                    Some(text) if first.status != EnvironmentStatus::Off => format!(" — {text}"),
                    _ => String::new(),
                }
            } else {
                String::new()
            };
            let _ = writeln!(out, "environment {id} (company {}){suffix}", first.company);
            let said_once = !suffix.is_empty();
            for k in &kinds {
                if let Some(text) = status_text(k.kind, &k.status)
                    && !said_once
                {
                    let _ = writeln!(out, "  {}: {text}", k.kind.label());
                }
            }
            let mut rows: Vec<(&UserReport, SyncKind)> = kinds
                .iter()
                .flat_map(|k| k.users.iter().map(|u| (u, k.kind)))
                .collect();
            if rows.is_empty() {
                continue;
            }
            rows.sort_by(|a, b| a.0.user.cmp(&b.0.user).then(a.1.cmp(&b.1)));
            let _ = writeln!(
                out,
                "  {:<12} {:<34} {:<9} {:<9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5}",
                "user",
                "mailbox",
                "kind",
                "result",
                "created",
                "updated",
                "deleted",
                "skipped",
                "errors",
                "held"
            );
            for (u, kind) in rows {
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
                    "  {:<12} {:<34} {:<9} {:<9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5}",
                    u.user.as_str(),
                    mailbox,
                    kind.label(),
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

/// What to say about a kind that did not simply run.
fn status_text(kind: SyncKind, status: &EnvironmentStatus) -> Option<String> {
    match status {
        EnvironmentStatus::Ran => None,
        EnvironmentStatus::Stopped => Some("stopped (start it with `lnsync env start`)".to_owned()),
        EnvironmentStatus::Off => Some(format!("{} is off in LN", kind.switch())),
        EnvironmentStatus::Failed(e) => Some(format!("FAILED: {e}")),
    }
}

/// Runs `kinds` once for every started environment of `config`.
pub async fn run(
    config: &Config,
    kinds: &[SyncKind],
    store: &dyn StateStore,
    clock: &dyn Clock,
    connector: &dyn Connector,
) -> RunReport {
    let holder = format!("lnsync-{}", uuid::Uuid::new_v4());
    let mut kinds = kinds.to_vec();
    kinds.sort();
    kinds.dedup();
    let cx = Cx {
        options: &config.sync,
        store,
        clock,
        connector,
        holder: &holder,
    };
    let mut report = RunReport::default();
    for env in &config.environments {
        report
            .environments
            .extend(run_environment(env, &kinds, &cx).await);
    }
    report
}

/// Runs contacts only, once for every started environment of `config`.
pub async fn run_contacts(
    config: &Config,
    store: &dyn StateStore,
    clock: &dyn Clock,
    connector: &dyn Connector,
) -> RunReport {
    run(config, &[SyncKind::Contacts], store, clock, connector).await
}

/// What every environment's run shares.
struct Cx<'a> {
    options: &'a SyncOptions,
    store: &'a dyn StateStore,
    clock: &'a dyn Clock,
    connector: &'a dyn Connector,
    holder: &'a str,
}

async fn run_environment(
    env: &EnvironmentConfig,
    kinds: &[SyncKind],
    cx: &Cx<'_>,
) -> Vec<EnvironmentReport> {
    let report =
        |kind: SyncKind, status: EnvironmentStatus, users: Vec<UserReport>| EnvironmentReport {
            env: env.id.clone(),
            company: env.company.clone(),
            kind,
            status,
            users,
        };
    // Everything that fails before users run fails each known user of the kinds concerned, so
    // the report shows who was not synchronized.
    let fail = |message: String, which: Vec<SyncKind>| async move {
        let known = cx.store.user_states(&env.id).await.unwrap_or_default();
        let users: Vec<UserReport> = known
            .into_iter()
            .map(|s| UserReport {
                user: s.user,
                mailbox: Some(s.mailbox),
                outcome: RunOutcome::Failed,
                counts: RunCounts::default(),
                error: Some(message.clone()),
            })
            .collect();
        which
            .into_iter()
            .map(|kind| {
                report(
                    kind,
                    EnvironmentStatus::Failed(message.clone()),
                    users.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    match cx.store.environment(&env.id).await {
        Ok(Some(state)) if state.started => {}
        Ok(_) => {
            return kinds
                .iter()
                .map(|k| report(*k, EnvironmentStatus::Stopped, Vec::new()))
                .collect();
        }
        Err(e) => {
            let message = format!("state store: {e}");
            return kinds
                .iter()
                .map(|k| report(*k, EnvironmentStatus::Failed(message.clone()), Vec::new()))
                .collect();
        }
    }
    let ln = match cx.connector.ln(env) {
        Ok(ln) => ln,
        Err(e) => return fail(e, kinds.to_vec()).await,
    };
    let settings = match ln.settings().await {
        Ok(s) => s,
        Err(e) => return fail(error_chain(&e), kinds.to_vec()).await,
    };
    let mut out = Vec::new();
    let mut runnable = Vec::new();
    for &kind in kinds {
        if !kind.enabled(&settings) {
            out.push(report(kind, EnvironmentStatus::Off, Vec::new()));
        } else {
            runnable.push(kind);
        }
    }
    if !runnable.is_empty() {
        out.extend(run_kinds(env, &settings, ln.as_ref(), &runnable, cx, &report).await);
    }
    out.sort_by_key(|r| r.kind);
    out
}

/// The switched-on kinds of a started environment: users and mailbox once, then each kind's
/// service.
async fn run_kinds(
    env: &EnvironmentConfig,
    settings: &Settings,
    ln: &dyn LnGateway,
    kinds: &[SyncKind],
    cx: &Cx<'_>,
    report: &impl Fn(SyncKind, EnvironmentStatus, Vec<UserReport>) -> EnvironmentReport,
) -> Vec<EnvironmentReport> {
    let fail_listed = |message: String, users: &[SyncUser]| {
        let users: Vec<UserReport> = users
            .iter()
            .filter(|u| u.active)
            .map(|u| UserReport {
                user: u.user.clone(),
                mailbox: Some(u.email.clone()),
                outcome: RunOutcome::Failed,
                counts: RunCounts::default(),
                error: Some(message.clone()),
            })
            .collect();
        kinds
            .iter()
            .map(|k| {
                report(
                    *k,
                    EnvironmentStatus::Failed(message.clone()),
                    users.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let users: Vec<SyncUser> = match ln.sync_users().await {
        Ok(u) => u,
        Err(e) => {
            let message = error_chain(&e);
            let known = cx.store.user_states(&env.id).await.unwrap_or_default();
            let listed: Vec<SyncUser> = known
                .into_iter()
                .map(|s| SyncUser {
                    name: s.user.to_string(),
                    user: s.user,
                    active: true,
                    email: s.mailbox,
                })
                .collect();
            return fail_listed(message, &listed);
        }
    };
    let mailbox = match cx.connector.mailbox(env, settings) {
        Ok(m) => m,
        Err(e) => return fail_listed(e, &users),
    };
    let mut out = Vec::new();
    for &kind in kinds {
        // The one step that differs per kind: the service, which reads its LN feed once for
        // the environment (R14) and runs the users.
        let runs = match kind {
            SyncKind::Contacts => {
                ContactSync {
                    env: &env.id,
                    store: cx.store,
                    clock: cx.clock,
                    options: cx.options,
                }
                .run(ln, mailbox.as_ref(), &users, cx.holder)
                .await
            }
            SyncKind::Calendar => {
                CalendarSync {
                    env: &env.id,
                    store: cx.store,
                    clock: cx.clock,
                    options: cx.options,
                }
                .run(ln, mailbox.as_ref(), &users, cx.holder)
                .await
            }
        };
        out.push(match runs {
            Ok(runs) => report(kind, EnvironmentStatus::Ran, user_reports(env, kind, runs)),
            Err(e) => {
                // The feed could not be read: every active user misses this kind's run.
                let message = error_chain(&e);
                let users = users
                    .iter()
                    .filter(|u| u.active)
                    .map(|u| UserReport {
                        user: u.user.clone(),
                        mailbox: Some(u.email.clone()),
                        outcome: RunOutcome::Failed,
                        counts: RunCounts::default(),
                        error: Some(message.clone()),
                    })
                    .collect();
                report(kind, EnvironmentStatus::Failed(message), users)
            }
        });
    }
    out
}

fn user_reports(env: &EnvironmentConfig, kind: SyncKind, runs: Vec<UserRun>) -> Vec<UserReport> {
    let mut reports: Vec<UserReport> = runs
        .into_iter()
        .map(|r| UserReport {
            user: r.user,
            mailbox: Some(r.mailbox),
            outcome: r.outcome,
            counts: r.counts,
            error: r.error.map(|e: SyncError| {
                tracing::warn!(env = %env.id, kind = kind.label(), class = ?e.class(), error = %error_chain(&e), "user run failed");
                error_chain(&e)
            }),
        })
        .collect();
    reports.sort_by(|a, b| a.user.cmp(&b.user));
    reports
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
