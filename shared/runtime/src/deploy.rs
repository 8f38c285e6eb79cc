//! The serverless deployment's configuration: environment variables ([`crate::vars`]) plus
//! secrets fetched once per Lambda container (R3: secrets are Secrets Manager ARNs, never values).
//!
//! [`Deployment::from_lookup`] is pure (tests pass a map); it checks every variable and reports
//! every problem at once, like `Config::load`. [`Deployment::resolve`] then fetches each distinct
//! secret once, again collecting every failure, and yields the same [`EnvironmentConfig`]s the
//! single-process runner uses, so both share the composition root.

use crate::config::{
    EnvironmentConfig, ExchangeAuth, ExchangeConfig, GraphSettings, LnConfig, PushSettings, Secret,
    SecretSource,
};
use crate::vars;
use async_trait::async_trait;
use lnsync_core::ids::EnvironmentId;
use lnsync_core::plan::DeletionGate;
use lnsync_core::service::SyncOptions;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The longest EWS back-off a Lambda sleeps through by default: longer hints should cost a
/// visibility change, not billed idle time (R37).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Everything wrong with the deployment's configuration, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DeployError {
    pub problems: Vec<String>,
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the function's configuration is invalid:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// How an environment's EWS service account authenticates, by secret ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPlan {
    Basic {
        username: String,
        password_arn: String,
    },
    Bearer {
        token_arn: String,
    },
}

/// How an environment reaches Microsoft Graph, by secret ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPlan {
    /// Overrides of LN's `azureTenant` and `clientId`.
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_arn: String,
    pub base_url: url::Url,
    pub login_url: url::Url,
}

/// One environment as the variables describe it, before its secrets are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentPlan {
    pub id: EnvironmentId,
    pub company: String,
    pub ionapi_arn: String,
    pub service_path: Option<String>,
    pub exchange_url: Option<url::Url>,
    /// EWS; `None` when only Graph is configured.
    pub auth: Option<AuthPlan>,
    /// Graph; `None` when only EWS is configured.
    pub graph: Option<GraphPlan>,
    /// Longest throttling wait slept in-process, for either backend.
    pub max_backoff: Duration,
}

/// The validated variables of a function.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub queue_url: String,
    pub dlq_url: Option<String>,
    pub sync: SyncOptions,
    pub http_timeout: Duration,
    /// The push endpoint's URL and subscription tunables (worker and scheduler).
    pub push: PushSettings,
    pub environments: Vec<EnvironmentPlan>,
}

/// Fetches a secret's string by ARN (AWS Secrets Manager in production, a map in tests).
#[async_trait]
pub trait SecretFetcher: Send + Sync {
    async fn fetch(&self, arn: &str) -> Result<Secret, String>;
}

/// `true`/`1` or `false`/`0` (unset: false).
fn parse_flag(problems: &mut Vec<String>, name: &str, value: Option<String>) -> bool {
    match value.as_deref().map(str::trim) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            problems.push(format!("{name}: {other:?} is not true or false"));
            false
        }
    }
}

fn parse_number<T: std::str::FromStr>(
    problems: &mut Vec<String>,
    name: &str,
    value: Option<String>,
) -> Option<T> {
    let value = value?;
    match value.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            problems.push(format!("{name}: {value:?} is not a valid number"));
            None
        }
    }
}

/// The environment ids of [`vars::ENVIRONMENTS`] (comma-separated), each checked: letters,
/// digits, `-` and `_` only (they become parts of variable names), none twice.
pub fn environment_ids(problems: &mut Vec<String>, list: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(format!(
                "{}: environment id {id:?}: use letters, digits, '-' or '_' only",
                vars::ENVIRONMENTS
            ));
        } else if ids.iter().any(|seen| seen == id) {
            problems.push(format!("{}: {id} is listed twice", vars::ENVIRONMENTS));
        } else {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// Where an environment's settings came from: CloudFormation can only write the JSON form (it
/// computes values, not variable names), people and older deployments use the variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SettingsForm {
    Variables,
    Json,
}

/// The per-environment settings of the served environments, keyed by the suffixes of
/// [`vars::env::ALL`], read from either form (see [`crate::vars`]): the environment's object in
/// [`vars::ENVIRONMENT_SETTINGS`] when it has one, else its `LNSYNC_ENV_<ID>_*` variables.
///
/// Every function reads its per-environment values through this, so both forms mean the same
/// everywhere; [`EnvironmentSettings::name`] names a value as the administrator wrote it, for
/// error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentSettings {
    values: BTreeMap<String, BTreeMap<&'static str, String>>,
    forms: BTreeMap<String, SettingsForm>,
}

impl EnvironmentSettings {
    /// Reads the settings of `ids` through `get`, adding to `problems` (all at once, like the
    /// rest of the configuration): invalid JSON, an entry that is not an object, an unknown key,
    /// a value that is not a string or number, an environment in the JSON that `ids` does not
    /// list, and an environment given in both forms. Empty values count as unset.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        ids: &[String],
        problems: &mut Vec<String>,
    ) -> Self {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let json =
            get(vars::ENVIRONMENT_SETTINGS).map(|text| parse_settings_json(problems, &text, ids));
        let unreadable = matches!(json, Some(None));
        let json = json.flatten().unwrap_or_default();
        let mut settings = Self::default();
        for id in ids {
            // Both forms for one environment would leave two sources of truth that can
            // silently disagree; which one wins is nobody's guess, so refuse it.
            let variables: BTreeMap<&'static str, String> = vars::env::ALL
                .iter()
                .filter_map(|suffix| get(&vars::env_var(id, suffix)).map(|v| (*suffix, v)))
                .collect();
            let (form, values) = match json.get(id) {
                Some(values) => {
                    if !variables.is_empty() {
                        let names: Vec<String> = variables
                            .keys()
                            .map(|suffix| vars::env_var(id, suffix))
                            .collect();
                        problems.push(format!(
                            "{}: environment {id} is also configured by {}; use one form",
                            vars::ENVIRONMENT_SETTINGS,
                            names.join(", ")
                        ));
                    }
                    (SettingsForm::Json, values.clone())
                }
                // The JSON may well have described this environment: reporting each of its
                // values as missing would bury the one real problem (already reported).
                None if unreadable && variables.is_empty() => continue,
                None => (SettingsForm::Variables, variables),
            };
            settings.forms.insert(id.clone(), form);
            settings.values.insert(id.clone(), values);
        }
        settings
    }

    /// Whether `id`'s settings could be read at all (`false` when it has no variables and the
    /// JSON is not a readable object: that problem is reported already).
    pub fn contains(&self, id: &str) -> bool {
        self.values.contains_key(id)
    }

    /// The value of `suffix` (one of [`vars::env::ALL`]) for environment `id`, if set.
    pub fn get(&self, id: &str, suffix: &str) -> Option<&str> {
        self.values.get(id)?.get(suffix).map(String::as_str)
    }

    /// How the administrator addresses the value: `LNSYNC_ENV_PROD_COMPANY`, or
    /// `LNSYNC_ENVIRONMENT_SETTINGS[prod].COMPANY` for the JSON form.
    pub fn name(&self, id: &str, suffix: &str) -> String {
        match self.forms.get(id) {
            Some(SettingsForm::Json) => format!("{}[{id}].{suffix}", vars::ENVIRONMENT_SETTINGS),
            _ => vars::env_var(id, suffix),
        }
    }
}

/// Parses [`vars::ENVIRONMENT_SETTINGS`], reporting every problem; `None` when it is not a JSON
/// object at all. Entries with problems are still returned with their good values, so that the
/// missing-value checks that follow report only what is really missing.
fn parse_settings_json(
    problems: &mut Vec<String>,
    text: &str,
    ids: &[String],
) -> Option<BTreeMap<String, BTreeMap<&'static str, String>>> {
    let name = vars::ENVIRONMENT_SETTINGS;
    let object = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => {
            problems.push(format!(
                "{name}: must be a JSON object keyed by environment id"
            ));
            return None;
        }
        Err(e) => {
            // serde_json's message gives line and column, never the text (which holds no
            // secret, only ARNs, but stays out of logs all the same).
            problems.push(format!("{name}: not valid JSON: {e}"));
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for (id, entry) in object {
        if !ids.contains(&id) {
            problems.push(format!(
                "{name}: environment {id:?} is not listed in {}",
                vars::ENVIRONMENTS
            ));
            continue;
        }
        let serde_json::Value::Object(entry) = entry else {
            problems.push(format!("{name}[{id}]: must be a JSON object"));
            continue;
        };
        let mut values = BTreeMap::new();
        for (key, value) in entry {
            let Some(suffix) = vars::env::ALL.iter().find(|s| **s == key) else {
                problems.push(format!(
                    "{name}[{id}].{key}: unknown key (known: {})",
                    vars::env::ALL.join(", ")
                ));
                continue;
            };
            let value = match value {
                serde_json::Value::String(s) => s,
                // `MAX_BACKOFF_SECONDS: 30` written by hand is meant as "30".
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    problems.push(format!("{name}[{id}].{key}: must be a string"));
                    continue;
                }
            };
            if !value.trim().is_empty() {
                values.insert(*suffix, value);
            }
        }
        out.insert(id, values);
    }
    Some(out)
}

impl Deployment {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, DeployError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`; empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DeployError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let mut required = |name: &str, what: &str| {
            let v = get(name);
            if v.is_none() {
                problems.push(format!("{name}: missing ({what})"));
            }
            v.unwrap_or_default()
        };
        let table = required(vars::TABLE, "the DynamoDB state table's name");
        let queue_url = required(vars::QUEUE_URL, "the SQS FIFO job queue's URL");
        let ids = required(
            vars::ENVIRONMENTS,
            "comma-separated ids of the environments served",
        );
        let dlq_url = get(vars::DLQ_URL);

        let defaults = SyncOptions::default();
        let concurrency: Option<usize> = parse_number(
            &mut problems,
            vars::USER_CONCURRENCY,
            get(vars::USER_CONCURRENCY),
        );
        if concurrency == Some(0) {
            problems.push(format!("{}: must be at least 1", vars::USER_CONCURRENCY));
        }
        let fraction: Option<f64> = parse_number(
            &mut problems,
            vars::MAX_DELETION_FRACTION,
            get(vars::MAX_DELETION_FRACTION),
        );
        if let Some(f) = fraction
            && !(0.0..=1.0).contains(&f)
        {
            problems.push(format!(
                "{}: {f} is not between 0 and 1",
                vars::MAX_DELETION_FRACTION
            ));
        }
        let repair = parse_flag(&mut problems, vars::REPAIR, get(vars::REPAIR));
        let private = parse_flag(
            &mut problems,
            vars::SYNC_PRIVATE_EVENTS,
            get(vars::SYNC_PRIVATE_EVENTS),
        );
        let horizon = parse_number(
            &mut problems,
            vars::CALENDAR_HORIZON_DAYS,
            get(vars::CALENDAR_HORIZON_DAYS),
        );
        let policy = get(vars::CONFLICT_POLICY);
        let zone = get(vars::TIME_ZONE);
        // The same checks as `[sync]` in lnsync.toml; their messages name the TOML key, which
        // is swapped for the variable it came from here.
        let mut calendar_problems = Vec::new();
        let calendar = crate::config::calendar_options(
            &mut calendar_problems,
            horizon,
            policy.as_deref().map(str::trim),
            zone.as_deref().map(str::trim),
            Some(private),
        );
        let keys = [
            ("sync.calendar_horizon_days", vars::CALENDAR_HORIZON_DAYS),
            ("sync.conflict_policy", vars::CONFLICT_POLICY),
            ("sync.time_zone", vars::TIME_ZONE),
        ];
        problems.extend(calendar_problems.into_iter().map(|p| {
            keys.iter()
                .find_map(|(key, var)| p.strip_prefix(key).map(|rest| format!("{var}{rest}")))
                .unwrap_or(p)
        }));
        let sync = SyncOptions {
            deletion_gate: DeletionGate {
                max_items: parse_number(
                    &mut problems,
                    vars::MAX_DELETIONS,
                    get(vars::MAX_DELETIONS),
                )
                .unwrap_or(defaults.deletion_gate.max_items),
                max_fraction: fraction.unwrap_or(defaults.deletion_gate.max_fraction),
            },
            lease_ttl: parse_number(&mut problems, vars::LEASE_SECONDS, get(vars::LEASE_SECONDS))
                .map_or(defaults.lease_ttl, Duration::from_secs),
            user_concurrency: concurrency.unwrap_or(defaults.user_concurrency).max(1),
            repair,
            calendar,
        };
        let http_timeout = parse_number(
            &mut problems,
            vars::HTTP_TIMEOUT_SECONDS,
            get(vars::HTTP_TIMEOUT_SECONDS),
        )
        .map_or(Duration::from_secs(60), Duration::from_secs);

        let frequency = parse_number(
            &mut problems,
            vars::PUSH_STATUS_FREQUENCY_MINUTES,
            get(vars::PUSH_STATUS_FREQUENCY_MINUTES),
        );
        let lifetime = parse_number(
            &mut problems,
            vars::PUSH_GRAPH_LIFETIME_MINUTES,
            get(vars::PUSH_GRAPH_LIFETIME_MINUTES),
        );
        let renew_before = parse_number(
            &mut problems,
            vars::PUSH_GRAPH_RENEW_BEFORE_MINUTES,
            get(vars::PUSH_GRAPH_RENEW_BEFORE_MINUTES),
        );
        let lifetime = crate::config::graph_lifetime(
            &mut problems,
            vars::PUSH_GRAPH_LIFETIME_MINUTES,
            lifetime,
        );
        let push = PushSettings {
            public_url: get(vars::PUSH_URL)
                .and_then(|u| crate::config::push_url(&mut problems, vars::PUSH_URL, &u)),
            status_frequency_minutes: crate::config::status_frequency(
                &mut problems,
                vars::PUSH_STATUS_FREQUENCY_MINUTES,
                frequency,
            ),
            graph_lifetime_minutes: lifetime,
            graph_renew_before_minutes: crate::config::graph_renew_before(
                &mut problems,
                vars::PUSH_GRAPH_RENEW_BEFORE_MINUTES,
                renew_before,
                lifetime,
            ),
            ..PushSettings::default()
        };

        let ids = environment_ids(&mut problems, &ids);
        let settings = EnvironmentSettings::from_lookup(&get, &ids, &mut problems);
        let environments = ids
            .iter()
            .filter_map(|id| Self::environment(&mut problems, id, &settings))
            .collect();
        if problems.is_empty() {
            Ok(Self {
                table,
                queue_url,
                dlq_url,
                sync,
                http_timeout,
                push,
                environments,
            })
        } else {
            Err(DeployError { problems })
        }
    }

    fn environment(
        problems: &mut Vec<String>,
        id: &str,
        settings: &EnvironmentSettings,
    ) -> Option<EnvironmentPlan> {
        if !settings.contains(id) {
            return None;
        }
        let before = problems.len();
        let var = |suffix: &str| settings.name(id, suffix);
        let get = |suffix: &str| settings.get(id, suffix).map(str::to_owned);
        let required = |problems: &mut Vec<String>, suffix: &str| {
            let v = get(suffix);
            if v.is_none() {
                problems.push(format!("{}: missing (environment {id})", var(suffix)));
            }
            v.unwrap_or_default()
        };
        let company = required(problems, vars::env::COMPANY);
        let ionapi_arn = required(problems, vars::env::IONAPI_SECRET_ARN);
        let given = |suffixes: &[&str]| suffixes.iter().any(|s| get(s).is_some());
        let graph_given = given(&vars::env::GRAPH);
        // Without any Graph value the environment is an EWS one, as before Graph existed, so a
        // missing EWS value is reported as missing.
        let ews_given = given(&vars::env::EWS) || !graph_given;
        let auth = if ews_given {
            Some(
                match get(vars::env::EWS_AUTH).as_deref().unwrap_or("basic") {
                    "basic" => AuthPlan::Basic {
                        username: required(problems, vars::env::EWS_USERNAME),
                        password_arn: required(problems, vars::env::EWS_PASSWORD_SECRET_ARN),
                    },
                    "bearer" => AuthPlan::Bearer {
                        token_arn: required(problems, vars::env::EWS_TOKEN_SECRET_ARN),
                    },
                    other => {
                        problems.push(format!(
                            "{}: {other:?} is not \"basic\" or \"bearer\"",
                            var(vars::env::EWS_AUTH)
                        ));
                        AuthPlan::Bearer {
                            token_arn: String::new(),
                        }
                    }
                },
            )
        } else {
            None
        };
        let graph = if graph_given {
            let client_secret_arn = required(problems, vars::env::GRAPH_CLIENT_SECRET_ARN);
            crate::config::graph_urls(
                problems,
                &var(vars::env::GRAPH_BASE_URL),
                get(vars::env::GRAPH_BASE_URL).as_deref(),
                &var(vars::env::GRAPH_LOGIN_URL),
                get(vars::env::GRAPH_LOGIN_URL).as_deref(),
            )
            .map(|(base_url, login_url)| GraphPlan {
                tenant: get(vars::env::GRAPH_TENANT).map(|t| t.trim().to_owned()),
                client_id: get(vars::env::GRAPH_CLIENT_ID).map(|c| c.trim().to_owned()),
                client_secret_arn,
                base_url,
                login_url,
            })
        } else {
            None
        };
        let exchange_url = get(vars::env::EXCHANGE_URL)
            .and_then(|u| crate::config::http_url(problems, &var(vars::env::EXCHANGE_URL), &u));
        let max_backoff = parse_number(
            problems,
            &var(vars::env::MAX_BACKOFF_SECONDS),
            get(vars::env::MAX_BACKOFF_SECONDS),
        )
        .map_or(DEFAULT_MAX_BACKOFF, Duration::from_secs);
        (problems.len() == before).then(|| EnvironmentPlan {
            id: EnvironmentId::new(id),
            company,
            ionapi_arn,
            service_path: get(vars::env::LN_SERVICE_PATH),
            exchange_url,
            auth,
            graph,
            max_backoff,
        })
    }

    /// Fetches every distinct secret once and builds the environments' configurations. Every
    /// secret that can't be fetched is reported (by ARN and purpose, never by value).
    pub async fn resolve(
        &self,
        secrets: &dyn SecretFetcher,
    ) -> Result<Vec<EnvironmentConfig>, DeployError> {
        let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for env in &self.environments {
            wanted
                .entry(&env.ionapi_arn)
                .or_default()
                .push(format!("LN credentials of environment {}", env.id));
            let ews = env.auth.as_ref().map(|auth| match auth {
                AuthPlan::Basic { password_arn, .. } => (password_arn, "EWS password"),
                AuthPlan::Bearer { token_arn } => (token_arn, "EWS token"),
            });
            let graph = env
                .graph
                .as_ref()
                .map(|g| (&g.client_secret_arn, "Graph client secret"));
            for (arn, what) in ews.into_iter().chain(graph) {
                wanted
                    .entry(arn)
                    .or_default()
                    .push(format!("{what} of environment {}", env.id));
            }
        }
        let fetched = futures::future::join_all(
            wanted
                .keys()
                .map(|arn| async move { (*arn, secrets.fetch(arn).await) }),
        )
        .await;
        let mut values = BTreeMap::new();
        let mut problems = Vec::new();
        for (arn, result) in fetched {
            match result {
                Ok(secret) => {
                    values.insert(arn.to_owned(), secret);
                }
                Err(e) => problems.push(format!(
                    "secret {arn} ({}): {e}",
                    wanted.get(arn).map(|w| w.join(", ")).unwrap_or_default()
                )),
            }
        }
        if !problems.is_empty() {
            return Err(DeployError { problems });
        }
        let value = |arn: &str| {
            SecretSource::Value(values.get(arn).cloned().unwrap_or_else(|| Secret::new("")))
        };
        Ok(self
            .environments
            .iter()
            .map(|env| EnvironmentConfig {
                id: env.id.clone(),
                company: env.company.clone(),
                ln: LnConfig {
                    ionapi: value(&env.ionapi_arn),
                    service_path: env.service_path.clone(),
                    page_size: None,
                    // Only the push function reads it, through its own configuration.
                    webhook_secret: None,
                },
                exchange: env.auth.as_ref().map(|auth| ExchangeConfig {
                    url: env.exchange_url.clone(),
                    auth: match auth {
                        AuthPlan::Basic {
                            username,
                            password_arn,
                        } => ExchangeAuth::Basic {
                            username: username.clone(),
                            password: value(password_arn),
                        },
                        AuthPlan::Bearer { token_arn } => ExchangeAuth::Bearer {
                            token: value(token_arn),
                        },
                    },
                    max_backoff: env.max_backoff,
                }),
                graph: env.graph.as_ref().map(|g| GraphSettings {
                    tenant: g.tenant.clone(),
                    client_id: g.client_id.clone(),
                    client_secret: value(&g.client_secret_arn),
                    base_url: g.base_url.clone(),
                    login_url: g.login_url.clone(),
                    max_backoff: Some(env.max_backoff),
                }),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnsync_core::plan::calendar::ConflictPolicy;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn good() -> HashMap<String, String> {
        vars(&[
            ("LNSYNC_TABLE", "lnsync"),
            ("LNSYNC_QUEUE_URL", "http://q/jobs.fifo"),
            ("LNSYNC_ENVIRONMENTS", "prod, test-eu"),
            ("LNSYNC_ENV_PROD_COMPANY", "100"),
            ("LNSYNC_ENV_PROD_IONAPI_SECRET_ARN", "arn:ionapi"),
            ("LNSYNC_ENV_PROD_EWS_USERNAME", "svc"),
            ("LNSYNC_ENV_PROD_EWS_PASSWORD_SECRET_ARN", "arn:pw"),
            ("LNSYNC_ENV_TEST_EU_COMPANY", "200"),
            ("LNSYNC_ENV_TEST_EU_IONAPI_SECRET_ARN", "arn:ionapi"),
            ("LNSYNC_ENV_TEST_EU_EWS_AUTH", "bearer"),
            ("LNSYNC_ENV_TEST_EU_EWS_TOKEN_SECRET_ARN", "arn:token"),
        ])
    }

    struct MapSecrets(HashMap<String, String>);

    #[async_trait]
    impl SecretFetcher for MapSecrets {
        async fn fetch(&self, arn: &str) -> Result<Secret, String> {
            self.0
                .get(arn)
                .map(|v| Secret::new(v.clone()))
                .ok_or_else(|| "ResourceNotFoundException".to_owned())
        }
    }

    #[tokio::test]
    async fn good_variables_resolve_with_each_secret_fetched_once() {
        let v = good();
        let d = Deployment::from_lookup(|k| v.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.environments.len(), 2);
        assert_eq!(d.environments[1].id.as_str(), "test-eu");
        let secrets = MapSecrets(vars(&[
            ("arn:ionapi", "{}"),
            ("arn:pw", "hunter2"),
            ("arn:token", "t"),
        ]));
        let envs = d.resolve(&secrets).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            envs[0].exchange.as_ref().map(|e| &e.auth),
            Some(ExchangeAuth::Basic { username, password }) if username == "svc"
                && password.read().map(|s| s.expose().to_owned()).as_deref() == Ok("hunter2")
        ));
        assert!(
            !format!("{envs:?}").contains("hunter2"),
            "secrets stay redacted"
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut v = good();
        v.remove("LNSYNC_TABLE");
        v.remove("LNSYNC_ENV_PROD_COMPANY");
        v.insert("LNSYNC_ENV_TEST_EU_EWS_AUTH".into(), "ntlm".into());
        v.insert("LNSYNC_LEASE_SECONDS".into(), "soon".into());
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.problems.len(), 4, "{e}");
        let text = e.to_string();
        for name in [
            "LNSYNC_TABLE",
            "LNSYNC_ENV_PROD_COMPANY",
            "LNSYNC_ENV_TEST_EU_EWS_AUTH",
            "LNSYNC_LEASE_SECONDS",
        ] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn calendar_variables_reach_the_options_and_bad_ones_name_their_variable() {
        let mut v = good();
        v.insert("LNSYNC_CALENDAR_HORIZON_DAYS".into(), "90".into());
        v.insert("LNSYNC_CONFLICT_POLICY".into(), "ln-wins".into());
        v.insert("LNSYNC_TIME_ZONE".into(), "Europe/Amsterdam".into());
        v.insert("LNSYNC_SYNC_PRIVATE_EVENTS".into(), "true".into());
        let d = Deployment::from_lookup(|k| v.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
        let c = &d.sync.calendar;
        assert_eq!(c.horizon_days, 90);
        assert_eq!(c.conflict_policy, ConflictPolicy::LnWins);
        assert_eq!(c.time_zone, "Europe/Amsterdam");
        assert!(c.sync_private_events);

        v.insert("LNSYNC_TIME_ZONE".into(), "Mars/Olympus".into());
        v.insert("LNSYNC_CONFLICT_POLICY".into(), "loudest".into());
        v.insert("LNSYNC_SYNC_PRIVATE_EVENTS".into(), "maybe".into());
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.problems.len(), 3, "{e}");
        for p in &e.problems {
            assert!(p.starts_with("LNSYNC_"), "names its variable: {p}");
        }
    }

    /// `good()` with environment `prod` moved into `LNSYNC_ENVIRONMENT_SETTINGS`, as the
    /// template writes it (every key present, unused ones empty).
    fn good_with_prod_as_json() -> HashMap<String, String> {
        let mut v = good();
        v.retain(|k, _| !k.starts_with("LNSYNC_ENV_PROD_"));
        v.insert(
            "LNSYNC_ENVIRONMENT_SETTINGS".into(),
            serde_json::json!({
                "prod": {
                    "COMPANY": "100",
                    "IONAPI_SECRET_ARN": "arn:ionapi",
                    "EWS_AUTH": "basic",
                    "EWS_USERNAME": "svc",
                    "EWS_PASSWORD_SECRET_ARN": "arn:pw",
                    "EWS_TOKEN_SECRET_ARN": "",
                    "EXCHANGE_URL": "",
                    "LN_SERVICE_PATH": "",
                    "MAX_BACKOFF_SECONDS": 10,
                    "LN_WEBHOOK_SECRET_ARN": "arn:hook"
                }
            })
            .to_string(),
        );
        v
    }

    #[test]
    fn json_settings_configure_an_environment_exactly_as_its_variables_do() {
        let by_variables = good();
        let by_json = good_with_prod_as_json();
        let a = Deployment::from_lookup(|k| by_variables.get(k).cloned())
            .unwrap_or_else(|e| panic!("{e}"));
        // `test-eu` keeps its variables: the form is chosen per environment.
        let b =
            Deployment::from_lookup(|k| by_json.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.environments, b.environments);

        let ids = vec!["prod".to_owned(), "test-eu".to_owned()];
        let mut problems = Vec::new();
        let s = EnvironmentSettings::from_lookup(&|k| by_json.get(k).cloned(), &ids, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            s.get("prod", vars::env::LN_WEBHOOK_SECRET_ARN),
            Some("arn:hook")
        );
        assert_eq!(
            s.get("prod", vars::env::EXCHANGE_URL),
            None,
            "empty is unset"
        );
        assert_eq!(s.get("test-eu", vars::env::EWS_AUTH), Some("bearer"));
        assert_eq!(
            s.name("prod", "COMPANY"),
            "LNSYNC_ENVIRONMENT_SETTINGS[prod].COMPANY"
        );
        assert_eq!(s.name("test-eu", "COMPANY"), "LNSYNC_ENV_TEST_EU_COMPANY");
    }

    #[test]
    fn json_settings_problems_are_all_reported_at_once() {
        let mut v = good_with_prod_as_json();
        v.insert(
            "LNSYNC_ENVIRONMENT_SETTINGS".into(),
            serde_json::json!({
                // COMPANY missing; one misspelt key; one value of the wrong type.
                "prod": {
                    "IONAPI_SECRET_ARN": "arn:ionapi",
                    "EWS_USERNAME": "svc",
                    "EWS_PASSWORD_SECRET_ARN": "arn:pw",
                    "IONAPI_SECRET": "arn:typo",
                    "MAX_BACKOFF_SECONDS": true
                },
                // Also configured by its LNSYNC_ENV_TEST_EU_* variables.
                "test-eu": {"COMPANY": "200", "IONAPI_SECRET_ARN": "arn:ionapi",
                            "EWS_AUTH": "bearer", "EWS_TOKEN_SECRET_ARN": "arn:token"},
                // Not served.
                "staging": {"COMPANY": "300"},
                "broken": "not an object"
            })
            .to_string(),
        );
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        let expected = [
            "LNSYNC_ENVIRONMENT_SETTINGS[prod].IONAPI_SECRET: unknown key",
            "LNSYNC_ENVIRONMENT_SETTINGS[prod].MAX_BACKOFF_SECONDS: must be a string",
            "LNSYNC_ENVIRONMENT_SETTINGS: environment \"staging\" is not listed",
            "LNSYNC_ENVIRONMENT_SETTINGS: environment \"broken\" is not listed",
            "LNSYNC_ENVIRONMENT_SETTINGS: environment test-eu is also configured by \
             LNSYNC_ENV_TEST_EU_COMPANY, LNSYNC_ENV_TEST_EU_EWS_AUTH, \
             LNSYNC_ENV_TEST_EU_EWS_TOKEN_SECRET_ARN, LNSYNC_ENV_TEST_EU_IONAPI_SECRET_ARN",
            "LNSYNC_ENVIRONMENT_SETTINGS[prod].COMPANY: missing (environment prod)",
        ];
        assert_eq!(e.problems.len(), expected.len(), "{e}");
        for want in expected {
            assert!(
                e.problems.iter().any(|p| p.starts_with(want)),
                "{want:?} not in {e}"
            );
        }
    }

    #[test]
    fn unreadable_json_settings_are_one_problem_not_one_per_value() {
        let mut v = good_with_prod_as_json();
        v.insert("LNSYNC_ENVIRONMENT_SETTINGS".into(), "{\"prod\": {".into());
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].starts_with("LNSYNC_ENVIRONMENT_SETTINGS: not valid JSON"));

        v.insert("LNSYNC_ENVIRONMENT_SETTINGS".into(), "[]".into());
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].contains("must be a JSON object"), "{e}");
    }

    /// `good()` with `prod` on Graph alone, as variables.
    fn good_with_prod_on_graph() -> HashMap<String, String> {
        let mut v = good();
        v.retain(|k, _| !k.starts_with("LNSYNC_ENV_PROD_EWS_"));
        v.insert(
            "LNSYNC_ENV_PROD_GRAPH_CLIENT_SECRET_ARN".into(),
            "arn:graph".into(),
        );
        v.insert("LNSYNC_ENV_PROD_GRAPH_TENANT".into(), "corp.example".into());
        v
    }

    #[tokio::test]
    async fn graph_variables_configure_graph_and_make_ews_optional()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut v = good_with_prod_on_graph();
        v.insert("LNSYNC_PUSH_GRAPH_LIFETIME_MINUTES".into(), "4230".into());
        v.insert(
            "LNSYNC_PUSH_GRAPH_RENEW_BEFORE_MINUTES".into(),
            "600".into(),
        );
        let d = Deployment::from_lookup(|k| v.get(k).cloned())?;
        assert_eq!(d.push.graph_lifetime_minutes, 4230);
        assert_eq!(d.push.graph_renew_before_minutes, 600);
        let prod = &d.environments[0];
        assert_eq!(prod.auth, None);
        assert_eq!(
            prod.graph,
            Some(GraphPlan {
                tenant: Some("corp.example".into()),
                client_id: None,
                client_secret_arn: "arn:graph".into(),
                base_url: url::Url::parse("https://graph.microsoft.com/v1.0")?,
                login_url: url::Url::parse("https://login.microsoftonline.com")?,
            })
        );
        assert!(d.environments[1].graph.is_none(), "test-eu stays on EWS");
        let secrets = MapSecrets(vars(&[
            ("arn:ionapi", "{}"),
            ("arn:graph", "app-secret"),
            ("arn:token", "t"),
        ]));
        let envs = d.resolve(&secrets).await?;
        assert!(envs[0].exchange.is_none());
        let g = envs[0].graph.as_ref().ok_or("no graph")?;
        assert_eq!(g.client_secret.read()?.expose(), "app-secret");
        assert_eq!(g.tenant.as_deref(), Some("corp.example"));
        assert_eq!(g.max_backoff, Some(DEFAULT_MAX_BACKOFF));
        assert!(!format!("{envs:?}").contains("app-secret"));

        let e = d
            .resolve(&MapSecrets(vars(&[
                ("arn:ionapi", "{}"),
                ("arn:token", "t"),
            ])))
            .await
            .err()
            .ok_or("resolved without the Graph secret")?;
        assert!(
            e.to_string()
                .contains("arn:graph (Graph client secret of environment prod)"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn a_template_default_ews_auth_alone_does_not_ask_for_ews()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut v = good();
        v.retain(|k, _| !k.starts_with("LNSYNC_ENV_PROD_"));
        v.insert(
            "LNSYNC_ENVIRONMENT_SETTINGS".into(),
            serde_json::json!({
                "prod": {
                    "COMPANY": "100",
                    "IONAPI_SECRET_ARN": "arn:ionapi",
                    "EWS_AUTH": "basic",
                    "EWS_USERNAME": "",
                    "EWS_PASSWORD_SECRET_ARN": "",
                    "GRAPH_TENANT": "",
                    "GRAPH_CLIENT_ID": "app-1",
                    "GRAPH_CLIENT_SECRET_ARN": "arn:graph",
                    "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0",
                    "GRAPH_LOGIN_URL": ""
                }
            })
            .to_string(),
        );
        let d = Deployment::from_lookup(|k| v.get(k).cloned())?;
        let prod = &d.environments[0];
        assert_eq!(prod.auth, None);
        let g = prod.graph.as_ref().ok_or("no graph")?;
        assert_eq!(g.client_id.as_deref(), Some("app-1"));
        assert_eq!(g.tenant, None, "empty is unset: LN's azureTenant");
        assert_eq!(g.base_url.as_str(), "http://127.0.0.1:9/v1.0");
        Ok(())
    }

    #[test]
    fn graph_problems_are_listed_at_once_each_naming_its_variable() {
        let mut v = good_with_prod_on_graph();
        v.remove("LNSYNC_ENV_PROD_GRAPH_CLIENT_SECRET_ARN");
        v.insert(
            "LNSYNC_ENV_PROD_GRAPH_BASE_URL".into(),
            "ftp://graph".into(),
        );
        v.insert("LNSYNC_PUSH_GRAPH_LIFETIME_MINUTES".into(), "10081".into());
        v.insert(
            "LNSYNC_PUSH_GRAPH_RENEW_BEFORE_MINUTES".into(),
            "soon".into(),
        );
        // Graph and EWS values: both are configured, so EWS must be complete too.
        v.insert(
            "LNSYNC_ENV_TEST_EU_GRAPH_CLIENT_SECRET_ARN".into(),
            "arn:graph".into(),
        );
        v.insert("LNSYNC_ENV_TEST_EU_EWS_AUTH".into(), "basic".into());
        let e = Deployment::from_lookup(|k| v.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        let expected = [
            "LNSYNC_PUSH_GRAPH_LIFETIME_MINUTES: 10081 is not between 1 and 10080",
            "LNSYNC_PUSH_GRAPH_RENEW_BEFORE_MINUTES: \"soon\" is not a valid number",
            "LNSYNC_ENV_PROD_GRAPH_CLIENT_SECRET_ARN: missing (environment prod)",
            "LNSYNC_ENV_PROD_GRAPH_BASE_URL: scheme ftp is not http or https",
            "LNSYNC_ENV_TEST_EU_EWS_USERNAME: missing (environment test-eu)",
            "LNSYNC_ENV_TEST_EU_EWS_PASSWORD_SECRET_ARN: missing (environment test-eu)",
        ];
        assert_eq!(e.problems.len(), expected.len(), "{e}");
        for want in expected {
            assert!(
                e.problems.iter().any(|p| p.starts_with(want)),
                "{want:?} not in {e}"
            );
        }
    }

    #[tokio::test]
    async fn missing_secrets_are_named_by_arn_and_purpose() {
        let v = good();
        let d = Deployment::from_lookup(|k| v.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
        let e = d
            .resolve(&MapSecrets(vars(&[("arn:ionapi", "{}")])))
            .await
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(
            e.to_string()
                .contains("arn:pw (EWS password of environment prod)"),
            "{e}"
        );
    }
}
