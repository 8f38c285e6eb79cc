//! What the Graph front-end remembers besides the mailbox store: issued access tokens,
//! requests in flight and `Retry-After` windows per mailbox, `transactionId`s of created
//! events, and the delta rounds (tokens and pages) it handed out.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::model::ItemId;

/// An issued access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub tenant: String,
    pub client_id: String,
    /// Simulator clock, so tests can expire tokens with `advance_clock`.
    pub expires: DateTime<Utc>,
}

/// A `Retry-After` window announced to a mailbox.
#[derive(Clone, Copy, Debug)]
pub struct RetryWindow {
    pub until: Instant,
    /// When it was announced: a request sent before that could not have known of it.
    pub opened: Instant,
}

/// One throttling answer sent (429/503/504), for `SimHandle::graph_throttled_responses`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ThrottledResponse {
    pub time: DateTime<Utc>,
    pub status: u16,
    pub retry_after_secs: u64,
    /// `ApplicationThrottled` (concurrency), `injected`, or `backoff_violation`.
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct GraphState {
    pub tokens: HashMap<String, IssuedToken>,
    /// Requests in flight per lower-cased mailbox (inner `$batch` requests included).
    pub in_flight: HashMap<String, usize>,
    /// Per lower-cased mailbox.
    pub retry_windows: HashMap<String, RetryWindow>,
    pub throttled: HashMap<String, Vec<ThrottledResponse>>,
    /// (lower-cased mailbox, transactionId) → the event created with it.
    pub transactions: HashMap<(String, String), ItemId>,
    /// Windows time zone per lower-cased mailbox (`mailboxSettings`); default UTC.
    pub mailbox_zones: HashMap<String, String>,
    /// Delta tokens and page sessions.
    pub delta: crate::graph::delta::DeltaStore,
}

impl GraphState {
    /// The transactionId an event was created with, if any.
    pub fn transaction_of(&self, mailbox_key: &str, id: &ItemId) -> Option<&str> {
        self.transactions
            .iter()
            .find(|((m, _), v)| m == mailbox_key && *v == id)
            .map(|((_, t), _)| t.as_str())
    }
}

/// Bounded FIFO of keys, for evicting the oldest delta tokens of a mailbox.
pub(crate) fn push_bounded(q: &mut VecDeque<String>, key: String, max: usize) -> Vec<String> {
    q.push_back(key);
    let mut evicted = Vec::new();
    while q.len() > max.max(1) {
        if let Some(old) = q.pop_front() {
            evicted.push(old);
        }
    }
    evicted
}
