//! Microsoft Graph (Exchange Online) behind the `Mailbox` port: [`GraphMailbox`].
//!
//! Module map:
//! - [`mailbox`]: [`GraphMailbox`], the `Mailbox` implementation, and its constructor.
//! - `client`: the HTTP side: bearer token, the `Prefer` headers every call carries, the
//!   per-mailbox gate, 429/503/504 retries with `Retry-After`, `$batch` with inner retries,
//!   paging along `@odata.nextLink`.
//! - `auth`: the OAuth 2.0 client-credentials token, cached and renewed before it expires.
//! - `gate`: per mailbox, at most `max_in_flight` requests in flight and a "not before" instant
//!   set by throttling answers (R37).
//! - `classify`: what a Graph error answer means (item error, mailbox error, retry).
//! - `model`: typed serde models of the Graph resources used, checked against the CSDL.
//! - `cursor`: the delta cursors handed to the core (deltaLink plus what it was made for).
//! - `contacts`: the "CRM Contacts" folder, contact writes, contact delta (R9–R14).
//! - `calendar`: calendarView, calendarView/delta, event reads and writes, and the mapping to
//!   the core's calendar model (R15–R30).
//! - `subscriptions`: change-notification subscriptions on a user's events (R31–R33).
//! - tests: `csdl_tests` (models against the CSDL), `sim_tests` (contacts, costs, throttling,
//!   errors) and `sim_calendar_tests` (calendar, subscriptions, the EWS → Graph switch) against
//!   the simulator's Graph front-end.

mod auth;
mod calendar;
mod classify;
mod client;
mod contacts;
mod cursor;
mod gate;
pub mod mailbox;
mod model;
mod subscriptions;

#[cfg(test)]
mod csdl_tests;
#[cfg(test)]
mod sim_calendar_tests;
#[cfg(test)]
mod sim_tests;

pub use mailbox::GraphMailbox;

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

/// Why a [`GraphMailbox`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot build the HTTP client for Microsoft Graph")]
    Http(#[source] reqwest::Error),
    #[error("invalid Microsoft Graph setting: {0}")]
    Config(String),
}
