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
    let _ = tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr));
}

/// The subscriber `init` installs, writing to `writer` (stderr; a buffer in tests).
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(false).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lambda_logs_are_json_lines_carrying_environment_user_and_job() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), move || {
            writer.clone()
        });
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                env = "prod",
                user = "aberg",
                job = "prod/aberg/calendar/x",
                "job done"
            );
            tracing::debug!("below the filter");
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "job done");
        assert_eq!(line["env"], "prod");
        assert_eq!(line["user"], "aberg");
        assert_eq!(line["job"], "prod/aberg/calendar/x");
    }
}
