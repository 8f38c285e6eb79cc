//! The LN adapter: an OData v4 client for LN's `lnsync` service behind the ION API gateway,
//! implementing the core's `LnGateway` port (contract: `docs/ln-api.md`).
//!
//! - [`ionapi`]: the `.ionapi` credentials file, secrets in redacted newtypes.
//! - `token` (private): password-grant tokens, cached until shortly before expiry, dropped on 401.
//! - [`client`]: [`LnClient`] and its configuration: company header, paging via
//!   `@odata.nextLink` with `Prefer: odata.maxpagesize`, `If-Match` on writes, `Retry-After`
//!   waits, and the mapping of HTTP failures to the core's classified `LnError`.
//! - `wire` (private): the JSON shapes and their mapping to the core model.
//! - [`webhook`]: authenticating (HMAC signature, timestamp window) and parsing the LN push
//!   webhook's notifications.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lnsync_adapters::ln::{IonApi, LnClient, LnClientConfig};
//! use lnsync_core::ports::LnGateway;
//! let ionapi = IonApi::from_file(std::path::Path::new("lnsync.ionapi"))?;
//! let ln = LnClient::new(LnClientConfig::new(ionapi, "100"))?;
//! let users = ln.sync_users().await?;
//! # let _ = users; Ok(()) }
//! ```

pub mod client;
pub mod ionapi;
mod token;
pub mod webhook;
mod wire;

#[cfg(test)]
mod sim_tests;

pub use client::{
    ACTIVITY_ETAG_HEADER, COMPANY_HEADER, DEFAULT_SERVICE_PATH, LnClient, LnClientConfig,
    ThrottlePolicy,
};
pub use ionapi::{IonApi, IonApiError, Secret};

impl From<IonApiError> for lnsync_core::error::LnError {
    /// A broken `.ionapi` file is a configuration problem an administrator must fix.
    fn from(error: IonApiError) -> Self {
        lnsync_core::error::LnError::Configuration(error.to_string())
    }
}
