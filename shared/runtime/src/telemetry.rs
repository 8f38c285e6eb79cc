//! Logging. Events carry environment, user and job ids as fields; secrets and item bodies are
//! never logged (R41). `LNSYNC_LOG` filters (e.g. `lnsync=debug`).

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init(format: LogFormat) {
    init_with(format, "warn");
}

/// JSON lines for CloudWatch, `info` unless `LNSYNC_LOG` says otherwise: a function's log is
/// its only trace of which jobs ran for which environment and user (R41). No ANSI colours.
pub fn init_lambda() {
    init_with(LogFormat::Json, "info");
}

fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env("LNSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
