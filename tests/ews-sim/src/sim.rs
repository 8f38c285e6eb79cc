//! The Rust API: `EwsSim` (a running server) and `SimHandle` (shared access to its state),
//! used by tests to arrange mailboxes, act as "the user in Outlook", inject faults and read
//! the request log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::SimConfig;
use crate::error::SimError;
use crate::faults::FaultRule;
use crate::log::RequestRecord;
use crate::model::{ChangeKey, DistinguishedFolder, Folder, FolderId, Item, ItemId, StoredItem};
use crate::seed::{Seed, SeedReport};
use crate::state::SimState;
use crate::store::{DeleteType, FolderRef, Store};

/// The locked state; see [`SimHandle::lock`].
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, SimState>,
    handle: &'a SimHandle,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = SimState;
    fn deref(&self) -> &SimState {
        &self.guard
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut SimState {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        // Graph routing first: EWS settling prunes the journals to their retention.
        crate::graph::delivery::on_release(&mut self.guard, self.handle);
        crate::push::settle(&mut self.guard);
        // Delivery tasks need a runtime; a subscription made outside one (none can be: only
        // the async EWS endpoint subscribes) would simply start at the next release inside one.
        if tokio::runtime::Handle::try_current().is_ok() {
            for id in self.guard.push.take_unstarted() {
                tokio::spawn(crate::push_delivery::run(self.handle.clone(), id));
            }
        }
    }
}

/// Cheap, clonable access to the simulator state (also the axum state).
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Mutex<SimState>>,
}

impl SimHandle {
    pub fn new(config: SimConfig) -> Self {
        SimHandle {
            inner: Arc::new(Mutex::new(SimState::new(config))),
        }
    }

    /// Locks the state. A panic in another holder leaves the data usable for a simulator,
    /// so a poisoned lock is recovered rather than propagated.
    ///
    /// Releasing the guard routes the mailbox events the holder caused to the push
    /// subscriptions (and starts delivery tasks for new ones): every path that changes a
    /// mailbox goes through here, so none can forget to notify.
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            guard: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            handle: self,
        }
    }

    // ---- configuration

    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    pub fn update_config(&self, f: impl FnOnce(&mut SimConfig)) {
        let mut st = self.lock();
        f(&mut st.config);
        // Delivery tasks re-plan with the new push time scale.
        st.push.wake_all();
    }

    // ---- mailboxes and folders

    /// Adds a mailbox with the distinguished folders.
    pub fn add_mailbox(&self, smtp: &str) -> Result<(), SimError> {
        self.lock().store.add_mailbox(smtp)
    }

    pub fn mailboxes(&self) -> Vec<String> {
        self.lock()
            .store
            .mailboxes
            .values()
            .map(|m| m.smtp.clone())
            .collect()
    }

    pub fn folder_id(
        &self,
        mailbox: &str,
        folder: DistinguishedFolder,
    ) -> Result<FolderId, SimError> {
        let st = self.lock();
        st.store
            .mailbox(mailbox)?
            .folder_id(folder)
            .cloned()
            .ok_or_else(|| SimError::NoSuchFolder(folder.as_str().into()))
    }

    /// Creates a folder as a user would (no request is logged).
    pub fn create_folder(
        &self,
        mailbox: &str,
        parent: impl Into<FolderRef>,
        name: &str,
        folder_class: &str,
    ) -> Result<FolderId, SimError> {
        let parent = parent.into();
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        let pid = mb
            .resolve(&parent)
            .map_err(|_| SimError::NoSuchFolder(format!("{parent:?}")))?;
        mb.create_folder(seq, &pid, name, folder_class)
    }

    /// The oldest folder with this display name (case-insensitive), anywhere in the mailbox.
    pub fn find_folder_by_name(&self, mailbox: &str, name: &str) -> Option<Folder> {
        let st = self.lock();
        st.store
            .mailbox(mailbox)
            .ok()?
            .find_folder_by_name(name)
            .cloned()
    }

    pub fn folders(&self, mailbox: &str) -> Result<Vec<Folder>, SimError> {
        let st = self.lock();
        let mut v: Vec<Folder> = st
            .store
            .mailbox(mailbox)?
            .folders
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|f| f.created_seq);
        Ok(v)
    }

    /// Deletes a user folder (and its items) as the user would.
    pub fn delete_folder(&self, mailbox: &str, folder: &FolderId) -> Result<(), SimError> {
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        mb.delete_folder(seq, folder)
    }

    // ---- items, as "the user in Outlook"

    /// Items of a folder in creation order, with their extended properties.
    pub fn items_in_folder(
        &self,
        mailbox: &str,
        folder: &FolderId,
    ) -> Result<Vec<StoredItem>, SimError> {
        let st = self.lock();
        let mb = st.store.mailbox(mailbox)?;
        if !mb.folders.contains_key(folder) {
            return Err(SimError::NoSuchFolder(folder.0.clone()));
        }
        Ok(mb.items_in(folder).into_iter().cloned().collect())
    }

    pub fn item(&self, mailbox: &str, id: &ItemId) -> Option<StoredItem> {
        self.lock()
            .store
            .mailbox(mailbox)
            .ok()?
            .items
            .get(id)
            .cloned()
    }

    /// Creates an item as the user would; it is journalled like any other change.
    pub fn user_create_item(
        &self,
        mailbox: &str,
        folder: &FolderId,
        item: Item,
    ) -> Result<(ItemId, ChangeKey), SimError> {
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        if !mb.folders.contains_key(folder) {
            return Err(SimError::NoSuchFolder(folder.0.clone()));
        }
        Ok(mb.create_item(seq, folder, item))
    }

    /// Edits an item as the user would: bumps the ChangeKey (so a client holding the old one
    /// gets ErrorIrresolvableConflict) and journals an Update.
    pub fn user_update_item(
        &self,
        mailbox: &str,
        id: &ItemId,
        edit: impl FnOnce(&mut Item),
    ) -> Result<ChangeKey, SimError> {
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        let mut item = mb
            .items
            .get(id)
            .ok_or_else(|| SimError::NoSuchItem(id.0.clone()))?
            .item
            .clone();
        edit(&mut item);
        mb.commit_update(seq, id, item)
            .ok_or_else(|| SimError::NoSuchItem(id.0.clone()))
    }

    /// Deletes an item as the user would (hard delete; journals a Delete).
    pub fn user_delete_item(&self, mailbox: &str, id: &ItemId) -> Result<(), SimError> {
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        mb.delete_item(seq, id, DeleteType::HardDelete).map(|_| ())
    }

    /// Moves an item to Deleted Items as Outlook's Delete key does; returns its new id.
    pub fn user_move_to_deleted_items(
        &self,
        mailbox: &str,
        id: &ItemId,
    ) -> Result<Option<ItemId>, SimError> {
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        mb.delete_item(seq, id, DeleteType::MoveToDeletedItems)
    }

    // ---- faults and throttling

    pub fn add_fault(&self, rule: FaultRule) {
        self.lock().faults.push(rule);
    }

    pub fn faults(&self) -> Vec<FaultRule> {
        self.lock().faults.clone()
    }

    /// Removes all rules and ends all back-off windows.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.faults.clear();
        st.backoff.clear();
        st.graph.retry_windows.clear();
    }

    /// When throttled answers (ErrorServerBusy) went to a mailbox, with the back-off announced.
    pub fn throttled_responses(&self, mailbox: &str) -> Vec<(DateTime<Utc>, u64)> {
        self.lock()
            .throttled
            .get(&Store::key(mailbox))
            .cloned()
            .unwrap_or_default()
    }

    /// Requests that arrived inside an announced back-off window (should be 0 for a good client).
    pub fn backoff_violations(&self) -> usize {
        self.count_where(|r| r.backoff_violation)
    }

    // ---- sync states

    /// Forgets issued SyncStates and Graph delta tokens (of one mailbox or all): the next
    /// SyncFolderItems with an old state gets ErrorInvalidSyncStateData, the next Graph delta
    /// call with an old token `410 SyncStateNotFound`. Returns how many were dropped.
    pub fn invalidate_sync_states(&self, mailbox: Option<&str>) -> usize {
        let mut st = self.lock();
        st.sync.invalidate(mailbox) + st.graph.delta.invalidate(mailbox)
    }

    // ---- request log

    /// The EWS requests clients made, in arrival order (outgoing push notifications are in
    /// [`SimHandle::notifications`], so client call counts never include them).
    pub fn requests(&self) -> Vec<RequestRecord> {
        let mut v: Vec<RequestRecord> = self
            .lock()
            .log
            .iter()
            .filter(|r| r.is_incoming())
            .cloned()
            .collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Incoming requests and outgoing notifications, interleaved in sequence order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        let mut v = self.lock().log.clone();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Forgets incoming and outgoing records alike.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Raw bodies of all logged requests (for `schema::validate_requests`).
    pub fn request_bodies(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    pub fn count_operation(&self, operation: &str) -> usize {
        self.count_where(|r| r.operation.as_deref() == Some(operation))
    }

    pub fn count_for_mailbox(&self, mailbox: &str) -> usize {
        self.count_where(|r| {
            r.mailbox
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
        })
    }

    pub fn count_operation_for_mailbox(&self, operation: &str, mailbox: &str) -> usize {
        self.count_where(|r| {
            r.operation.as_deref() == Some(operation)
                && r.mailbox
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
        })
    }

    /// CreateItem, UpdateItem, DeleteItem, CreateFolder (and DeleteFolder) calls.
    pub fn write_calls(&self) -> usize {
        self.count_where(RequestRecord::is_write)
    }

    pub fn write_calls_for_mailbox(&self, mailbox: &str) -> usize {
        self.count_where(|r| {
            r.is_write()
                && r.mailbox
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
        })
    }

    /// Counts incoming requests matching `pred`.
    pub fn count_where(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|r| r.is_incoming() && pred(r))
            .count()
    }

    // ---- whole state

    /// Empties the simulator (mailboxes, faults, log, sync states); keeps the configuration.
    pub fn reset(&self) {
        self.lock().reset();
    }

    pub fn seed(&self, seed: &Seed) -> Result<SeedReport, SimError> {
        crate::seed::apply(&mut self.lock(), seed)
    }

    /// JSON dump: per mailbox, folders with their items.
    pub fn dump(&self) -> serde_json::Value {
        let st = self.lock();
        #[derive(Serialize)]
        struct FolderDump<'a> {
            #[serde(flatten)]
            folder: &'a Folder,
            items: Vec<&'a StoredItem>,
        }
        #[derive(Serialize)]
        struct MailboxDump<'a> {
            smtp: &'a str,
            folders: Vec<FolderDump<'a>>,
        }
        let mailboxes: Vec<MailboxDump<'_>> = st
            .store
            .mailboxes
            .values()
            .map(|mb| {
                let mut folders: Vec<&Folder> = mb.folders.values().collect();
                folders.sort_by_key(|f| f.created_seq);
                MailboxDump {
                    smtp: &mb.smtp,
                    folders: folders
                        .into_iter()
                        .map(|f| FolderDump {
                            folder: f,
                            items: mb.items_in(&f.id),
                        })
                        .collect(),
                }
            })
            .collect();
        serde_json::json!({
            "mailboxes": mailboxes,
            "faults": st.faults,
            "request_count": st.log.iter().filter(|r| r.is_incoming()).count(),
            "notification_count": st.log.iter().filter(|r| !r.is_incoming()).count(),
            "subscriptions": st.push.list(),
        })
    }
}

/// A running simulator on a local port. Dropping it stops the server.
pub struct EwsSim {
    handle: SimHandle,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl EwsSim {
    /// Starts on 127.0.0.1 with an ephemeral port and the default configuration.
    pub async fn start() -> Result<EwsSim, SimError> {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> Result<EwsSim, SimError> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn bind(addr: SocketAddr, config: SimConfig) -> Result<EwsSim, SimError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let handle = SimHandle::new(config);
        let (tx, rx) = oneshot::channel::<()>();
        let served = handle.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = crate::server::serve(listener, served, stop).await {
                tracing::error!(error = %e, "ews-sim server stopped");
            }
        });
        Ok(EwsSim {
            handle,
            addr,
            shutdown: Some(tx),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/EWS/Exchange.asmx`
    pub fn ews_url(&self) -> String {
        format!("{}{}", self.base_url(), crate::server::EWS_PATH)
    }

    /// `http://127.0.0.1:PORT/v1.0`: Microsoft Graph's service root.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// `http://127.0.0.1:PORT`: the Entra authority (tokens at
    /// `{authority}/{tenant}/oauth2/v2.0/token`).
    pub fn graph_login_url(&self) -> String {
        self.base_url()
    }

    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for EwsSim {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl Drop for EwsSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // A stopped Exchange calls nobody: end the delivery tasks with the server.
        self.handle.stop_push("simulator stopped");
        self.handle.stop_graph_push();
    }
}
