//! The configuration file of the single-process runner (`lnsync.toml`).
//!
//! Secrets never live in this file (R3): each is named by a file path (`*_file`) or an
//! environment variable (`*_env`) and read at start. Loading checks everything it can and
//! reports every problem at once, each naming its field, so an administrator fixes the file in
//! one pass instead of one error at a time.

use lnsync_adapters::graph::GraphConfig;
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
    graph_lifetime_minutes: Option<u32>,
    graph_renew_before_minutes: Option<u32>,
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
    /// EWS (on premises); optional when `graph` is given.
    exchange: Option<RawExchange>,
    /// Microsoft Graph (Exchange Online); optional when `exchange` is given.
    graph: Option<RawGraph>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    /// Overrides LN's `azureTenant` setting.
    tenant: Option<String>,
    /// Overrides LN's `clientId` setting.
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    /// Refused with a pointed message: secrets don't go into the file.
    client_secret: Option<toml::Value>,
    base_url: Option<String>,
    login_url: Option<String>,
    /// Longest `Retry-After` waited out in-process before giving up on the mailbox.
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
    /// The lifetime asked for new and renewed Graph subscriptions, minutes (1–10080).
    pub graph_lifetime_minutes: u32,
    /// A Graph subscription with less than this left is renewed by the next tick.
    pub graph_renew_before_minutes: u32,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
            status_frequency_minutes: DEFAULT_STATUS_FREQUENCY_MINUTES,
            graph_lifetime_minutes: DEFAULT_GRAPH_LIFETIME_MINUTES,
            graph_renew_before_minutes: DEFAULT_GRAPH_RENEW_BEFORE_MINUTES,
        }
    }
}

/// The longest lifetime of a Graph subscription on Outlook events (exchange.md §3.7).
pub const MAX_GRAPH_LIFETIME_MINUTES: u32 = 10_080;
/// Just under the maximum: a request for exactly the maximum can land a few seconds over it by
/// the time Graph checks, which Graph refuses.
pub const DEFAULT_GRAPH_LIFETIME_MINUTES: u32 = 10_070;
/// A day: one missed tick, or a day of scheduler outage, still leaves time to renew.
pub const DEFAULT_GRAPH_RENEW_BEFORE_MINUTES: u32 = 1_440;

/// Checks the Graph subscription lifetime (1–10080 minutes).
pub fn graph_lifetime(problems: &mut Vec<String>, field: &str, value: Option<u32>) -> u32 {
    let v = value.unwrap_or(DEFAULT_GRAPH_LIFETIME_MINUTES);
    if !(1..=MAX_GRAPH_LIFETIME_MINUTES).contains(&v) {
        problems.push(format!(
            "{field}: {v} is not between 1 and {MAX_GRAPH_LIFETIME_MINUTES} minutes"
        ));
    }
    v
}

/// Checks the renewal margin: at least a minute, and shorter than the lifetime (otherwise every
/// tick would renew every subscription).
pub fn graph_renew_before(
    problems: &mut Vec<String>,
    field: &str,
    value: Option<u32>,
    lifetime: u32,
) -> u32 {
    let v = value.unwrap_or(DEFAULT_GRAPH_RENEW_BEFORE_MINUTES);
    if v == 0 {
        problems.push(format!("{field}: must be at least 1 minute"));
    } else if value.is_some() && v >= lifetime {
        problems.push(format!(
            "{field}: {v} is not less than the subscription lifetime ({lifetime} minutes)"
        ));
    }
    // The default margin shrinks with a short configured lifetime instead of being refused.
    if value.is_none() {
        v.min(lifetime / 2).max(1)
    } else {
        v
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
    /// How to reach EWS, when LN's `exchangeBackend` is EWS. At least one of `exchange` and
    /// `graph` is given; LN's setting picks which one runs (R2), so both may be configured
    /// ahead of a migration.
    pub exchange: Option<ExchangeConfig>,
    /// How to reach Microsoft Graph, when LN's `exchangeBackend` is Graph.
    pub graph: Option<GraphSettings>,
}

/// The Graph app registration of an environment. Tenant and client id come from LN's
/// `azureTenant` and `clientId` settings (R3) unless overridden here; the secret never does.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: SecretSource,
    /// Graph's service root (default `https://graph.microsoft.com/v1.0`).
    pub base_url: url::Url,
    /// The Entra ID authority host (default `https://login.microsoftonline.com`).
    pub login_url: url::Url,
    /// Longest `Retry-After` waited out in-process; `None` keeps the adapter's default.
    pub max_backoff: Option<Duration>,
}

/// Checks an http(s) URL setting; `None` (after a problem was recorded) when it is not one.
pub fn http_url(problems: &mut Vec<String>, field: &str, value: &str) -> Option<url::Url> {
    match url::Url::parse(value.trim()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && !u.cannot_be_a_base() => {
            Some(u)
        }
        Ok(u) => {
            problems.push(format!(
                "{field}: scheme {} is not http or https",
                u.scheme()
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{field}: {e}"));
            None
        }
    }
}

/// The Graph service root and authority host: each the given value, checked, else its
/// default. `None` when a given value is not an http(s) URL (the problem is recorded).
pub fn graph_urls(
    problems: &mut Vec<String>,
    base_field: &str,
    base: Option<&str>,
    login_field: &str,
    login: Option<&str>,
) -> Option<(url::Url, url::Url)> {
    let mut pick = |field: &str, value: Option<&str>, default: &str| match value {
        Some(v) => http_url(problems, field, v),
        None => url::Url::parse(default).ok(),
    };
    let base = pick(base_field, base, GraphConfig::DEFAULT_BASE_URL);
    let login = pick(login_field, login, GraphConfig::DEFAULT_LOGIN_URL);
    base.zip(login)
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

/// `[environment.exchange]`, checked; `None` when it has problems (recorded by key).
fn exchange_config(
    problems: &mut Vec<String>,
    ex: RawExchange,
    anchor: &impl Fn(PathBuf) -> PathBuf,
) -> Option<ExchangeConfig> {
    let before = problems.len();
    if ex.password.is_some() || ex.token.is_some() {
        problems.push("password/token: secrets are not allowed in the configuration file; use password_file/password_env or token_file/token_env".to_owned());
    }
    let url = ex.url.as_deref().and_then(|u| http_url(problems, "url", u));
    let auth = match ex.auth.as_deref().unwrap_or("basic") {
        "basic" => {
            let username = ex.username.filter(|u| !u.trim().is_empty());
            if username.is_none() {
                problems.push("username: required for auth = \"basic\"".to_owned());
            }
            let password = secret_source(
                problems,
                "password",
                ex.password_file.map(anchor),
                ex.password_env,
            );
            username
                .zip(password)
                .map(|(username, password)| ExchangeAuth::Basic { username, password })
        }
        "bearer" => secret_source(problems, "token", ex.token_file.map(anchor), ex.token_env)
            .map(|token| ExchangeAuth::Bearer { token }),
        other => {
            problems.push(format!(
                "auth: \"{other}\" is not one of \"basic\", \"bearer\""
            ));
            None
        }
    };
    let auth = auth.filter(|_| problems.len() == before)?;
    Some(ExchangeConfig {
        url,
        auth,
        max_backoff: Duration::from_secs(ex.max_backoff_seconds.unwrap_or(300)),
    })
}

/// `[environment.graph]`, checked; `None` when it has problems (recorded by key).
fn graph_settings(
    problems: &mut Vec<String>,
    g: RawGraph,
    anchor: &impl Fn(PathBuf) -> PathBuf,
) -> Option<GraphSettings> {
    let before = problems.len();
    if g.client_secret.is_some() {
        problems.push("client_secret: secrets are not allowed in the configuration file; use client_secret_file or client_secret_env".to_owned());
    }
    let non_empty = |problems: &mut Vec<String>, key: &str, v: Option<String>| match v {
        Some(v) if v.trim().is_empty() => {
            problems.push(format!(
                "{key}: must not be empty (leave it out to use LN's setting)"
            ));
            None
        }
        other => other.map(|v| v.trim().to_owned()),
    };
    let tenant = non_empty(problems, "tenant", g.tenant);
    let client_id = non_empty(problems, "client_id", g.client_id);
    let client_secret = match (g.client_secret_file, g.client_secret_env) {
        // An inline secret was already refused; "missing" on top would say the same twice.
        (None, None) if g.client_secret.is_some() => None,
        (file, var) => secret_source(problems, "client_secret", file.map(anchor), var),
    };
    let urls = graph_urls(
        problems,
        "base_url",
        g.base_url.as_deref(),
        "login_url",
        g.login_url.as_deref(),
    );
    let ((base_url, login_url), client_secret) = urls
        .zip(client_secret)
        .filter(|_| problems.len() == before)?;
    Some(GraphSettings {
        tenant,
        client_id,
        client_secret,
        base_url,
        login_url,
        max_backoff: g.max_backoff_seconds.map(Duration::from_secs),
    })
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
            ..PushSettings::default()
        };
        let lifetime = graph_lifetime(
            &mut problems,
            "push.graph_lifetime_minutes",
            raw.push.graph_lifetime_minutes,
        );
        let push = PushSettings {
            graph_lifetime_minutes: lifetime,
            graph_renew_before_minutes: graph_renew_before(
                &mut problems,
                "push.graph_renew_before_minutes",
                raw.push.graph_renew_before_minutes,
                lifetime,
            ),
            ..push
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
            // Problems per section, each then named `{at}.{section}.{key}`.
            let mut ln_problems = Vec::new();
            let ionapi = secret_source(
                &mut ln_problems,
                "ionapi",
                env.ln.ionapi_file.map(anchor),
                env.ln.ionapi_env,
            );
            let webhook_secret = match (env.ln.webhook_secret_file, env.ln.webhook_secret_env) {
                (None, None) => None,
                (file, var) => {
                    secret_source(&mut ln_problems, "webhook_secret", file.map(anchor), var)
                }
            };
            if env.exchange.is_none() && env.graph.is_none() {
                problems.push(format!(
                    "{at}: configure [environment.exchange] (EWS), [environment.graph] \
                     (Microsoft Graph) or both; LN's exchangeBackend setting picks one"
                ));
            }
            let mut ex_problems = Vec::new();
            let exchange = env
                .exchange
                .and_then(|ex| exchange_config(&mut ex_problems, ex, &anchor));
            let mut graph_problems = Vec::new();
            let graph = env
                .graph
                .and_then(|g| graph_settings(&mut graph_problems, g, &anchor));
            for (section, list) in [
                ("ln", ln_problems),
                ("exchange", ex_problems),
                ("graph", graph_problems),
            ] {
                problems.extend(list.into_iter().map(|p| format!("{at}.{section}.{p}")));
            }
            if problems.len() == before
                && let Some(ionapi) = ionapi
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
                    exchange,
                    graph,
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
            matches!(env.exchange.as_ref().map(|e| &e.auth), Some(ExchangeAuth::Basic { username, .. }) if username == "svc-lnsync")
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

    /// `GOOD` with Graph instead of EWS.
    fn graph_only(graph: &str) -> String {
        let start = GOOD.find("[environment.exchange]").unwrap_or(GOOD.len());
        format!("{}[environment.graph]\n{graph}\n", &GOOD[..start])
    }

    #[test]
    fn graph_alone_configures_an_environment_with_defaults()
    -> Result<(), Box<dyn std::error::Error>> {
        let c = Config::parse(
            &graph_only("client_secret_file = \"graph.secret\""),
            Path::new("/etc/lnsync"),
        )
        .map_err(|p| p.join("; "))?;
        let env = &c.environments[0];
        assert!(env.exchange.is_none());
        let g = env.graph.as_ref().ok_or("no graph")?;
        assert_eq!(g.tenant, None, "LN's azureTenant unless overridden");
        assert_eq!(g.client_id, None);
        assert!(
            matches!(&g.client_secret, SecretSource::File(p) if p == Path::new("/etc/lnsync/graph.secret"))
        );
        assert_eq!(g.base_url.as_str(), "https://graph.microsoft.com/v1.0");
        assert_eq!(g.login_url.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(g.max_backoff, None);
        assert_eq!(c.push.graph_lifetime_minutes, 10_070);
        assert_eq!(c.push.graph_renew_before_minutes, 1_440);

        let both = format!(
            "{GOOD}\n[environment.graph]\ntenant = \"corp.example\"\nclient_id = \"app-1\"\n\
             client_secret_env = \"GRAPH_SECRET\"\nbase_url = \"http://127.0.0.1:9/v1.0\"\n\
             login_url = \"http://127.0.0.1:9\"\nmax_backoff_seconds = 7\n\
             [push]\ngraph_lifetime_minutes = 60\ngraph_renew_before_minutes = 15\n"
        );
        let c = Config::parse(&both, Path::new(".")).map_err(|p| p.join("; "))?;
        let env = &c.environments[0];
        assert!(env.exchange.is_some());
        let g = env.graph.as_ref().ok_or("no graph")?;
        assert_eq!(g.tenant.as_deref(), Some("corp.example"));
        assert_eq!(g.client_id.as_deref(), Some("app-1"));
        assert_eq!(g.client_secret, SecretSource::Env("GRAPH_SECRET".into()));
        assert_eq!(g.base_url.as_str(), "http://127.0.0.1:9/v1.0");
        assert_eq!(g.max_backoff, Some(Duration::from_secs(7)));
        assert_eq!(c.push.graph_lifetime_minutes, 60);
        assert_eq!(c.push.graph_renew_before_minutes, 15);
        Ok(())
    }

    #[test]
    fn a_short_lifetime_shrinks_the_default_renewal_margin()
    -> Result<(), Box<dyn std::error::Error>> {
        let text = format!("{GOOD}\n[push]\ngraph_lifetime_minutes = 60\n");
        let c = Config::parse(&text, Path::new(".")).map_err(|p| p.join("; "))?;
        assert_eq!(c.push.graph_renew_before_minutes, 30);
        Ok(())
    }

    #[test]
    fn graph_problems_are_listed_with_the_others_each_naming_its_key() {
        // No backend at all.
        let none = graph_only("").replace("[environment.graph]\n", "");
        let problems = Config::parse(&none, Path::new("."))
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("environment[0] (prod): configure [environment.exchange]"),
            "{problems:?}"
        );

        let bad = graph_only(
            "tenant = \"\"\nclient_secret = \"hunter2\"\nbase_url = \"ftp://graph\"\n\
             login_url = \"not a url\"",
        )
        .replace("company = \"100\"", "company = \"\"")
        .replace(
            "[sync]",
            "[push]\ngraph_lifetime_minutes = 20000\ngraph_renew_before_minutes = 0\n[sync]",
        );
        let problems = Config::parse(&bad, Path::new("."))
            .err()
            .unwrap_or_default();
        let all = problems.join("\n");
        for needle in [
            "push.graph_lifetime_minutes: 20000 is not between 1 and 10080",
            "push.graph_renew_before_minutes: must be at least 1",
            "environment[0] (prod).company: must not be empty",
            "environment[0] (prod).graph.tenant: must not be empty",
            "environment[0] (prod).graph.client_secret: secrets are not allowed",
            "environment[0] (prod).graph.base_url: scheme ftp is not http or https",
            "environment[0] (prod).graph.login_url: relative URL without a base",
        ] {
            assert!(all.contains(needle), "{needle:?} not in\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");
        assert!(!all.contains("hunter2"), "the secret must not be echoed");

        let missing = graph_only("tenant = \"t\"");
        let problems = Config::parse(&missing, Path::new("."))
            .err()
            .unwrap_or_default();
        assert_eq!(
            problems,
            [
                "environment[0] (prod).graph.client_secret: missing; set client_secret_file (a path) \
              or client_secret_env (a variable name)"
            ]
        );
        let margin = format!(
            "{GOOD}\n[push]\ngraph_lifetime_minutes = 60\ngraph_renew_before_minutes = 60\n"
        );
        let problems = Config::parse(&margin, Path::new("."))
            .err()
            .unwrap_or_default();
        assert_eq!(
            problems,
            [
                "push.graph_renew_before_minutes: 60 is not less than the subscription lifetime (60 minutes)"
            ]
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
