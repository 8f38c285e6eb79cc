//! The configuration file of the single-process runner (`lnsync.toml`).
//!
//! Secrets never live in this file (R3): each is named by a file path (`*_file`) or an
//! environment variable (`*_env`) and read at start. Loading checks everything it can and
//! reports every problem at once, each naming its field, so an administrator fixes the file in
//! one pass instead of one error at a time.

use lnsync_core::ids::EnvironmentId;
use lnsync_core::plan::DeletionGate;
use lnsync_core::plan::calendar::ConflictPolicy;
use lnsync_core::service::{CalendarOptions, SyncOptions};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use lnsync_core::secret::Secret;

/// Where a secret comes from: a file or an environment variable (single process), or a value
/// already fetched at start (serverless: AWS Secrets Manager, see [`crate::aws`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    /// Fetched once per Lambda container; `Secret`'s `Debug` keeps it out of logs (R41).
    Value(Secret),
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
            SecretSource::Env(var) => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| format!("environment variable {var} is not set")),
            SecretSource::Value(secret) => Ok(secret.clone()),
        }
    }
}

/// Everything wrong with a configuration file, one line per problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration {} is invalid:", self.path.display())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

// ---- the file as written ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    push: RawPush,
    #[serde(default, rename = "environment")]
    environments: Vec<RawEnvironment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    public_url: Option<String>,
    listen: Option<String>,
    status_frequency_minutes: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    user_concurrency: Option<usize>,
    max_deletions: Option<usize>,
    max_deletion_fraction: Option<f64>,
    repair: Option<bool>,
    lease_seconds: Option<u64>,
    calendar_horizon_days: Option<u32>,
    conflict_policy: Option<String>,
    time_zone: Option<String>,
    sync_private_events: Option<bool>,
}

/// The longest calendar horizon accepted: an Exchange CalendarView spans at most two years, and
/// a longer window would only multiply the occurrences of open-ended series (R25).
pub const MAX_HORIZON_DAYS: u32 = 730;

/// The calendar tunables of `[sync]` (R16, R20, R26, R28), each problem naming its key.
/// `None` for a key that was not given keeps the service's default.
pub fn calendar_options(
    problems: &mut Vec<String>,
    horizon_days: Option<u32>,
    conflict_policy: Option<&str>,
    time_zone: Option<&str>,
    sync_private_events: Option<bool>,
) -> CalendarOptions {
    let defaults = CalendarOptions::default();
    let horizon_days = horizon_days.unwrap_or(defaults.horizon_days);
    if !(1..=MAX_HORIZON_DAYS).contains(&horizon_days) {
        problems.push(format!(
            "sync.calendar_horizon_days: {horizon_days} is not between 1 and {MAX_HORIZON_DAYS}"
        ));
    }
    let conflict_policy = match conflict_policy {
        None => defaults.conflict_policy,
        Some("newest-wins") => ConflictPolicy::NewestWins,
        Some("ln-wins") => ConflictPolicy::LnWins,
        Some("exchange-wins") => ConflictPolicy::ExchangeWins,
        Some(other) => {
            problems.push(format!(
                "sync.conflict_policy: \"{other}\" is not one of \"newest-wins\", \"ln-wins\", \"exchange-wins\""
            ));
            defaults.conflict_policy
        }
    };
    let time_zone = match time_zone {
        None => defaults.time_zone,
        // The service falls back to UTC for a zone it cannot read, which would shift LN's
        // all-day activities by hours without a word: refuse it here instead.
        Some(tz) => match tz.parse::<chrono_tz::Tz>() {
            Ok(zone) => zone.name().to_owned(),
            Err(_) => {
                problems.push(format!(
                    "sync.time_zone: \"{tz}\" is not an IANA time zone (e.g. \"Europe/Amsterdam\", \"UTC\")"
                ));
                defaults.time_zone
            }
        },
    };
    CalendarOptions {
        horizon_days,
        conflict_policy,
        time_zone,
        sync_private_events: sync_private_events.unwrap_or(defaults.sync_private_events),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    id: String,
    company: String,
    ln: RawLn,
    exchange: RawExchange,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLn {
    ionapi_file: Option<PathBuf>,
    ionapi_env: Option<String>,
    service_path: Option<String>,
    page_size: Option<u32>,
    webhook_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    url: Option<String>,
    auth: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    /// Refused with a pointed message: secrets don't go into the file.
    password: Option<toml::Value>,
    token: Option<toml::Value>,
    /// Longest wait lnsync accepts from an ErrorServerBusy hint before giving up on the mailbox.
    max_backoff_seconds: Option<u64>,
}

// ---- the validated configuration -------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub store_path: PathBuf,
    pub sync: SyncOptions,
    pub push: PushSettings,
    pub environments: Vec<EnvironmentConfig>,
}

/// The default `StatusFrequency` of EWS push subscriptions, minutes (Exchange's own default).
pub const DEFAULT_STATUS_FREQUENCY_MINUTES: u32 = 30;

/// Push (R31–R33) as this deployment offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// The base URL Exchange and LN reach the push endpoint at; `None`: no subscriptions are
    /// made and the pull alone keeps mailboxes in step.
    pub public_url: Option<url::Url>,
    /// Where `lnsync serve` listens (single process only).
    pub listen: std::net::SocketAddr,
    /// EWS `StatusFrequency` of new subscriptions (1–1440).
    pub status_frequency_minutes: u32,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
            status_frequency_minutes: DEFAULT_STATUS_FREQUENCY_MINUTES,
        }
    }
}

/// Checks a push base URL: absolute http(s), no query or fragment (paths are appended to it).
pub fn push_url(problems: &mut Vec<String>, field: &str, value: &str) -> Option<url::Url> {
    match url::Url::parse(value.trim()) {
        Ok(u)
            if (u.scheme() == "https" || u.scheme() == "http")
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Some(u)
        }
        Ok(u) if u.scheme() != "https" && u.scheme() != "http" => {
            problems.push(format!(
                "{field}: scheme {} is not http or https",
                u.scheme()
            ));
            None
        }
        Ok(_) => {
            problems.push(format!("{field}: must not have a query or fragment"));
            None
        }
        Err(e) => {
            problems.push(format!("{field}: {e}"));
            None
        }
    }
}

/// Checks a StatusFrequency (EWS accepts 1–1440 minutes).
pub fn status_frequency(problems: &mut Vec<String>, field: &str, value: Option<u32>) -> u32 {
    let v = value.unwrap_or(DEFAULT_STATUS_FREQUENCY_MINUTES);
    if !(1..=1440).contains(&v) {
        problems.push(format!("{field}: {v} is not between 1 and 1440 minutes"));
    }
    v
}

#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    pub id: EnvironmentId,
    /// The LN company, sent as `X-Infor-LnCompany`.
    pub company: String,
    pub ln: LnConfig,
    pub exchange: ExchangeConfig,
}

#[derive(Debug, Clone)]
pub struct LnConfig {
    /// The `.ionapi` credentials file (JSON), itself a secret.
    pub ionapi: SecretSource,
    /// Path of the lnsync OData service under `{iu}/{ti}/`; default `LN/lnapi/odata/lnsync/`.
    pub service_path: Option<String>,
    pub page_size: Option<u32>,
    /// The HMAC key of the environment's LN webhook (R33); without it LN webhooks are refused.
    pub webhook_secret: Option<SecretSource>,
}

#[derive(Debug, Clone)]
pub enum ExchangeAuth {
    Basic {
        username: String,
        password: SecretSource,
    },
    Bearer {
        token: SecretSource,
    },
}

#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Overrides LN's `exchangeUrl` setting when given.
    pub url: Option<url::Url>,
    pub auth: ExchangeAuth,
    pub max_backoff: Duration,
}

fn secret_source(
    problems: &mut Vec<String>,
    field: &str,
    file: Option<PathBuf>,
    env: Option<String>,
) -> Option<SecretSource> {
    match (file, env) {
        (Some(f), None) => Some(SecretSource::File(f)),
        (None, Some(e)) => Some(SecretSource::Env(e)),
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{field}: give either {field}_file or {field}_env, not both"
            ));
            None
        }
        (None, None) => {
            problems.push(format!(
                "{field}: missing; set {field}_file (a path) or {field}_env (a variable name)"
            ));
            None
        }
    }
}

impl Config {
    /// Reads and validates a configuration file. Relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |problems: Vec<String>| ConfigError {
            path: path.to_owned(),
            problems,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(fail)
    }

    /// Parses configuration text; `base` anchors relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Self, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![describe_toml_error(&e)])?;
        let mut problems = Vec::new();
        let anchor = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let store_path = anchor(
            raw.store
                .path
                .unwrap_or_else(|| PathBuf::from("lnsync.sqlite")),
        );

        let defaults = SyncOptions::default();
        let fraction = raw
            .sync
            .max_deletion_fraction
            .unwrap_or(defaults.deletion_gate.max_fraction);
        if !(0.0..=1.0).contains(&fraction) {
            problems.push(format!(
                "sync.max_deletion_fraction: {fraction} is not between 0 and 1"
            ));
        }
        let concurrency = raw
            .sync
            .user_concurrency
            .unwrap_or(defaults.user_concurrency);
        if concurrency == 0 {
            problems.push("sync.user_concurrency: must be at least 1".to_owned());
        }
        let sync = SyncOptions {
            deletion_gate: DeletionGate {
                max_items: raw
                    .sync
                    .max_deletions
                    .unwrap_or(defaults.deletion_gate.max_items),
                max_fraction: fraction,
            },
            lease_ttl: raw
                .sync
                .lease_seconds
                .map_or(defaults.lease_ttl, Duration::from_secs),
            user_concurrency: concurrency,
            repair: raw.sync.repair.unwrap_or(false),
            calendar: calendar_options(
                &mut problems,
                raw.sync.calendar_horizon_days,
                raw.sync.conflict_policy.as_deref(),
                raw.sync.time_zone.as_deref(),
                raw.sync.sync_private_events,
            ),
        };

        let push = PushSettings {
            public_url: raw
                .push
                .public_url
                .as_deref()
                .and_then(|u| push_url(&mut problems, "push.public_url", u)),
            listen: match raw.push.listen.as_deref().map(str::parse) {
                None => PushSettings::default().listen,
                Some(Ok(addr)) => addr,
                Some(Err(e)) => {
                    problems.push(format!(
                        "push.listen: {e} (expected e.g. \"127.0.0.1:8787\")"
                    ));
                    PushSettings::default().listen
                }
            },
            status_frequency_minutes: status_frequency(
                &mut problems,
                "push.status_frequency_minutes",
                raw.push.status_frequency_minutes,
            ),
        };

        if raw.environments.is_empty() {
            problems.push("environment: no [[environment]] is configured".to_owned());
        }
        let mut environments = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, env) in raw.environments.into_iter().enumerate() {
            let at = format!("environment[{i}] ({})", env.id);
            let before = problems.len();
            if env.id.trim().is_empty()
                || !env
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.push(format!("{at}.id: use letters, digits, '-' or '_' only"));
            }
            if !seen.insert(env.id.clone()) {
                problems.push(format!("{at}.id: duplicate environment id"));
            }
            if env.company.trim().is_empty() {
                problems.push(format!("{at}.company: must not be empty"));
            }
            let mut sub = Vec::new();
            let ionapi = secret_source(
                &mut sub,
                "ionapi",
                env.ln.ionapi_file.map(anchor),
                env.ln.ionapi_env,
            );
            let webhook_secret = match (env.ln.webhook_secret_file, env.ln.webhook_secret_env) {
                (None, None) => None,
                (file, var) => secret_source(&mut sub, "webhook_secret", file.map(anchor), var),
            };
            let ex = env.exchange;
            if ex.password.is_some() || ex.token.is_some() {
                sub.push("password/token: secrets are not allowed in the configuration file; use password_file/password_env or token_file/token_env".to_owned());
            }
            let url = match ex.url.as_deref().map(url::Url::parse) {
                None => None,
                Some(Ok(u)) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
                Some(Ok(u)) => {
                    sub.push(format!("url: scheme {} is not http or https", u.scheme()));
                    None
                }
                Some(Err(e)) => {
                    sub.push(format!("url: {e}"));
                    None
                }
            };
            let auth = match ex.auth.as_deref().unwrap_or("basic") {
                "basic" => {
                    let username = ex.username.filter(|u| !u.trim().is_empty());
                    if username.is_none() {
                        sub.push("username: required for auth = \"basic\"".to_owned());
                    }
                    let password = secret_source(
                        &mut sub,
                        "password",
                        ex.password_file.map(anchor),
                        ex.password_env,
                    );
                    username
                        .zip(password)
                        .map(|(username, password)| ExchangeAuth::Basic { username, password })
                }
                "bearer" => {
                    secret_source(&mut sub, "token", ex.token_file.map(anchor), ex.token_env)
                        .map(|token| ExchangeAuth::Bearer { token })
                }
                other => {
                    sub.push(format!(
                        "auth: \"{other}\" is not one of \"basic\", \"bearer\""
                    ));
                    None
                }
            };
            for p in sub {
                let section = if p.starts_with("ionapi") || p.starts_with("webhook_secret") {
                    "ln"
                } else {
                    "exchange"
                };
                problems.push(format!("{at}.{section}.{p}"));
            }
            if problems.len() == before
                && let (Some(ionapi), Some(auth)) = (ionapi, auth)
            {
                environments.push(EnvironmentConfig {
                    id: EnvironmentId::new(env.id),
                    company: env.company,
                    ln: LnConfig {
                        ionapi,
                        service_path: env.ln.service_path,
                        page_size: env.ln.page_size,
                        webhook_secret,
                    },
                    exchange: ExchangeConfig {
                        url,
                        auth,
                        max_backoff: Duration::from_secs(ex.max_backoff_seconds.unwrap_or(300)),
                    },
                });
            }
        }
        if problems.is_empty() {
            Ok(Config {
                store_path,
                sync,
                push,
                environments,
            })
        } else {
            Err(problems)
        }
    }

    pub fn environment(&self, id: &EnvironmentId) -> Option<&EnvironmentConfig> {
        self.environments.iter().find(|e| &e.id == id)
    }
}

/// toml's messages carry line/column and the key; keep them, on one line.
fn describe_toml_error(e: &toml::de::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [store]
        path = "state/lnsync.sqlite"

        [sync]
        max_deletions = 50

        [[environment]]
        id = "prod"
        company = "100"
        [environment.ln]
        ionapi_file = "prod.ionapi"
        [environment.exchange]
        url = "https://mail.corp.example/EWS/Exchange.asmx"
        username = "svc-lnsync"
        password_env = "LNSYNC_EWS_PASSWORD"
    "#;

    #[test]
    fn good_config_resolves_paths_and_defaults() {
        let c = Config::parse(GOOD, Path::new("/etc/lnsync")).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            c.store_path,
            PathBuf::from("/etc/lnsync/state/lnsync.sqlite")
        );
        assert_eq!(c.sync.deletion_gate.max_items, 50);
        let env = &c.environments[0];
        assert_eq!(env.company, "100");
        assert!(
            matches!(&env.ln.ionapi, SecretSource::File(p) if p == Path::new("/etc/lnsync/prod.ionapi"))
        );
        assert!(
            matches!(&env.exchange.auth, ExchangeAuth::Basic { username, .. } if username == "svc-lnsync")
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let bad = GOOD.replace("max_deletions", "max_deletes");
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        assert!(problems[0].contains("max_deletes"), "{problems:?}");
    }

    #[test]
    fn inline_password_is_refused_with_the_field_named() {
        let bad = GOOD.replace(
            "password_env = \"LNSYNC_EWS_PASSWORD\"",
            "password = \"hunter2\"",
        );
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        let all = problems.join("\n");
        assert!(
            all.contains("environment[0] (prod).exchange.password"),
            "{all}"
        );
        assert!(!all.contains("hunter2"), "the secret must not be echoed");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let bad = GOOD
            .replace("company = \"100\"", "company = \"\"")
            .replace(
                "url = \"https://mail.corp.example/EWS/Exchange.asmx\"",
                "url = \"ftp://x\"",
            )
            .replace("username = \"svc-lnsync\"", "");
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.ends_with(".company: must not be empty"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains(".exchange.url: scheme ftp"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains(".exchange.username: required"))
        );
    }

    #[test]
    fn wrong_type_names_the_key_and_line() {
        let bad = GOOD.replace("max_deletions = 50", "max_deletions = \"fifty\"");
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        assert!(
            problems[0].contains("max_deletions") && problems[0].contains("line"),
            "{problems:?}"
        );
    }

    #[test]
    fn calendar_keys_default_when_absent() {
        let c = Config::parse(GOOD, Path::new(".")).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(c.sync.calendar, CalendarOptions::default());
        assert_eq!(c.sync.calendar.horizon_days, 365);
        assert_eq!(c.sync.calendar.conflict_policy, ConflictPolicy::NewestWins);
        assert_eq!(c.sync.calendar.time_zone, "UTC");
        assert!(!c.sync.calendar.sync_private_events);
    }

    #[test]
    fn calendar_keys_reach_the_sync_options() {
        let good = GOOD.replace(
            "max_deletions = 50",
            "max_deletions = 50\ncalendar_horizon_days = 90\nconflict_policy = \"exchange-wins\"\n\
             time_zone = \"Europe/Amsterdam\"\nsync_private_events = true",
        );
        let c = Config::parse(&good, Path::new(".")).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            c.sync.calendar,
            CalendarOptions {
                horizon_days: 90,
                conflict_policy: ConflictPolicy::ExchangeWins,
                time_zone: "Europe/Amsterdam".into(),
                sync_private_events: true,
            }
        );
        for (text, policy) in [
            ("newest-wins", ConflictPolicy::NewestWins),
            ("ln-wins", ConflictPolicy::LnWins),
        ] {
            let good = GOOD.replace(
                "max_deletions = 50",
                &format!("conflict_policy = \"{text}\""),
            );
            let c = Config::parse(&good, Path::new(".")).unwrap_or_else(|p| panic!("{p:?}"));
            assert_eq!(c.sync.calendar.conflict_policy, policy);
        }
    }

    #[test]
    fn bad_calendar_keys_are_listed_with_the_other_problems() {
        let bad = GOOD
            .replace(
                "max_deletions = 50",
                "max_deletions = 50\ncalendar_horizon_days = 0\nconflict_policy = \"outlook-wins\"\n\
                 time_zone = \"W. Europe Standard Time\"",
            )
            .replace("company = \"100\"", "company = \"\"");
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 4, "{problems:?}");
        let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
        assert!(
            has("sync.calendar_horizon_days: 0 is not between 1 and"),
            "{problems:?}"
        );
        assert!(
            has("sync.conflict_policy: \"outlook-wins\""),
            "{problems:?}"
        );
        assert!(
            has("sync.time_zone: \"W. Europe Standard Time\" is not an IANA time zone"),
            "{problems:?}"
        );
        assert!(has(".company: must not be empty"), "{problems:?}");

        let too_far = GOOD.replace("max_deletions = 50", "calendar_horizon_days = 731");
        let problems = Config::parse(&too_far, Path::new("."))
            .err()
            .unwrap_or_default();
        assert!(
            problems.len() == 1 && problems[0].starts_with("sync.calendar_horizon_days: 731"),
            "{problems:?}"
        );
        let wrong_type = GOOD.replace("max_deletions = 50", "sync_private_events = \"yes\"");
        let problems = Config::parse(&wrong_type, Path::new("."))
            .err()
            .unwrap_or_default();
        assert!(problems[0].contains("sync_private_events"), "{problems:?}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
