//! The composition root: builds each environment's adapters from configuration. Only this
//! module knows which concrete adapter serves which port.

use crate::config::{Config, EnvironmentConfig, ExchangeAuth, ExchangeConfig, GraphSettings};
use crate::runner::{Connector, error_chain};
use crate::vars;
use lnsync_adapters::ews::{EwsAuth, EwsConfig, EwsMailbox};
use lnsync_adapters::graph::{GraphConfig, GraphMailbox};
use lnsync_adapters::ln::{IonApi, LnClient, LnClientConfig, ThrottlePolicy};
use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::error::StoreError;
use lnsync_core::ids::EnvironmentId;
use lnsync_core::model::{ExchangeBackend, Settings};
use lnsync_core::ports::{LnGateway, Mailbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Builds real clients: the LN OData client and the EWS or Graph mailbox (LN's
/// `exchangeBackend`, R2) over reqwest. Clients are kept
/// per environment for the life of the process, so LN tokens and per-mailbox back-off state
/// carry over from one run to the next.
pub struct LiveConnector {
    pub http_timeout: Duration,
    /// The longest LN throttling hint waited out in-process; a longer one is returned as
    /// `Throttled` so the caller can reschedule (Lambda: a visibility change, not a billed sleep).
    pub ln_max_wait: Duration,
    ln: Mutex<HashMap<EnvironmentId, Arc<dyn LnGateway>>>,
    mailboxes: Mutex<HashMap<(EnvironmentId, String), Arc<dyn Mailbox>>>,
}

impl Default for LiveConnector {
    fn default() -> Self {
        Self {
            http_timeout: Duration::from_secs(100),
            ln_max_wait: ThrottlePolicy::default().max_wait,
            ln: Mutex::default(),
            mailboxes: Mutex::default(),
        }
    }
}

impl Connector for LiveConnector {
    fn ln(&self, env: &EnvironmentConfig) -> Result<Arc<dyn LnGateway>, String> {
        let mut cache = self.ln.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = cache.get(&env.id) {
            return Ok(client.clone());
        }
        let client = self.build_ln(env)?;
        cache.insert(env.id.clone(), client.clone());
        Ok(client)
    }

    fn mailbox(
        &self,
        env: &EnvironmentConfig,
        settings: &Settings,
    ) -> Result<Arc<dyn Mailbox>, String> {
        let target = MailboxTarget::of(env, settings)?;
        // Keyed by backend and address: a backend, Exchange URL, tenant or app switched in LN
        // takes effect at the next run (R3), without a restart.
        let key = (env.id.clone(), target.key());
        let mut cache = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mailbox) = cache.get(&key) {
            return Ok(mailbox.clone());
        }
        let mailbox = match target {
            MailboxTarget::Ews { config, url } => self.build_ews(config, url)?,
            MailboxTarget::Graph {
                config,
                tenant,
                client_id,
            } => self.build_graph(config, tenant, client_id)?,
        };
        cache.insert(key, mailbox.clone());
        Ok(mailbox)
    }
}

/// Which Exchange an environment's mailboxes are reached at, resolved from the configuration
/// and LN's settings (configured values win over LN's).
enum MailboxTarget<'a> {
    Ews {
        config: &'a ExchangeConfig,
        url: url::Url,
    },
    Graph {
        config: &'a GraphSettings,
        tenant: String,
        client_id: String,
    },
}

impl<'a> MailboxTarget<'a> {
    fn of(env: &'a EnvironmentConfig, settings: &Settings) -> Result<Self, String> {
        match settings.exchange_backend {
            ExchangeBackend::Ews => {
                let config = env.exchange.as_ref().ok_or_else(|| {
                    format!(
                        "LN's exchangeBackend is EWS, but environment {} has no EWS configuration \
                         ([environment.exchange] in lnsync.toml, {}_* variables serverless)",
                        env.id,
                        vars::env_var(env.id.as_str(), "EWS")
                    )
                })?;
                let url = match (&config.url, settings.exchange_url.as_deref()) {
                    (Some(url), _) => url.clone(),
                    (None, Some(from_ln)) => url::Url::parse(from_ln).map_err(|e| {
                        format!("LN setting exchangeUrl {from_ln:?} is not a URL: {e}")
                    })?,
                    (None, None) => {
                        return Err("no Exchange URL: set exchange.url in the configuration or \
                                    exchangeUrl in LN"
                            .into());
                    }
                };
                Ok(MailboxTarget::Ews { config, url })
            }
            ExchangeBackend::Graph => {
                let config = env.graph.as_ref().ok_or_else(|| {
                    format!(
                        "LN's exchangeBackend is Graph, but environment {} has no Graph client \
                         secret ([environment.graph] client_secret_file or client_secret_env in \
                         lnsync.toml, {} serverless)",
                        env.id,
                        vars::env_var(env.id.as_str(), vars::env::GRAPH_CLIENT_SECRET_ARN)
                    )
                })?;
                let pick = |configured: &Option<String>,
                            from_ln: &Option<String>,
                            ln_name: &str,
                            key: &str| {
                    configured
                        .clone()
                        .or_else(|| from_ln.clone())
                        .filter(|v| !v.trim().is_empty())
                        .ok_or_else(|| {
                            format!(
                                "no Graph {key}: set LN's {ln_name} setting, or graph.{key} in the \
                                 configuration ({} serverless)",
                                vars::env_var(
                                    env.id.as_str(),
                                    &format!("GRAPH_{}", key.to_ascii_uppercase())
                                )
                            )
                        })
                };
                let tenant = pick(
                    &config.tenant,
                    &settings.azure_tenant,
                    "azureTenant",
                    "tenant",
                )?;
                let client_id = pick(
                    &config.client_id,
                    &settings.client_id,
                    "clientId",
                    "client_id",
                )?;
                Ok(MailboxTarget::Graph {
                    config,
                    tenant,
                    client_id,
                })
            }
        }
    }

    /// What the cached client depends on besides the environment.
    fn key(&self) -> String {
        match self {
            MailboxTarget::Ews { url, .. } => format!("ews {url}"),
            MailboxTarget::Graph {
                config,
                tenant,
                client_id,
            } => format!("graph {} {tenant} {client_id}", config.base_url),
        }
    }
}

impl LiveConnector {
    fn build_ln(&self, env: &EnvironmentConfig) -> Result<Arc<dyn LnGateway>, String> {
        let text = env
            .ln
            .ionapi
            .read()
            .map_err(|e| format!("LN credentials (.ionapi): {e}"))?;
        let ionapi = IonApi::from_json(text.expose())
            .map_err(|e| format!("LN credentials (.ionapi): {e}"))?;
        let mut config = LnClientConfig::new(ionapi, env.company.clone());
        config.service_path.clone_from(&env.ln.service_path);
        // Larger pages than the client's default: an initial load of a few thousand contacts
        // then takes a handful of requests.
        config.page_size = env.ln.page_size.unwrap_or(500);
        config.timeout = self.http_timeout;
        config.throttle.max_wait = self.ln_max_wait;
        let client = LnClient::new(config).map_err(|e| format!("LN client: {e}"))?;
        Ok(Arc::new(client))
    }

    fn build_ews(
        &self,
        exchange: &ExchangeConfig,
        url: url::Url,
    ) -> Result<Arc<dyn Mailbox>, String> {
        let auth = match &exchange.auth {
            ExchangeAuth::Basic { username, password } => EwsAuth::Basic {
                user: username.clone(),
                password: password
                    .read()
                    .map_err(|e| format!("Exchange password: {e}"))?,
            },
            ExchangeAuth::Bearer { token } => {
                EwsAuth::Bearer(token.read().map_err(|e| format!("Exchange token: {e}"))?)
            }
        };
        let mut config = EwsConfig::new(url, auth);
        config.max_back_off = exchange.max_backoff;
        let mailbox = EwsMailbox::with_reqwest(config, self.http_timeout)
            .map_err(|e| format!("EWS client: {e}"))?;
        Ok(Arc::new(mailbox))
    }

    fn build_graph(
        &self,
        graph: &GraphSettings,
        tenant: String,
        client_id: String,
    ) -> Result<Arc<dyn Mailbox>, String> {
        let secret = graph
            .client_secret
            .read()
            .map_err(|e| format!("Graph client secret: {e}"))?;
        let mut config = GraphConfig::new(tenant, client_id, secret);
        config.base_url = graph.base_url.clone();
        config.login_url = graph.login_url.clone();
        if let Some(max) = graph.max_backoff {
            config.max_back_off = max;
        }
        let mailbox = GraphMailbox::new(config, self.http_timeout)
            .map_err(|e| format!("Graph client: {}", error_chain(&e)))?;
        Ok(Arc::new(mailbox))
    }
}

/// Opens the embedded store named by the configuration, creating its folder.
pub fn open_store(config: &Config) -> Result<SqliteStateStore, StoreError> {
    if let Some(parent) = config.store_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable {
            source: Box::new(e),
        })?;
    }
    SqliteStateStore::open(&config.store_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LnConfig, SecretSource};
    use lnsync_core::model::{IntervalUnit, PullInterval};
    use lnsync_core::secret::Secret;

    fn settings(backend: ExchangeBackend) -> Settings {
        let hourly = PullInterval {
            value: 1,
            unit: IntervalUnit::Hours,
        };
        Settings {
            exchange_backend: backend,
            exchange_url: Some("https://mail.corp.example/EWS/Exchange.asmx".into()),
            azure_tenant: Some("corp.example".into()),
            client_id: Some("app-from-ln".into()),
            contact_pull_interval: hourly,
            calendar_pull_interval: hourly,
            push_enabled: false,
            synchronize_contacts: true,
            synchronize_activities: true,
        }
    }

    fn env(exchange: bool, graph: bool) -> EnvironmentConfig {
        EnvironmentConfig {
            id: EnvironmentId::new("prod"),
            company: "100".into(),
            ln: LnConfig {
                ionapi: SecretSource::Value(Secret::new("{}")),
                service_path: None,
                page_size: None,
                webhook_secret: None,
            },
            exchange: exchange.then(|| ExchangeConfig {
                url: None,
                auth: ExchangeAuth::Bearer {
                    token: SecretSource::Value(Secret::new("t")),
                },
                max_backoff: Duration::from_secs(10),
            }),
            graph: graph
                .then(|| {
                    url::Url::parse(GraphConfig::DEFAULT_BASE_URL)
                        .ok()
                        .zip(url::Url::parse(GraphConfig::DEFAULT_LOGIN_URL).ok())
                })
                .flatten()
                .map(|(base_url, login_url)| GraphSettings {
                    tenant: None,
                    client_id: Some("app-override".into()),
                    client_secret: SecretSource::Value(Secret::new("s")),
                    base_url,
                    login_url,
                    max_backoff: None,
                }),
        }
    }

    fn error(env: &EnvironmentConfig, settings: &Settings) -> String {
        LiveConnector::default()
            .mailbox(env, settings)
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn the_backend_ln_selects_must_be_configured_and_the_message_names_the_setting() {
        let e = error(&env(false, true), &settings(ExchangeBackend::Ews));
        assert!(
            e.contains("exchangeBackend is EWS") && e.contains("[environment.exchange]"),
            "{e}"
        );
        let e = error(&env(true, false), &settings(ExchangeBackend::Graph));
        assert!(
            e.contains("exchangeBackend is Graph")
                && e.contains("client_secret_file")
                && e.contains("LNSYNC_ENV_PROD_GRAPH_CLIENT_SECRET_ARN"),
            "{e}"
        );
        let mut no_tenant = settings(ExchangeBackend::Graph);
        no_tenant.azure_tenant = None;
        let e = error(&env(false, true), &no_tenant);
        assert!(
            e.contains("azureTenant")
                && e.contains("graph.tenant")
                && e.contains("LNSYNC_ENV_PROD_GRAPH_TENANT"),
            "{e}"
        );
    }

    #[test]
    fn configured_values_win_over_lns_and_the_backend_is_part_of_the_cache_key()
    -> Result<(), String> {
        let env = env(true, true);
        let target = MailboxTarget::of(&env, &settings(ExchangeBackend::Graph))?;
        assert_eq!(
            target.key(),
            "graph https://graph.microsoft.com/v1.0 corp.example app-override"
        );
        let connector = LiveConnector::default();
        let graph = connector.mailbox(&env, &settings(ExchangeBackend::Graph))?;
        let ews = connector.mailbox(&env, &settings(ExchangeBackend::Ews))?;
        assert!(
            !Arc::ptr_eq(&graph, &ews),
            "switching in LN switches clients"
        );
        let again = connector.mailbox(&env, &settings(ExchangeBackend::Graph))?;
        assert!(Arc::ptr_eq(&graph, &again), "kept across runs");
        let mut other_tenant = settings(ExchangeBackend::Graph);
        other_tenant.azure_tenant = Some("other.example".into());
        let other = connector.mailbox(&env, &other_tenant)?;
        assert!(
            !Arc::ptr_eq(&graph, &other),
            "a tenant changed in LN takes effect"
        );
        Ok(())
    }
}
