//! Everything the simulator remembers, behind one mutex: configuration, mailboxes, fault
//! rules, back-off windows, the request log, the issued SyncStates and push subscriptions.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::SimConfig;
use crate::faults::FaultRule;
use crate::log::RequestRecord;
use crate::model::{ChangeKey, FolderId, ItemId};
use crate::push::PushState;
use crate::store::Store;

/// What a client has seen of a folder at one SyncState: item → ChangeKey it was told.
///
/// Keeping the client's view (rather than only a watermark) makes coalescing exact: an item
/// is a Create if the client never saw it, an Update if its ChangeKey moved, a Delete if the
/// client saw it and it is gone, however many changes happened in between.
#[derive(Clone, Debug)]
pub struct SyncSnapshot {
    pub mailbox: String,
    pub folder: FolderId,
    pub known: HashMap<ItemId, ChangeKey>,
}

/// Issued SyncStates. Server-side, so any token the sim did not issue (or has forgotten) is
/// rejected with ErrorInvalidSyncStateData, like a corrupt or expired one on Exchange.
#[derive(Debug, Default)]
pub struct SyncStates {
    states: HashMap<String, SyncSnapshot>,
    per_folder: HashMap<(String, FolderId), VecDeque<String>>,
}

impl SyncStates {
    pub fn issue(&mut self, snap: SyncSnapshot, max_per_folder: usize) -> String {
        // Real SyncStates are base64 gzip blobs ("H4sI…"); the gzip magic keeps the look.
        let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00];
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        let token = B64.encode(bytes);
        let key = (snap.mailbox.clone(), snap.folder.clone());
        let queue = self.per_folder.entry(key).or_default();
        queue.push_back(token.clone());
        // Evict the oldest: a client presenting one of those gets "too old".
        while queue.len() > max_per_folder.max(1) {
            if let Some(old) = queue.pop_front() {
                self.states.remove(&old);
            }
        }
        self.states.insert(token.clone(), snap);
        token
    }

    pub fn get(&self, token: &str) -> Option<&SyncSnapshot> {
        self.states.get(token.trim())
    }

    /// Forgets the states of one mailbox (or all); returns how many were dropped.
    pub fn invalidate(&mut self, mailbox: Option<&str>) -> usize {
        let before = self.states.len();
        match mailbox {
            None => {
                self.states.clear();
                self.per_folder.clear();
            }
            Some(m) => {
                let key = Store::key(m);
                self.states.retain(|_, s| s.mailbox != key);
                self.per_folder.retain(|(mb, _), _| *mb != key);
            }
        }
        before - self.states.len()
    }
}

/// Back-off window announced to a mailbox with ErrorServerBusy.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub until: Instant,
}

#[derive(Debug, Default)]
pub struct SimState {
    pub config: SimConfig,
    pub store: Store,
    pub faults: Vec<FaultRule>,
    /// Keyed by lower-cased mailbox.
    pub backoff: HashMap<String, Backoff>,
    /// Throttled responses sent, per lower-cased mailbox: (time, back-off ms).
    pub throttled: HashMap<String, Vec<(chrono::DateTime<chrono::Utc>, u64)>>,
    pub log: Vec<RequestRecord>,
    pub next_request_seq: u64,
    pub sync: SyncStates,
    /// Push subscriptions and their delivery state.
    pub push: PushState,
    /// The Graph front-end's own state (tokens, throttling, transactionIds, delta tokens).
    pub graph: crate::graph::state::GraphState,
    /// Graph change-notification subscriptions and their delivery state.
    pub graph_push: crate::graph::delivery::GraphPushState,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        SimState {
            config,
            ..Default::default()
        }
    }

    /// Back to an empty simulator with the same configuration.
    pub fn reset(&mut self) {
        // Stop the delivery tasks first: they must not call anyone on behalf of mailboxes
        // that no longer exist.
        let now = self.store.seq.now();
        self.push.stop_all(now, "simulator reset");
        self.graph_push.stop_all();
        let config = self.config.clone();
        *self = SimState::new(config);
    }
}
