//! The request log: one record per HTTP request to the EWS endpoint, kept in order, and one
//! per SendNotification POST the simulator made to a push subscriber (`Direction::Outgoing`).
//!
//! Both share one sequence so a test can see what happened in which order; everything that
//! counts client calls (`SimHandle::requests`, `count_operation`, `write_calls`…) looks at
//! incoming records only, so push traffic never changes what a sync is measured to cost.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How the request authenticated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthKind {
    #[default]
    None,
    Basic {
        user: String,
    },
    Bearer,
    /// Credentials were sent but rejected.
    Rejected,
}

/// Who called whom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A client's request to the EWS endpoint.
    #[default]
    Incoming,
    /// The simulator's SendNotification POST to a push subscription's URL.
    Outgoing,
}

/// Which front-end a request went to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// SOAP to `/EWS/Exchange.asmx` (and its push notifications).
    #[default]
    Ews,
    /// Microsoft Graph REST (`/v1.0/…`, the token endpoint) and its change notifications.
    Graph,
}

/// What an outgoing notification carried and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushDelivery {
    pub subscription_id: String,
    /// The subscription's URL (the POST's target).
    pub url: String,
    /// 1 for the first try of this notification, 2… for its retries.
    pub attempt: u32,
    /// Event element names in order (`CreatedEvent`, …, `StatusEvent`).
    pub events: Vec<String>,
    /// Why the attempt counts as failed (connection error, HTTP status, unparsable reply).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    /// Incoming EWS request or outgoing push notification.
    pub direction: Direction,
    pub time: DateTime<Utc>,
    /// Impersonated (or implied) target mailbox.
    pub mailbox: Option<String>,
    /// The `X-AnchorMailbox` HTTP header as sent.
    pub anchor_mailbox: Option<String>,
    pub auth: AuthKind,
    /// `RequestServerVersion/@Version`.
    pub server_version: Option<String>,
    /// Local name of the first child of soap:Body (`SendNotification` when outgoing).
    pub operation: Option<String>,
    /// Items (ids, changes, folders…) in the request; events in an outgoing notification.
    pub item_count: usize,
    /// The answer's status; for outgoing records the subscriber's, 0 when none came.
    pub http_status: u16,
    /// Per-item ResponseCodes, in order (empty for faults and HTTP errors); for outgoing
    /// records the subscriber's `SubscriptionStatus` (`OK` / `Unsubscribe`).
    pub response_codes: Vec<String>,
    /// ResponseCode of the SOAP fault, if the answer was one.
    pub fault_code: Option<String>,
    /// Which injected fault shaped the answer, if any.
    pub injected: Option<String>,
    /// True when the request arrived inside an announced back-off window.
    pub backoff_violation: bool,
    /// The raw request body, so tests can validate every request against the XSDs.
    pub body: String,
    /// Outgoing notifications only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushDelivery>,
    /// EWS or Graph.
    #[serde(default)]
    pub protocol: Protocol,
    /// HTTP method (Graph records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path and query as requested (Graph records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every `Prefer` header value sent (Graph records).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefer: Vec<String>,
    /// The `If-Match` header as sent (Graph records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// Operations of the inner requests of a Graph `$batch`, in request order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inner_operations: Vec<String>,
}

impl RequestRecord {
    pub fn is_incoming(&self) -> bool {
        self.direction == Direction::Incoming
    }

    /// Calls that change the mailbox: CreateItem, UpdateItem, DeleteItem, CreateFolder,
    /// DeleteFolder; on Graph every `*.create|update|delete` operation and a `$batch`
    /// carrying at least one of them (one HTTP request, so one write call).
    pub fn is_write(&self) -> bool {
        if !self.is_incoming() {
            return false;
        }
        match self.protocol {
            Protocol::Ews => matches!(
                self.operation.as_deref(),
                Some("CreateItem" | "UpdateItem" | "DeleteItem" | "CreateFolder" | "DeleteFolder")
            ),
            Protocol::Graph => match self.operation.as_deref() {
                Some("$batch") => self.inner_operations.iter().any(|o| is_graph_write(o)),
                Some(op) => is_graph_write(op),
                None => false,
            },
        }
    }
}

/// A Graph operation name (`events.create`, …) that changes a mailbox. Subscriptions change
/// no mailbox content and do not count.
pub fn is_graph_write(op: &str) -> bool {
    !op.starts_with("subscriptions")
        && (op.ends_with(".create") || op.ends_with(".update") || op.ends_with(".delete"))
}
