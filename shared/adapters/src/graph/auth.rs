//! The app-only access token (exchange.md §3.1): OAuth 2.0 client credentials against
//! `{login_url}/{tenant}/oauth2/v2.0/token` with scope `https://graph.microsoft.com/.default`.
//!
//! One token per `GraphMailbox`, shared by all its mailboxes and renewed shortly before it
//! expires. Concurrent callers wait on one fetch (a tokio mutex held across it), so a burst of
//! requests costs one token request. Hand-written rather than the `oauth2` crate: the grant is a
//! single form POST, and that crate would bring a second reqwest major version.

use std::time::Duration;

use lnsync_core::error::MailboxError;
use lnsync_core::ids::MailboxAddress;
use lnsync_core::secret::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::retry_after;

/// The scope of an app-only Graph token.
pub(crate) const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Renew this long before expiry (at most half the lifetime, for short-lived tokens).
const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// Lifetime assumed when the answer has no `expires_in`: short, to err on renewing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Cached {
    token: Secret,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenFault {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    http: reqwest::Client,
    url: String,
    tenant: String,
    client_id: String,
    secret: Secret,
    cache: Mutex<Option<Cached>>,
}

impl TokenCache {
    pub(crate) fn new(
        http: reqwest::Client,
        login_url: &url::Url,
        tenant: &str,
        client_id: &str,
        secret: Secret,
    ) -> Self {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            login_url.as_str().trim_end_matches('/'),
            super::client::encode_segment(tenant)
        );
        Self {
            http,
            url,
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            cache: Mutex::new(None),
        }
    }

    /// A valid token: the cached one, or a new one when it is missing or about to expire.
    /// `mailbox` only names the mailbox in errors.
    pub(crate) async fn token(&self, mailbox: &MailboxAddress) -> Result<Secret, MailboxError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        let (token, lifetime) = self.fetch(mailbox).await?;
        let margin = RENEW_MARGIN.min(lifetime / 2);
        *cache = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(token)
    }

    /// Forgets `used` after Graph rejected it. A token another task already replaced stays, so
    /// a burst of 401s costs one new token.
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == used) {
            *cache = None;
        }
    }

    async fn fetch(&self, mailbox: &MailboxAddress) -> Result<(Secret, Duration), MailboxError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", GRAPH_SCOPE),
        ];
        tracing::debug!(url = %self.url, client = %self.client_id, "fetching a Graph token");
        let unreachable = |e: reqwest::Error| MailboxError::Unreachable {
            url: self.url.clone(),
            source: Box::new(e),
        };
        let response = self
            .http
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let body = response.bytes().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            let answer: TokenAnswer =
                serde_json::from_slice(&body).map_err(|e| MailboxError::Protocol {
                    message: format!("the answer of {} is not a token", self.url),
                    source: Some(Box::new(e)),
                })?;
            let lifetime = answer
                .expires_in
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .map_or(DEFAULT_LIFETIME, Duration::from_secs);
            return Ok((Secret::new(answer.access_token), lifetime));
        }
        let fault: TokenFault = serde_json::from_slice(&body).unwrap_or_default();
        Err(self.token_error(mailbox, status, hint, fault))
    }

    /// Names the problem an administrator has to fix (R41: never the secret itself).
    fn token_error(
        &self,
        mailbox: &MailboxAddress,
        status: u16,
        hint: Option<Duration>,
        fault: TokenFault,
    ) -> MailboxError {
        let (tenant, app) = (&self.tenant, &self.client_id);
        let description = fault.error_description.lines().next().unwrap_or_default();
        let configuration = |message: String| MailboxError::Configuration {
            mailbox: mailbox.clone(),
            code: if fault.error.is_empty() {
                format!("HTTP {status}")
            } else {
                fault.error.clone()
            },
            message,
        };
        // AADSTS codes say which setting is wrong more precisely than the OAuth error name.
        if description.contains("AADSTS7000215") || description.contains("AADSTS7000222") {
            return configuration(format!(
                "Entra ID rejected the client secret of app {app} in tenant {tenant} (invalid or \
                 expired); store the secret's value, not its id: {description}"
            ));
        }
        if description.contains("AADSTS700016") {
            return configuration(format!(
                "app {app} is not registered in tenant {tenant}; check the client id: \
                 {description}"
            ));
        }
        if description.contains("AADSTS90002") || description.contains("AADSTS900023") {
            return configuration(format!(
                "tenant {tenant} does not exist; check the Azure tenant setting: {description}"
            ));
        }
        match (status, fault.error.as_str()) {
            (429 | 503 | 504, _) => MailboxError::Throttled {
                mailbox: mailbox.clone(),
                retry_after: hint.unwrap_or(Duration::from_secs(5)),
            },
            (_, "invalid_client") => configuration(format!(
                "Entra ID rejected the credentials of app {app} in tenant {tenant}: {description}"
            )),
            (400..=499, _) => configuration(format!(
                "Entra ID refused a token to app {app} in tenant {tenant}: {description}"
            )),
            _ => MailboxError::Server {
                code: if fault.error.is_empty() {
                    format!("HTTP {status}")
                } else {
                    fault.error.clone()
                },
                message: format!("token request to {} failed: {description}", self.url),
                transient: status >= 500,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> TokenCache {
        let login = url::Url::parse("https://login.example/").expect("valid URL");
        TokenCache::new(
            reqwest::Client::new(),
            &login,
            "contoso",
            "lnsync",
            Secret::new("s3cr3t"),
        )
    }

    fn fault(error: &str, description: &str) -> TokenFault {
        TokenFault {
            error: error.into(),
            error_description: description.into(),
        }
    }

    #[test]
    fn the_token_url_names_the_tenant() {
        assert_eq!(
            cache().url,
            "https://login.example/contoso/oauth2/v2.0/token"
        );
    }

    #[test]
    fn token_errors_name_the_setting_to_fix_and_never_the_secret() {
        let c = cache();
        let mb = MailboxAddress::new("alice@contoso.com");
        let bad_secret = c.token_error(
            &mb,
            401,
            None,
            fault(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            ),
        );
        let text = bad_secret.to_string();
        assert!(matches!(bad_secret, MailboxError::Configuration { .. }));
        assert!(text.contains("client secret"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let no_app = c.token_error(
            &mb,
            400,
            None,
            fault("unauthorized_client", "AADSTS700016: x"),
        );
        assert!(no_app.to_string().contains("client id"), "{no_app}");
        let no_tenant = c.token_error(&mb, 400, None, fault("invalid_request", "AADSTS90002: x"));
        assert!(no_tenant.to_string().contains("tenant"), "{no_tenant}");
        assert!(matches!(
            c.token_error(&mb, 429, Some(Duration::from_secs(7)), TokenFault::default()),
            MailboxError::Throttled { retry_after, .. } if retry_after == Duration::from_secs(7)
        ));
        assert!(matches!(
            c.token_error(&mb, 502, None, TokenFault::default()),
            MailboxError::Server {
                transient: true,
                ..
            }
        ));
    }
}
