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
    /// Push notifications (docs/ews-simulator.md, "Push notifications").
    pub push: PushConfig,
}

/// Push-notification settings. The durations are the time scale: tests shrink them so a
/// StatusFrequency "minute" or the 30 s first retry pass in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Length of one StatusFrequency minute, ms (Exchange: 60 000).
    pub minute_ms: u64,
    /// Gap before the first retry of an unanswered notification, ms (Exchange: 30 000); each
    /// further gap doubles until it would exceed StatusFrequency, then the server stops calling.
    pub retry_base_ms: u64,
    /// How long one SendNotification POST may take before it counts as unanswered, ms.
    pub request_timeout_ms: u64,
    /// Events per SendNotification; more pending → `MoreEvents` true and another POST.
    pub max_events_per_notification: usize,
    /// Events kept per mailbox for resubscription; an older watermark → ErrorInvalidWatermark.
    pub watermark_retention_events: usize,
    /// Age (simulator clock) after which events leave the table; Exchange keeps ~30 days.
    pub watermark_retention_secs: u64,
    /// Also deliver folder events (CreatedEvent/DeletedEvent of subfolders, ModifiedEvent of a
    /// folder whose content changed), as Exchange does; off by default so tests see one event
    /// per item change.
    pub folder_events: bool,
    /// Push subscriptions alive per mailbox (Exchange's EWSMaxSubscriptions, default 20);
    /// one more → ErrorExceededSubscriptionCount.
    pub max_subscriptions_per_mailbox: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            minute_ms: 60_000,
            retry_base_ms: 30_000,
            request_timeout_ms: 30_000,
            max_events_per_notification: 50,
            watermark_retention_events: 10_000,
            watermark_retention_secs: 30 * 24 * 3600,
            folder_events: false,
            max_subscriptions_per_mailbox: 20,
        }
    }
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
            push: PushConfig::default(),
        }
    }
}
