//! OAuth 2.0 password-grant tokens for the ION API: fetched lazily, cached until shortly before
//! they expire, and dropped when LN answers 401 so the next call fetches a fresh one.

use std::time::Duration;

use lnsync_core::error::LnError;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::retry_after;
use super::ionapi::{IonApi, Secret};

/// Refresh this long before expiry at most (a fifth of the lifetime for short-lived tokens), so
/// a token never expires between being handed out and being checked by LN.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// Lifetime assumed when the server omits `expires_in`: short, to err on the side of refreshing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Hands out a valid bearer token.
#[derive(Debug)]
pub(crate) struct TokenProvider {
    http: reqwest::Client,
    ionapi: IonApi,
    // A tokio mutex held across the fetch: concurrent callers wait for one fetch instead of
    // each asking the authorization server.
    cache: Mutex<Option<Cached>>,
}

impl TokenProvider {
    pub(crate) fn new(http: reqwest::Client, ionapi: IonApi) -> Self {
        Self {
            http,
            ionapi,
            cache: Mutex::new(None),
        }
    }

    /// The cached token, or a new one when there is none or it is about to expire.
    pub(crate) async fn get(&self) -> Result<Secret, LnError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let margin = MAX_MARGIN.min(lifetime / 5);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(token)
    }

    /// Forget `used` after LN rejected it. A token another task already replaced is left alone,
    /// so a burst of 401s leads to one refresh, not one per request.
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == used) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<(Secret, Duration), LnError> {
        let ion = &self.ionapi;
        let url = ion.token_url.clone();
        let form = [
            ("grant_type", "password"),
            ("username", ion.service_account_key.expose()),
            ("password", ion.service_account_secret.expose()),
            ("client_id", ion.client_id.as_str()),
            ("client_secret", ion.client_secret.expose()),
        ];
        tracing::debug!(url = %url, "fetching ION API token");
        let response = self
            .http
            .post(url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| LnError::Unreachable {
                url: url.to_string(),
                source: Box::new(e),
            })?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| LnError::Unreachable {
            url: url.to_string(),
            source: Box::new(e),
        })?;
        if status.is_success() {
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| LnError::Protocol {
                    message: format!("token response from {url} is not a token"),
                    source: Some(Box::new(e)),
                })?;
            let lifetime = parsed
                .expires_in
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .map_or(DEFAULT_LIFETIME, Duration::from_secs);
            return Ok((Secret::new(parsed.access_token), lifetime));
        }
        let error: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
        match status.as_u16() {
            400 | 401 | 403 => Err(LnError::Unauthorized {
                message: format!(
                    "token request to {url} refused ({status}): {} {}",
                    error.error, error.error_description
                )
                .trim_end()
                .to_owned(),
            }),
            429 | 503 => Err(LnError::Throttled {
                retry_after: hint.unwrap_or(Duration::from_secs(1)),
            }),
            code => Err(LnError::Server {
                status: code,
                code: error.error,
                message: format!("token request to {url} failed: {}", error.error_description),
            }),
        }
    }
}
