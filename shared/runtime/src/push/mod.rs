//! Push (R31–R33): notifications in, single-event sync jobs out.
//!
//! - [`router`]: the HTTP endpoint shared by the push Lambda (function URL) and `lnsync serve`:
//!   EWS `SendNotification` callbacks and the LN webhook, authenticated, parsed, turned into
//!   jobs and acknowledged, with no Exchange or LN call inside the request.
//! - [`subscriptions`]: the subscription lifecycle: the worker's `Subscribe` job and the
//!   scheduler's upkeep (recreate silent subscriptions, retire unwanted ones).
//! - [`function`]: the push function's own configuration (it reads far less than the worker:
//!   the table, the queue and the LN webhook secrets only).
//!
//! Notifications are only hints (R32): a lost one costs latency, never data, because the pull
//! keeps running and reads every change since its own cursors.

pub mod function;
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

/// A new push token: two random v4 UUIDs (244 random bits from the OS), hex. The token is the only secret of an EWS
/// notification URL (Exchange push has no other way to authenticate to its listener).
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
