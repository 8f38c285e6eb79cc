//! The request log: every token and data request the simulator answered, so tests can assert how
//! many calls a sync made and with which headers. Admin (`/_sim/`) calls are not logged.
//!
//! Times are real wall-clock times (not [`crate::SimClock`]), so a test can measure how long a
//! client waited between a 429 and its retry even while simulated time is frozen.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What kind of endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// `POST /as/token.oauth2`.
    Token,
    /// Anything under the OData service root.
    Data,
    /// Any other path (answered 404).
    Other,
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// 1, 2, 3… in order of arrival.
    pub seq: u64,
    /// Arrival time (wall clock).
    pub time: DateTime<Utc>,
    /// Time taken to answer, including injected delays.
    pub duration_ms: u64,
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Raw (still percent-encoded) query string.
    pub query: Option<String>,
    pub kind: RequestKind,
    /// Entity set addressed, e.g. `Contacts` (also for keyed and navigation requests).
    pub entity_set: Option<String>,
    /// Key predicate as written in the URL, e.g. `'C001'` or `activity='A1',line=1`.
    pub key: Option<String>,
    /// `X-Infor-LnCompany`.
    pub company: Option<String>,
    pub if_match: Option<String>,
    pub prefer: Option<String>,
    /// Whether an `Authorization` header was sent (its value is never recorded).
    pub authorization: bool,
    pub status: u16,
    /// Set when an injected fault answered or delayed the request.
    pub fault: Option<String>,
    /// Observations worth asserting on, e.g. `"PATCH without If-Match"`.
    pub notes: Vec<String>,
}

impl RequestRecord {
    /// Query string decoded (`+` and `%xx`), for readable assertions.
    pub fn decoded_query(&self) -> String {
        self.query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default()
    }

    /// Whether this is a data request to `set`.
    pub fn is_set(&self, set: &str) -> bool {
        self.entity_set.as_deref() == Some(set)
    }
}

/// Thread-safe, shareable log.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    next_seq: u64,
    records: Vec<RequestRecord>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserve the next sequence number (at arrival, so the log orders by arrival even when
    /// responses finish out of order).
    pub fn next_seq(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_seq += 1;
        inner.next_seq
    }

    pub fn push(&self, record: RequestRecord) {
        let mut inner = self.lock();
        let at = inner.records.partition_point(|r| r.seq < record.seq);
        inner.records.insert(at, record);
    }

    /// All records, in arrival order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().records.clone()
    }

    pub fn clear(&self) {
        self.lock().records.clear();
    }

    pub fn count(&self, predicate: impl Fn(&RequestRecord) -> bool) -> usize {
        self.lock().records.iter().filter(|r| predicate(r)).count()
    }
}
