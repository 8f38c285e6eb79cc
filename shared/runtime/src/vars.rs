//! The environment variables of the serverless functions, by exact name, in one place so the
//! IaC template (`infra/`) can be checked against them. Parsed and validated by [`crate::deploy`].
//!
//! Per-environment settings come in one of two forms, chosen per environment:
//! - variables `LNSYNC_ENV_<ID>_<SUFFIX>`, where `<ID>` is the environment id upper-cased with
//!   `-` turned into `_` ([`env_var`]);
//! - one variable [`ENVIRONMENT_SETTINGS`] holding a JSON object keyed by environment id, each
//!   value an object keyed by the same suffixes ([`env::ALL`]). This is the form a
//!   CloudFormation template can write: it computes values, never variable names.
//!
//! Secrets are never values of these variables, only the ARNs of AWS Secrets Manager secrets (R3).
//!
//! The AWS SDK reads its own standard variables (`AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` to point at a local emulator such as moto).

/// DynamoDB table holding all lnsync state (scheduler, worker).
pub const TABLE: &str = "LNSYNC_TABLE";
/// URL of the SQS FIFO job queue (scheduler sends, worker changes visibility).
pub const QUEUE_URL: &str = "LNSYNC_QUEUE_URL";
/// URL of the job queue's dead-letter queue (read by `lnsync status`).
pub const DLQ_URL: &str = "LNSYNC_DLQ_URL";
/// Comma-separated ids of the environments this deployment serves, e.g. `prod,test`.
pub const ENVIRONMENTS: &str = "LNSYNC_ENVIRONMENTS";
/// Log filter (`tracing` env-filter syntax), e.g. `lnsync=debug`; default `info`.
pub const LOG: &str = "LNSYNC_LOG";
/// Per-environment settings as one JSON object, `{"prod": {"COMPANY": "100", ...}}`, keyed by
/// the suffixes of [`env::ALL`] (see the module docs). An environment found here must not also
/// have `LNSYNC_ENV_<ID>_*` variables.
pub const ENVIRONMENT_SETTINGS: &str = "LNSYNC_ENVIRONMENT_SETTINGS";

/// Optional tunables; defaults as in `lnsync.toml`'s `[sync]`.
pub const USER_CONCURRENCY: &str = "LNSYNC_USER_CONCURRENCY";
pub const LEASE_SECONDS: &str = "LNSYNC_LEASE_SECONDS";
pub const MAX_DELETIONS: &str = "LNSYNC_MAX_DELETIONS";
pub const MAX_DELETION_FRACTION: &str = "LNSYNC_MAX_DELETION_FRACTION";
pub const REPAIR: &str = "LNSYNC_REPAIR";
/// Calendar tunables, as `[sync]`'s `calendar_horizon_days`, `conflict_policy`, `time_zone`
/// and `sync_private_events`.
pub const CALENDAR_HORIZON_DAYS: &str = "LNSYNC_CALENDAR_HORIZON_DAYS";
pub const CONFLICT_POLICY: &str = "LNSYNC_CONFLICT_POLICY";
pub const TIME_ZONE: &str = "LNSYNC_TIME_ZONE";
pub const SYNC_PRIVATE_EVENTS: &str = "LNSYNC_SYNC_PRIVATE_EVENTS";
/// Public base URL of the push function (its function URL), e.g.
/// `https://abc.lambda-url.eu-west-1.on.aws`. Exchange and LN POST notifications under it;
/// without it no push subscription is made and the pull alone keeps mailboxes in step.
pub const PUSH_URL: &str = "LNSYNC_PUSH_URL";
/// EWS `StatusFrequency` of new push subscriptions, minutes (1–1440, default 30). A
/// subscription silent for twice this long is recreated by the scheduler (R33).
pub const PUSH_STATUS_FREQUENCY_MINUTES: &str = "LNSYNC_PUSH_STATUS_FREQUENCY_MINUTES";
/// Lifetime asked for new and renewed Graph subscriptions, minutes (1–10080, default 10070:
/// just under Graph's 7 days for Outlook events).
pub const PUSH_GRAPH_LIFETIME_MINUTES: &str = "LNSYNC_PUSH_GRAPH_LIFETIME_MINUTES";
/// A Graph subscription with less than this many minutes left is renewed by the scheduler's
/// tick (default 1440; less than the lifetime).
pub const PUSH_GRAPH_RENEW_BEFORE_MINUTES: &str = "LNSYNC_PUSH_GRAPH_RENEW_BEFORE_MINUTES";
/// Timeout of one LN or EWS HTTP request, seconds (default 60: well inside a Lambda timeout).
pub const HTTP_TIMEOUT_SECONDS: &str = "LNSYNC_HTTP_TIMEOUT_SECONDS";

/// Per-environment suffixes (see [`env_var`]).
pub mod env {
    /// LN company, sent as `X-Infor-LnCompany`. Required.
    pub const COMPANY: &str = "COMPANY";
    /// ARN of the secret whose string is the `.ionapi` JSON. Required.
    pub const IONAPI_SECRET_ARN: &str = "IONAPI_SECRET_ARN";
    /// Path of the lnsync OData service; default `LN/lnapi/odata/lnsync/`.
    pub const LN_SERVICE_PATH: &str = "LN_SERVICE_PATH";
    /// `basic` (default) or `bearer`.
    pub const EWS_AUTH: &str = "EWS_AUTH";
    /// The EWS service account. Required for `basic`.
    pub const EWS_USERNAME: &str = "EWS_USERNAME";
    /// ARN of the secret holding the service account's password. Required for `basic`.
    pub const EWS_PASSWORD_SECRET_ARN: &str = "EWS_PASSWORD_SECRET_ARN";
    /// ARN of the secret holding the bearer token. Required for `bearer`.
    pub const EWS_TOKEN_SECRET_ARN: &str = "EWS_TOKEN_SECRET_ARN";
    /// Overrides LN's `exchangeUrl` setting.
    pub const EXCHANGE_URL: &str = "EXCHANGE_URL";
    /// Longest throttling wait slept in-process (EWS ErrorServerBusy, Graph `Retry-After`),
    /// seconds (default 10: a longer wait costs a visibility change instead of billed idle
    /// time).
    pub const MAX_BACKOFF_SECONDS: &str = "MAX_BACKOFF_SECONDS";
    /// ARN of the secret holding the LN webhook's HMAC key (push function). Without it the
    /// environment's LN webhooks are refused.
    pub const LN_WEBHOOK_SECRET_ARN: &str = "LN_WEBHOOK_SECRET_ARN";

    /// Microsoft Graph (LN's `exchangeBackend` = Graph). Giving any `GRAPH_*` value configures
    /// Graph for the environment; the EWS values are then optional. Overrides LN's
    /// `azureTenant` setting.
    pub const GRAPH_TENANT: &str = "GRAPH_TENANT";
    /// Overrides LN's `clientId` setting (the app registration's application id).
    pub const GRAPH_CLIENT_ID: &str = "GRAPH_CLIENT_ID";
    /// ARN of the secret holding the app registration's client secret. Required for Graph.
    pub const GRAPH_CLIENT_SECRET_ARN: &str = "GRAPH_CLIENT_SECRET_ARN";
    /// Graph's service root; default `https://graph.microsoft.com/v1.0`.
    pub const GRAPH_BASE_URL: &str = "GRAPH_BASE_URL";
    /// The Entra ID authority host; default `https://login.microsoftonline.com`.
    pub const GRAPH_LOGIN_URL: &str = "GRAPH_LOGIN_URL";

    /// The EWS suffixes: one of them given (or none of [`GRAPH`]) configures EWS.
    /// [`EWS_AUTH`] is not among them: it only chooses how EWS authenticates, and a template
    /// may well write its default for an environment that uses Graph alone.
    pub const EWS: [&str; 4] = [
        EWS_USERNAME,
        EWS_PASSWORD_SECRET_ARN,
        EWS_TOKEN_SECRET_ARN,
        EXCHANGE_URL,
    ];
    /// The Graph suffixes: one of them given configures Graph.
    pub const GRAPH: [&str; 5] = [
        GRAPH_TENANT,
        GRAPH_CLIENT_ID,
        GRAPH_CLIENT_SECRET_ARN,
        GRAPH_BASE_URL,
        GRAPH_LOGIN_URL,
    ];

    /// Every suffix, for template checks; also the only keys [`super::ENVIRONMENT_SETTINGS`]
    /// accepts.
    pub const ALL: [&str; 15] = [
        COMPANY,
        IONAPI_SECRET_ARN,
        LN_SERVICE_PATH,
        EWS_AUTH,
        EWS_USERNAME,
        EWS_PASSWORD_SECRET_ARN,
        EWS_TOKEN_SECRET_ARN,
        EXCHANGE_URL,
        MAX_BACKOFF_SECONDS,
        LN_WEBHOOK_SECRET_ARN,
        GRAPH_TENANT,
        GRAPH_CLIENT_ID,
        GRAPH_CLIENT_SECRET_ARN,
        GRAPH_BASE_URL,
        GRAPH_LOGIN_URL,
    ];
}

/// Every global variable, for template checks.
pub const ALL: [&str; 20] = [
    TABLE,
    QUEUE_URL,
    DLQ_URL,
    ENVIRONMENTS,
    LOG,
    ENVIRONMENT_SETTINGS,
    USER_CONCURRENCY,
    LEASE_SECONDS,
    MAX_DELETIONS,
    MAX_DELETION_FRACTION,
    REPAIR,
    CALENDAR_HORIZON_DAYS,
    CONFLICT_POLICY,
    TIME_ZONE,
    SYNC_PRIVATE_EVENTS,
    HTTP_TIMEOUT_SECONDS,
    PUSH_URL,
    PUSH_STATUS_FREQUENCY_MINUTES,
    PUSH_GRAPH_LIFETIME_MINUTES,
    PUSH_GRAPH_RENEW_BEFORE_MINUTES,
];

/// The variable of `suffix` for environment `id`: `env_var("prod-eu", "COMPANY")` is
/// `LNSYNC_ENV_PROD_EU_COMPANY`.
pub fn env_var(id: &str, suffix: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("LNSYNC_ENV_{id}_{suffix}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_ews_and_graph_suffix_is_in_the_one_list() {
        for suffix in super::env::EWS.iter().chain(&super::env::GRAPH) {
            assert!(super::env::ALL.contains(suffix), "{suffix}");
        }
        let mut all = super::env::ALL.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), super::env::ALL.len(), "no suffix twice");
        let mut globals = super::ALL.to_vec();
        globals.sort_unstable();
        globals.dedup();
        assert_eq!(globals.len(), super::ALL.len(), "no variable twice");
    }

    #[test]
    fn per_environment_names() {
        assert_eq!(
            super::env_var("prod-eu", super::env::COMPANY),
            "LNSYNC_ENV_PROD_EU_COMPANY"
        );
    }
}
