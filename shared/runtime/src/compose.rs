//! The composition root: builds each environment's adapters from configuration. Only this
//! module knows which concrete adapter serves which port.

use crate::config::{Config, EnvironmentConfig, ExchangeAuth};
use crate::runner::Connector;
use lnsync_adapters::ews::{EwsAuth, EwsConfig, EwsMailbox};
use lnsync_adapters::ln::{IonApi, LnClient, LnClientConfig, ThrottlePolicy};
use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::error::StoreError;
use lnsync_core::ids::EnvironmentId;
use lnsync_core::model::Settings;
use lnsync_core::ports::{LnGateway, Mailbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Builds real clients: the LN OData client and the EWS mailbox over reqwest. Clients are kept
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
        // Keyed by URL too: an Exchange URL changed in LN takes effect at the next run (R3).
        let key = (
            env.id.clone(),
            settings.exchange_url.clone().unwrap_or_default(),
        );
        let mut cache = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mailbox) = cache.get(&key) {
            return Ok(mailbox.clone());
        }
        let mailbox = self.build_mailbox(env, settings)?;
        cache.insert(key, mailbox.clone());
        Ok(mailbox)
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

    fn build_mailbox(
        &self,
        env: &EnvironmentConfig,
        settings: &Settings,
    ) -> Result<Arc<dyn Mailbox>, String> {
        let url = match (&env.exchange.url, settings.exchange_url.as_deref()) {
            (Some(url), _) => url.clone(),
            (None, Some(from_ln)) => url::Url::parse(from_ln)
                .map_err(|e| format!("LN setting exchangeUrl {from_ln:?} is not a URL: {e}"))?,
            (None, None) => {
                return Err(
                    "no Exchange URL: set exchange.url in the configuration or exchangeUrl in LN"
                        .into(),
                );
            }
        };
        let auth = match &env.exchange.auth {
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
        config.max_back_off = env.exchange.max_backoff;
        let mailbox = EwsMailbox::with_reqwest(config, self.http_timeout)
            .map_err(|e| format!("EWS client: {e}"))?;
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
