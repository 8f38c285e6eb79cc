//! Microsoft Graph (Exchange Online) behind the `Mailbox` port: `GraphMailbox`.
//!
//! Module map: filled in as the adapter grows (client, auth, throttle gate, models, contacts,
//! calendar, subscriptions).

use lnsync_core::secret::Secret;
use std::time::Duration;

/// How to reach Graph for one environment.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Graph's service root, `https://graph.microsoft.com/v1.0`.
    pub base_url: url::Url,
    /// The Entra ID authority host, `https://login.microsoftonline.com`; the token endpoint is
    /// `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub login_url: url::Url,
    /// Directory (tenant) id or domain, from LN's `azureTenant` setting.
    pub tenant: String,
    /// Application (client) id, from LN's `clientId` setting.
    pub client_id: String,
    /// The client secret of the app registration (from the secret store).
    pub client_secret: Secret,
    /// The contacts folder lnsync owns in every mailbox (R9).
    pub folder_name: String,
    /// Requests in flight per mailbox (Outlook allows 4 per app and mailbox).
    pub max_in_flight: usize,
    /// Retries of one request after 429/503/504 before giving up with `Throttled`.
    pub max_retries: u32,
    /// Wait when a throttling answer carries no `Retry-After`.
    pub default_back_off: Duration,
    /// Longest single wait; a longer hint is returned as `Throttled` for the caller to
    /// reschedule.
    pub max_back_off: Duration,
    /// `Prefer: odata.maxpagesize` of listings and delta rounds.
    pub page_size: u32,
}

impl GraphConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://graph.microsoft.com/v1.0";
    pub const DEFAULT_LOGIN_URL: &'static str = "https://login.microsoftonline.com";

    /// Defaults for Exchange Online with the given app registration.
    pub fn new(tenant: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            base_url: url::Url::parse(Self::DEFAULT_BASE_URL).expect("valid constant URL"),
            login_url: url::Url::parse(Self::DEFAULT_LOGIN_URL).expect("valid constant URL"),
            tenant: tenant.into(),
            client_id: client_id.into(),
            client_secret: secret,
            folder_name: "CRM Contacts".into(),
            max_in_flight: 4,
            max_retries: 5,
            default_back_off: Duration::from_secs(10),
            max_back_off: Duration::from_secs(120),
            page_size: 100,
        }
    }
}
