//! Simulator configuration: who may log in, whom they may impersonate, and how strict to be.

use serde::{Deserialize, Serialize};

/// A service account accepted with HTTP Basic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub user: String,
    pub password: String,
    /// Mailbox used when a request carries no ExchangeImpersonation header
    /// (defaults to `user` when that looks like an SMTP address).
    #[serde(default)]
    pub mailbox: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Basic-auth accounts. Default: `svc` / `secret`.
    pub credentials: Vec<Credential>,
    /// Accepted `Authorization: Bearer` tokens.
    pub bearer_tokens: Vec<String>,
    /// When set, only these mailboxes may be impersonated (others → ErrorImpersonateUserDenied),
    /// modelling a `CustomRecipientWriteScope` on the ApplicationImpersonation role.
    pub allowed_impersonation: Option<Vec<String>>,
    /// Answer a missing or mismatched `X-AnchorMailbox` on impersonated requests with
    /// HTTP 500 ErrorInternalServerTransientError (the intermittent failure real Exchange gives).
    pub strict_anchor: bool,
    /// Reject requests for a mailbox still inside its announced back-off with ErrorServerBusy.
    pub enforce_backoff: bool,
    /// SyncStates kept per folder; older ones are "too old" → ErrorInvalidSyncStateData.
    pub max_sync_states_per_folder: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            credentials: vec![Credential {
                user: "svc".into(),
                password: "secret".into(),
                mailbox: None,
            }],
            bearer_tokens: Vec::new(),
            allowed_impersonation: None,
            strict_anchor: true,
            enforce_backoff: true,
            max_sync_states_per_folder: 64,
        }
    }
}
