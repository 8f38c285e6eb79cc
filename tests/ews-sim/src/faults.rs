//! Injected faults and throttling.
//!
//! A rule matches requests by mailbox and/or operation and fires for its next `count`
//! matches. ServerBusy rules also start a back-off window for the mailbox; with
//! `SimConfig::enforce_backoff`, requests arriving inside that window are answered with
//! ErrorServerBusy again and counted, which lets tests prove the client actually waited.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Only requests for this (impersonated) mailbox; `None` = any.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// Only this operation (local name, e.g. `CreateItem`); `None` = any.
    #[serde(default)]
    pub operation: Option<String>,
    /// How many matching requests this rule still affects.
    #[serde(default = "one")]
    pub count: u32,
    pub action: FaultAction,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// HTTP 500 SOAP fault ErrorServerBusy with `BackOffMilliseconds` (exchange.md §2.10).
    ServerBusy { back_off_ms: u64 },
    /// HTTP 503 as IIS sends when its queue is full; optional `Retry-After` (seconds).
    Http503 {
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// HTTP 500 SOAP fault with any response code (e.g. ErrorInternalServerTransientError).
    SoapFault {
        code: String,
        #[serde(default)]
        message: Option<String>,
    },
    /// Item `index` (0-based) of the request fails with `code`; the other items are processed.
    ItemError {
        index: usize,
        code: String,
        #[serde(default)]
        message: Option<String>,
    },
    /// Delay the response; the request is then processed normally.
    Delay { ms: u64 },
    /// Graph only: answer with this HTTP status and `{"error":{"code","message"}}` (code
    /// defaults by status: 429 ApplicationThrottled, 503 ServiceUnavailable, 504
    /// GatewayTimeout), with `Retry-After` when set.
    HttpError {
        status: u16,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
}

impl FaultRule {
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            mailbox: None,
            operation: None,
            count: 1,
            action,
        }
    }

    pub fn server_busy(back_off_ms: u64) -> Self {
        Self::new(FaultAction::ServerBusy { back_off_ms })
    }

    pub fn http_503(retry_after_secs: Option<u64>) -> Self {
        Self::new(FaultAction::Http503 { retry_after_secs })
    }

    pub fn soap_fault(code: &str) -> Self {
        Self::new(FaultAction::SoapFault {
            code: code.into(),
            message: None,
        })
    }

    pub fn item_error(index: usize, code: &str) -> Self {
        Self::new(FaultAction::ItemError {
            index,
            code: code.into(),
            message: None,
        })
    }

    pub fn delay(ms: u64) -> Self {
        Self::new(FaultAction::Delay { ms })
    }

    /// Graph: `status` (429/503/504…) with `Retry-After: retry_after_secs`.
    pub fn graph_status(status: u16, retry_after_secs: Option<u64>) -> Self {
        Self::new(FaultAction::HttpError {
            status,
            code: None,
            message: None,
            retry_after_secs,
        })
    }

    /// Graph: `429 ApplicationThrottled` with `Retry-After: retry_after_secs`.
    pub fn graph_throttle(retry_after_secs: u64) -> Self {
        Self::graph_status(429, Some(retry_after_secs))
    }

    pub fn for_mailbox(mut self, smtp: &str) -> Self {
        self.mailbox = Some(smtp.to_string());
        self
    }

    pub fn for_operation(mut self, op: &str) -> Self {
        self.operation = Some(op.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.count = n;
        self
    }

    /// EWS requests (`HttpError` rules are Graph-only).
    pub(crate) fn matches(&self, mailbox: Option<&str>, operation: &str) -> bool {
        !matches!(self.action, FaultAction::HttpError { .. })
            && self.count > 0
            && self
                .mailbox
                .as_deref()
                .is_none_or(|m| mailbox.is_some_and(|x| x.eq_ignore_ascii_case(m)))
            && self.operation.as_deref().is_none_or(|o| o == operation)
    }

    /// Graph requests: operation names are Graph's (`events.create`, `calendarView.delta`,
    /// `$batch`…; see docs/ews-simulator.md); a trailing `*` matches a prefix (`events.*`,
    /// `*` = any Graph operation). A rule without an operation matches both protocols.
    pub(crate) fn matches_graph(&self, mailbox: Option<&str>, operation: &str) -> bool {
        self.count > 0
            && self
                .mailbox
                .as_deref()
                .is_none_or(|m| mailbox.is_some_and(|x| x.eq_ignore_ascii_case(m)))
            && self
                .operation
                .as_deref()
                .is_none_or(|o| match o.strip_suffix('*') {
                    Some(prefix) => operation.starts_with(prefix),
                    None => o == operation,
                })
    }
}
