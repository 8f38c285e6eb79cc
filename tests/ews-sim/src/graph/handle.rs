//! `SimHandle` controls and assertions of the Graph front-end: tokens, mailbox time zones,
//! throttling answers, delta-token invalidation (an expired cursor), and the Graph part of
//! the request log.

use crate::graph::state::ThrottledResponse;
use crate::log::{Protocol, RequestRecord};
use crate::sim::SimHandle;
use crate::store::Store;

impl SimHandle {
    /// Issues an access token for a configured client without the token endpoint (tests
    /// that exercise something else). `None` when `client_id` is not configured.
    pub fn issue_graph_token(&self, client_id: &str) -> Option<String> {
        let mut st = self.lock();
        let client = st
            .config
            .graph
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
            .cloned()?;
        let form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), client.client_id.clone()),
            ("client_secret".to_string(), client.secret.clone()),
            (
                "scope".to_string(),
                "https://graph.microsoft.com/.default".to_string(),
            ),
        ];
        drop(crate::graph::auth::token_endpoint(
            &mut st,
            &client.tenant,
            &form,
        ));
        st.graph
            .tokens
            .iter()
            .filter(|(_, t)| t.client_id == client.client_id)
            .max_by_key(|(_, t)| t.expires)
            .map(|(k, _)| k.clone())
    }

    /// Forgets every issued Graph access token (clients get 401 and must fetch a new one).
    pub fn revoke_graph_tokens(&self) {
        self.lock().graph.tokens.clear();
    }

    /// Sets a mailbox's time zone (Windows id), as `mailboxSettings` reports it.
    pub fn set_mailbox_time_zone(&self, mailbox: &str, windows_zone: &str) {
        self.lock()
            .graph
            .mailbox_zones
            .insert(Store::key(mailbox), windows_zone.to_string());
    }

    /// Throttling answers (429/503/504) Graph sent for a mailbox, in order.
    pub fn graph_throttled_responses(&self, mailbox: &str) -> Vec<ThrottledResponse> {
        self.lock()
            .graph
            .throttled
            .get(&Store::key(mailbox))
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets the Graph delta tokens (and paged rounds) of one mailbox or all: the next
    /// delta call with one answers `410 SyncStateNotFound`. Returns how many tokens went.
    pub fn invalidate_delta_tokens(&self, mailbox: Option<&str>) -> usize {
        self.lock().graph.delta.invalidate(mailbox)
    }

    /// Graph requests requests in flight for a mailbox right now.
    pub fn graph_in_flight(&self, mailbox: &str) -> usize {
        self.lock()
            .graph
            .in_flight
            .get(&Store::key(mailbox))
            .copied()
            .unwrap_or(0)
    }

    /// Incoming Graph requests (token, `/v1.0/…`, `$batch` as one), in arrival order.
    pub fn graph_requests(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.protocol == Protocol::Graph)
            .collect()
    }

    /// Incoming EWS requests only.
    pub fn ews_requests(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.protocol == Protocol::Ews)
            .collect()
    }
}
