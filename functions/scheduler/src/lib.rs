//! The scheduler function: an EventBridge scheduled event in, due users' jobs onto the queue.
//!
//! - [`handle`]: the handler, a plain async function over a [`Scheduler`] (tests call it
//!   directly); the tick itself is `lnsync_runtime::schedule::tick`, shared with `lnsync`.
//!
//! The tick's "now" is the event's `time` when it has one: EventBridge keeps it on retries of
//! the same event, so a retried tick computes the same boundaries and job ids, and the queue's
//! de-duplication drops the repeats.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lnsync_core::ports::{Clock, JobQueue, StateStore};
use lnsync_runtime::config::{EnvironmentConfig, PushSettings};
use lnsync_runtime::runner::Connector;
use lnsync_runtime::schedule::{TickReport, TickStatus, tick};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a tick needs, built once per container.
pub struct Scheduler {
    pub environments: Vec<EnvironmentConfig>,
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub connector: Arc<dyn Connector>,
    pub clock: Arc<dyn Clock>,
    /// Push URL and StatusFrequency: the tick keeps subscriptions alive with them (R33).
    pub push: PushSettings,
}

/// A tick failed for some environment; the invocation fails so it shows in the function's
/// error metrics (the other environments' jobs are queued all the same).
#[derive(Debug, thiserror::Error)]
#[error("the tick failed for {0}")]
pub struct TickFailed(pub String);

/// Runs one tick and answers a small summary (what `cargo lambda invoke` prints).
pub async fn handle(
    scheduler: &Scheduler,
    event: EventBridgeEvent<Value>,
) -> Result<Value, TickFailed> {
    let now: DateTime<Utc> = event.time.unwrap_or_else(|| scheduler.clock.now());
    let report = tick(
        &scheduler.environments,
        scheduler.store.as_ref(),
        scheduler.queue.as_ref(),
        scheduler.connector.as_ref(),
        &scheduler.push,
        now,
    )
    .await;
    let summary = summary(&report, now);
    if report.has_failures() {
        let failed: Vec<String> = report
            .environments
            .iter()
            .filter_map(|e| match &e.status {
                TickStatus::Failed(m) => Some(format!("{}: {m}", e.env)),
                _ => None,
            })
            .collect();
        return Err(TickFailed(failed.join("; ")));
    }
    Ok(summary)
}

fn summary(report: &TickReport, now: DateTime<Utc>) -> Value {
    json!({
        "now": now,
        "jobs": report.jobs(),
        "environments": report.environments.iter().map(|e| json!({
            "env": e.env,
            "status": match &e.status {
                TickStatus::Scheduled => "scheduled".to_owned(),
                TickStatus::Stopped => "stopped".to_owned(),
                TickStatus::Failed(m) => format!("failed: {m}"),
            },
            "activeUsers": e.active_users,
            "usersWritten": e.users_written,
            "jobs": e.jobs,
        })).collect::<Vec<_>>(),
        "unconfigured": report.unconfigured,
    })
}
