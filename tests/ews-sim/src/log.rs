//! The request log: one record per HTTP request to the EWS endpoint, kept in order.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How the request authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthKind {
    None,
    Basic {
        user: String,
    },
    Bearer,
    /// Credentials were sent but rejected.
    Rejected,
}

#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// Impersonated (or implied) target mailbox.
    pub mailbox: Option<String>,
    /// The `X-AnchorMailbox` HTTP header as sent.
    pub anchor_mailbox: Option<String>,
    pub auth: AuthKind,
    /// `RequestServerVersion/@Version`.
    pub server_version: Option<String>,
    /// Local name of the first child of soap:Body.
    pub operation: Option<String>,
    /// Items (ids, changes, folders…) in the request.
    pub item_count: usize,
    pub http_status: u16,
    /// Per-item ResponseCodes, in order (empty for faults and HTTP errors).
    pub response_codes: Vec<String>,
    /// ResponseCode of the SOAP fault, if the answer was one.
    pub fault_code: Option<String>,
    /// Which injected fault shaped the answer, if any.
    pub injected: Option<String>,
    /// True when the request arrived inside an announced back-off window.
    pub backoff_violation: bool,
    /// The raw request body, so tests can validate every request against the XSDs.
    pub body: String,
}

impl RequestRecord {
    /// CreateItem, UpdateItem, DeleteItem, CreateFolder (calls that change the mailbox).
    pub fn is_write(&self) -> bool {
        matches!(
            self.operation.as_deref(),
            Some("CreateItem" | "UpdateItem" | "DeleteItem" | "CreateFolder" | "DeleteFolder")
        )
    }
}
