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
    /// Microsoft Graph change notifications (docs/ews-simulator.md, "Graph change
    /// notifications").
    pub graph_push: GraphPushConfig,
    /// The Microsoft Graph front-end (docs/ews-simulator.md, "Microsoft Graph front-end").
    pub graph: GraphConfig,
}

/// An app registration the Graph token endpoint accepts (client credentials grant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphClient {
    /// Tenant as it appears in the token URL (`/{tenant}/oauth2/v2.0/token`): a name or GUID.
    pub tenant: String,
    pub client_id: String,
    pub secret: String,
}

/// Microsoft Graph front-end settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphConfig {
    /// Accepted app registrations. Default: tenant `contoso`, client `lnsync`, secret
    /// `graph-secret`.
    pub clients: Vec<GraphClient>,
    /// Lifetime of issued access tokens, seconds of simulator clock (Entra: 3599).
    pub token_ttl_secs: u64,
    /// Page size of list, calendarView and delta answers without `Prefer: odata.maxpagesize`.
    pub max_page_size: usize,
    /// Requests in flight per mailbox before `429 ApplicationThrottled` (Outlook: 4).
    pub max_concurrent_per_mailbox: usize,
    /// Requests per `$batch` (Graph: 20).
    pub max_batch_requests: usize,
    /// Delta tokens kept per mailbox; older ones answer `410 SyncStateNotFound`.
    pub max_delta_tokens_per_mailbox: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            clients: vec![GraphClient {
                tenant: "contoso".into(),
                client_id: "lnsync".into(),
                secret: "graph-secret".into(),
            }],
            token_ttl_secs: 3599,
            max_page_size: 10,
            max_concurrent_per_mailbox: 4,
            max_batch_requests: 20,
            max_delta_tokens_per_mailbox: 256,
        }
    }
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

/// Graph change-notification settings. `minute_ms`, `retry_base_ms` and the `*_minutes`
/// windows that depend on them are the time scale tests shrink; subscription lifetimes
/// (`expirationDateTime`) are on the simulator clock and are not scaled, since clients compute
/// them from the real time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphPushConfig {
    /// Length of one delivery "minute", ms (Graph: 60 000): scales the retry window and the
    /// reauthorization grace.
    pub minute_ms: u64,
    /// Gap before the first retry of an undelivered notification, ms; each further gap
    /// doubles while the total stays inside `retry_window_minutes`.
    pub retry_base_ms: u64,
    /// How long Graph keeps retrying one notification before dropping it (Graph: 4 hours).
    pub retry_window_minutes: u64,
    /// The subscriber must answer the validation request within this, ms (Graph: 10 s).
    pub validation_timeout_ms: u64,
    /// The subscriber must answer a notification with 2xx within this, ms (Graph's HTTP
    /// client timeout: 3 s); later counts as failed and is retried.
    pub notification_timeout_ms: u64,
    /// Longest allowed `expirationDateTime - now` on create and renew, minutes of the
    /// simulator clock (Outlook events and contacts: 10 080, "under 7 days"; older Graph
    /// revisions said 4 230).
    pub max_lifetime_minutes: u64,
    /// Live subscriptions per mailbox (Outlook: 1 000); one more → 403.
    pub max_subscriptions_per_mailbox: usize,
    /// Changes arriving within this window after the first one share one POST, ms.
    pub batch_window_ms: u64,
    /// At most this many change notifications per POST.
    pub max_notifications_per_post: usize,
    /// After a `reauthorizationRequired`, notifications keep flowing this many minutes; then
    /// delivery pauses (changes are lost) until the app reauthorizes or renews.
    pub reauthorization_grace_minutes: u64,
}

impl Default for GraphPushConfig {
    fn default() -> Self {
        GraphPushConfig {
            minute_ms: 60_000,
            retry_base_ms: 60_000,
            retry_window_minutes: 240,
            validation_timeout_ms: 10_000,
            notification_timeout_ms: 3_000,
            max_lifetime_minutes: 10_080,
            max_subscriptions_per_mailbox: 1_000,
            batch_window_ms: 100,
            max_notifications_per_post: 10,
            reauthorization_grace_minutes: 60,
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
            graph_push: GraphPushConfig::default(),
            graph: GraphConfig::default(),
        }
    }
}
