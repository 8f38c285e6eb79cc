//! lnsync's runtime: what every way of running lnsync shares above the adapters.
//!
//! - [`config`]: the typed configuration file, secrets by file or environment variable.
//! - [`telemetry`]: structured logging setup (text for people, JSON for machines, R41).
//! - [`compose`]: the composition root: builds LN, Exchange and store adapters from config.
//! - [`runner`]: one contact run over all started environments, with a per-user report.

pub mod compose;
pub mod config;
pub mod runner;
pub mod telemetry;
