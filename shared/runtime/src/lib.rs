//! lnsync's runtime: what every way of running lnsync shares above the adapters.
//!
//! - [`config`]: the typed configuration file, secrets by file or environment variable.
//! - [`telemetry`]: structured logging setup (text for people, JSON for machines, R41).
//! - [`compose`]: the composition root: builds LN, Exchange (EWS or Graph, as LN selects) and
//!   store adapters from config.
//! - [`runner`]: one run of contacts and calendars over all started environments, reported per
//!   user and kind.
//! - [`schedule`]: the scheduler's tick: due users → jobs on the queue (R3, R6, R7).
//! - [`jobs`]: the worker: runs queued jobs with per-message outcomes (R14, R34–R37).
//! - [`scheduled`]: `lnsync run --schedule`: the tick and the worker in one process.
//! - [`serve`]: `lnsync serve`: the scheduled loop plus the push endpoint on a local port.
//! - [`vars`]: the serverless functions' environment variable names, in one place.
//! - [`deploy`]: those variables validated, and secrets resolved, for a Lambda container.
//! - [`push`]: the push endpoint (EWS and Graph notifications, LN webhook) and subscriptions
//!   (R31–R33).
//! - [`aws`]: AWS clients (Secrets Manager, DynamoDB, SQS) built once per container.

pub mod aws;
pub mod compose;
pub mod config;
pub mod deploy;
pub mod jobs;
pub mod push;
pub mod runner;
pub mod schedule;
pub mod scheduled;
pub mod serve;
pub mod telemetry;
pub mod vars;
