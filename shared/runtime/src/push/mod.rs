//! Push (R31–R33): notifications in, single-event sync jobs out.
//!
//! - [`router`]: the HTTP endpoint shared by the push Lambda (function URL) and `lnsync serve`:
//!   EWS `SendNotification` callbacks, Graph change notifications and the LN webhook,
//!   authenticated, parsed, turned into jobs and acknowledged, with no Exchange or LN call
//!   inside the request.
//! - [`graph`]: the Graph routes of the router: the `validationToken` handshake, change
//!   notifications and lifecycle notifications.
//! - [`subscriptions`]: the subscription lifecycle: the worker's `Subscribe` job (create, renew
//!   or recreate; end retired Graph subscriptions) and the scheduler's upkeep (recreate silent
//!   EWS subscriptions, renew expiring Graph ones, retire unwanted ones).
//! - [`function`]: the push function's own configuration (it reads far less than the worker:
//!   the table, the queue and the LN webhook secrets only).
//!
//! Notifications are only hints (R32): a lost one costs latency, never data, because the pull
//! keeps running and reads every change since its own cursors.

pub mod function;
pub mod graph;
pub mod router;
pub mod subscriptions;

pub use router::{HttpRequest, HttpResponse, MAX_BODY_BYTES, PushRouter};

use lnsync_core::ids::EnvironmentId;

/// The URL Exchange POSTs an environment's notifications to: `{base}/ews/{env}/{token}`.
pub fn ews_notification_url(base: &url::Url, env: &EnvironmentId, token: &str) -> String {
    format!(
        "{}/ews/{}/{}",
        base.as_str().trim_end_matches('/'),
        env,
        token
    )
}

/// Where Graph POSTs an environment's change notifications: `{base}/graph/{env}`. Graph
/// subscriptions are authenticated by their `clientState` (the push token), so the URL holds no
/// secret.
pub fn graph_notification_url(base: &url::Url, env: &EnvironmentId) -> String {
    format!("{}/graph/{}", base.as_str().trim_end_matches('/'), env)
}

/// Where Graph POSTs an environment's lifecycle notifications: `{base}/graph/{env}/lifecycle`.
pub fn graph_lifecycle_url(base: &url::Url, env: &EnvironmentId) -> String {
    format!("{}/lifecycle", graph_notification_url(base, env))
}

/// A new push token: two random v4 UUIDs (244 random bits from the OS), hex. The token is the
/// only secret of an EWS notification URL (Exchange push has no other way to authenticate to its
/// listener) and the `clientState` of the environment's Graph subscriptions.
pub fn new_push_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_url_joins_without_double_slashes() -> Result<(), url::ParseError> {
        let env = EnvironmentId::new("prod");
        for base in ["https://push.example/", "https://push.example"] {
            let base = url::Url::parse(base)?;
            assert_eq!(
                ews_notification_url(&base, &env, "t0k"),
                "https://push.example/ews/prod/t0k"
            );
        }
        let base = url::Url::parse("http://127.0.0.1:9000/lambda-url/push")?;
        assert_eq!(
            ews_notification_url(&base, &env, "t"),
            "http://127.0.0.1:9000/lambda-url/push/ews/prod/t"
        );
        assert_eq!(
            graph_notification_url(&base, &env),
            "http://127.0.0.1:9000/lambda-url/push/graph/prod"
        );
        assert_eq!(
            graph_lifecycle_url(&url::Url::parse("https://push.example/")?, &env),
            "https://push.example/graph/prod/lifecycle"
        );
        Ok(())
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_push_token(), new_push_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
