//! The ION API authorization server part: the OAuth 2.0 password grant, issued bearer tokens with
//! a lifetime, revocation, and the `.ionapi` file that points a client at this simulator.
//!
//! Token lifetimes follow the real clock (not [`crate::SimClock`]): tests move simulated time by
//! days to cross calendar windows and should not see every token expire as a side effect. Use
//! [`TokenStore::revoke_all`] or a short lifetime to exercise refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The credentials the token endpoint accepts, and the tenant in the service path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ti`: tenant, the first path segment of the service root.
    pub tenant: String,
    /// `ci`
    pub client_id: String,
    /// `cs`
    pub client_secret: String,
    /// `saak`: service account access key (sent as `username`).
    pub saak: String,
    /// `sask`: service account secret key (sent as `password`).
    pub sask: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            tenant: "LNSIM_TST".into(),
            client_id: "LNSIM_TST~lnsync-client".into(),
            client_secret: "lnsync-client-secret".into(),
            saak: "LNSIM_TST#lnsync-service-account".into(),
            sask: "lnsync-service-secret".into(),
        }
    }
}

/// Contents of an ION API `.ionapi` file. Unused keys of real files (`oa`, `or`, `ev`, …) are
/// included so clients are tested against the full shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IonApiFile {
    pub ti: String,
    pub cn: String,
    pub dt: String,
    pub ci: String,
    pub cs: String,
    pub iu: String,
    pub pu: String,
    pub oa: String,
    pub ot: String,
    pub or: String,
    pub ev: String,
    pub v: String,
    pub saak: String,
    pub sask: String,
}

impl IonApiFile {
    /// The file for a simulator reachable at `base_url` (no trailing slash).
    pub fn for_server(credentials: &Credentials, base_url: &str) -> Self {
        Self {
            ti: credentials.tenant.clone(),
            cn: "ln-sim".into(),
            dt: "12".into(),
            ci: credentials.client_id.clone(),
            cs: credentials.client_secret.clone(),
            iu: base_url.to_string(),
            pu: format!("{base_url}/as/"),
            oa: "authorization.oauth2".into(),
            ot: "token.oauth2".into(),
            or: "revoke_token.oauth2".into(),
            ev: "U1".into(),
            v: "1.0".into(),
            saak: credentials.saak.clone(),
            sask: credentials.sask.clone(),
        }
    }

    /// Pretty JSON, as ION API Gateway downloads it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Form fields of a token request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// Why a token request was refused, as an OAuth 2.0 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant")]
    InvalidGrant,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant => "invalid_grant",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            TokenError::UnsupportedGrantType => "only grant_type=password is supported",
            TokenError::InvalidClient => "client authentication failed",
            TokenError::InvalidGrant => "the service account credentials are invalid",
        }
    }
}

/// A token as returned to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

#[derive(Debug, Default)]
struct Tokens {
    live: HashMap<String, Instant>,
    issued: u64,
}

/// Issued tokens and their expiry.
#[derive(Debug, Clone)]
pub struct TokenStore {
    credentials: Credentials,
    lifetime: Duration,
    tokens: Arc<Mutex<Tokens>>,
}

impl TokenStore {
    pub fn new(credentials: Credentials, lifetime: Duration) -> Self {
        Self {
            credentials,
            lifetime,
            tokens: Arc::default(),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    fn lock(&self) -> MutexGuard<'_, Tokens> {
        // The map stays consistent across a panic (single inserts/removes), so recover.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handle a password-grant request. `basic` carries client credentials sent with HTTP Basic
    /// instead of in the form, which OAuth 2.0 also allows.
    pub fn issue(
        &self,
        request: &TokenRequest,
        basic: Option<(String, String)>,
    ) -> Result<IssuedToken, TokenError> {
        if request.grant_type.as_deref() != Some("password") {
            return Err(TokenError::UnsupportedGrantType);
        }
        let (client_id, client_secret) = match basic {
            Some(pair) => pair,
            None => (
                request.client_id.clone().unwrap_or_default(),
                request.client_secret.clone().unwrap_or_default(),
            ),
        };
        if client_id != self.credentials.client_id
            || client_secret != self.credentials.client_secret
        {
            return Err(TokenError::InvalidClient);
        }
        if request.username.as_deref() != Some(self.credentials.saak.as_str())
            || request.password.as_deref() != Some(self.credentials.sask.as_str())
        {
            return Err(TokenError::InvalidGrant);
        }
        let token = format!("lnsim-{}", uuid::Uuid::new_v4().simple());
        let mut tokens = self.lock();
        let now = Instant::now();
        tokens.live.retain(|_, expiry| *expiry > now);
        tokens.live.insert(token.clone(), now + self.lifetime);
        tokens.issued += 1;
        Ok(IssuedToken {
            access_token: token,
            token_type: "Bearer",
            // Never advertise 0: a client would treat the token as expired on arrival.
            expires_in: self.lifetime.as_secs().max(1),
        })
    }

    /// Whether `token` is currently valid.
    pub fn validate(&self, token: &str) -> bool {
        self.lock()
            .live
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    /// Invalidate every issued token (the next data call gets 401).
    pub fn revoke_all(&self) {
        self.lock().live.clear();
    }

    /// How many tokens were issued since start.
    pub fn issued_count(&self) -> u64 {
        self.lock().issued
    }
}
