//! `EwsMailbox`: the core's [`Mailbox`] port over EWS.
//!
//! One instance serves every mailbox of an environment: each call names the mailbox it
//! impersonates (`ExchangeImpersonation` header + `X-AnchorMailbox`, exchange.md §2.2). Writes are
//! batched (≤ 100 items per call), every response message is checked on its own, and throttling
//! hints are obeyed per mailbox (R37): a busy mailbox waits, others carry on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use lnsync_core::calendar::{CalendarEvent, CreatedEvent, EventRead, EventUpdate, NewEvent};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, ExchangeVersion, FolderId, MailboxAddress};
use lnsync_core::ports::{
    ContactFolder, ContactUpdate, FolderChange, FolderChanges, FolderCursor, ItemOutcome, ItemRef,
    Mailbox, NewContact, PushRequest, StampedItem, Subscribed, Window,
};
use tokio::time::Instant;

use super::auth::EwsAuth;
use super::classify::{self, FOLDER_EXISTS, SERVER_BUSY};
use super::codec::{
    self, CreateContacts, CreateContactsFolder, DeleteItems, DistinguishedFolder, Envelope,
    FindFolder, FindItems, FolderRef, GetItems, ItemInfo, Operation, Page, ResponseError,
    ResponseMessage, Restriction, SoapFault, SyncChange, SyncFolderItems, UpdateContacts,
    parse_fault_body, parse_response,
};
use super::transport::{
    HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportError,
};

/// Settings of one environment's EWS connection. [`EwsConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct EwsConfig {
    /// `https://<cas>/EWS/Exchange.asmx`
    pub url: url::Url,
    pub auth: EwsAuth,
    /// The contacts folder lnsync owns in every mailbox (R9).
    pub folder_name: String,
    /// Items per CreateItem/UpdateItem/DeleteItem call; Exchange wants ≤ ~100 (exchange.md §2.10).
    pub write_batch: usize,
    /// Items per GetItem call.
    pub read_batch: usize,
    /// Page size of FindItem listings; Exchange caps at 1000 (ErrorExceededFindCountLimit).
    pub find_page_size: u32,
    /// Up to this many stamps are looked up with one `Or` restriction; more are found by listing
    /// the folder, which is cheaper than a restriction per stamp in a folder we own.
    pub restriction_max_stamps: usize,
    /// `MaxChangesReturned` of SyncFolderItems (1–512).
    pub sync_page_size: u16,
    /// Retries of one call after a throttling answer before giving up with `Throttled`.
    pub max_retries: u32,
    /// Wait when the server says busy without `BackOffMilliseconds` (exchangelib uses 60 s).
    pub default_back_off: Duration,
    /// Longest single wait; a longer hint is cut to this (and reported in the final error).
    pub max_back_off: Duration,
}

impl EwsConfig {
    pub fn new(url: url::Url, auth: EwsAuth) -> Self {
        Self {
            url,
            auth,
            folder_name: "CRM Contacts".to_owned(),
            write_batch: 100,
            read_batch: 50,
            find_page_size: 500,
            restriction_max_stamps: 20,
            sync_page_size: codec::MAX_SYNC_CHANGES,
            max_retries: 3,
            default_back_off: Duration::from_secs(60),
            max_back_off: Duration::from_secs(300),
        }
    }
}

/// Per-mailbox "not before" instants set by throttling answers. The lock is held only to read or
/// write the map, never across an await, so a throttled mailbox never blocks another.
#[derive(Debug, Default)]
struct BackoffGate {
    until: Mutex<HashMap<String, Instant>>,
}

impl BackoffGate {
    fn key(mailbox: &MailboxAddress) -> String {
        mailbox.as_str().to_ascii_lowercase()
    }

    fn hold(&self, mailbox: &MailboxAddress, wait: Duration) {
        let until = Instant::now() + wait;
        let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(Self::key(mailbox)).or_insert(until);
        *entry = (*entry).max(until);
    }

    async fn wait(&self, mailbox: &MailboxAddress) {
        let until = {
            let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            map.retain(|_, t| *t > now);
            map.get(&Self::key(mailbox)).copied()
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// The outcome of one HTTP exchange.
enum Attempt {
    Done(Vec<ResponseMessage>),
    /// The server asked us to back off, with its hint when it gave one.
    Busy(Option<Duration>),
}

/// The EWS implementation of [`Mailbox`].
pub struct EwsMailbox {
    config: EwsConfig,
    transport: Arc<dyn HttpTransport>,
    gate: BackoffGate,
}

impl std::fmt::Debug for EwsMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsMailbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EwsMailbox {
    pub fn new(config: EwsConfig, transport: Arc<dyn HttpTransport>) -> Self {
        Self {
            config,
            transport,
            gate: BackoffGate::default(),
        }
    }

    /// With the production transport; `timeout` bounds each HTTP call.
    pub fn with_reqwest(config: EwsConfig, timeout: Duration) -> Result<Self, TransportError> {
        Ok(Self::new(config, Arc::new(ReqwestTransport::new(timeout)?)))
    }

    pub fn config(&self) -> &EwsConfig {
        &self.config
    }

    fn wait_for(&self, hint: Option<Duration>) -> Duration {
        hint.unwrap_or(self.config.default_back_off)
            .min(self.config.max_back_off)
    }

    /// Sends one envelope, retrying after throttling answers (bounded), and returns its response
    /// messages.
    async fn call_raw(
        &self,
        mailbox: &MailboxAddress,
        operation: &'static str,
        body: String,
    ) -> Result<Vec<ResponseMessage>, MailboxError> {
        let mut retries = 0;
        loop {
            self.gate.wait(mailbox).await;
            match self.send(mailbox, operation, body.clone()).await? {
                Attempt::Done(messages) => return Ok(messages),
                Attempt::Busy(hint) => {
                    if retries >= self.config.max_retries {
                        return Err(MailboxError::Throttled {
                            mailbox: mailbox.clone(),
                            retry_after: hint.unwrap_or(self.config.default_back_off),
                        });
                    }
                    retries += 1;
                    let wait = self.wait_for(hint);
                    tracing::warn!(%mailbox, operation, retry = retries, wait_ms = wait.as_millis() as u64, "EWS throttled; backing off");
                    self.gate.hold(mailbox, wait);
                }
            }
        }
    }

    pub(super) async fn call(
        &self,
        mailbox: &MailboxAddress,
        op: &(dyn Operation + Sync),
    ) -> Result<Vec<ResponseMessage>, MailboxError> {
        let body = Envelope::new(mailbox.as_str()).build(op);
        self.call_raw(mailbox, op.name(), body).await
    }

    /// A call whose response has exactly one message (folder ops, FindItem, SyncFolderItems,
    /// Subscribe).
    pub(super) async fn call_one(
        &self,
        mailbox: &MailboxAddress,
        op: &(dyn Operation + Sync),
    ) -> Result<ResponseMessage, MailboxError> {
        let mut messages = self.call(mailbox, op).await?;
        if messages.len() != 1 {
            return Err(MailboxError::Protocol {
                message: format!(
                    "{} returned {} response messages, expected 1",
                    op.name(),
                    messages.len()
                ),
                source: None,
            });
        }
        Ok(messages.remove(0))
    }

    /// Like [`Self::call_one`], with a failed message turned into the call's error.
    pub(super) async fn call_ok(
        &self,
        mailbox: &MailboxAddress,
        op: &(dyn Operation + Sync),
    ) -> Result<ResponseMessage, MailboxError> {
        let message = self.call_one(mailbox, op).await?;
        if message.is_success() {
            Ok(message)
        } else {
            Err(self.message_error(mailbox, &message))
        }
    }

    pub(super) fn message_error(
        &self,
        mailbox: &MailboxAddress,
        message: &ResponseMessage,
    ) -> MailboxError {
        let code = message.code.as_str();
        let text = message.message_text.clone().unwrap_or_default();
        match code {
            c if classify::is_invalid_cursor(c) => MailboxError::InvalidCursor {
                mailbox: mailbox.clone(),
            },
            SERVER_BUSY => MailboxError::Throttled {
                mailbox: mailbox.clone(),
                retry_after: message.back_off().unwrap_or(self.config.default_back_off),
            },
            c if classify::is_folder_missing(c) => MailboxError::FolderNotFound {
                mailbox: mailbox.clone(),
            },
            c if classify::is_configuration(c) => MailboxError::Configuration {
                mailbox: mailbox.clone(),
                code: c.to_owned(),
                message: text,
            },
            c => MailboxError::Server {
                code: c.to_owned(),
                message: text,
                transient: classify::is_transient(c),
            },
        }
    }

    fn fault_attempt(
        &self,
        mailbox: &MailboxAddress,
        fault: SoapFault,
    ) -> Result<Attempt, MailboxError> {
        let code = fault.response_code.as_str();
        // Exchange also signals throttling as ErrorInternalServerError carrying a back-off hint.
        if code == SERVER_BUSY || fault.back_off().is_some() {
            return Ok(Attempt::Busy(fault.back_off()));
        }
        Err(match code {
            c if classify::is_invalid_cursor(c) => MailboxError::InvalidCursor {
                mailbox: mailbox.clone(),
            },
            c if classify::is_configuration(c) => MailboxError::Configuration {
                mailbox: mailbox.clone(),
                code: c.to_owned(),
                message: fault.fault_string.clone(),
            },
            c => MailboxError::Server {
                code: c.to_owned(),
                message: fault.fault_string.clone(),
                transient: classify::is_transient(c),
            },
        })
    }

    /// Whole-call conditions hidden in per-item messages: a misconfigured mailbox fails every
    /// item the same way, and an all-busy answer means nothing was processed.
    fn messages_attempt(
        &self,
        mailbox: &MailboxAddress,
        messages: Vec<ResponseMessage>,
    ) -> Result<Attempt, MailboxError> {
        if let Some(bad) = messages
            .iter()
            .find(|m| !m.is_success() && classify::is_configuration(&m.code))
        {
            return Err(self.message_error(mailbox, bad));
        }
        if !messages.is_empty() && messages.iter().all(|m| m.code == SERVER_BUSY) {
            return Ok(Attempt::Busy(
                messages.iter().find_map(ResponseMessage::back_off),
            ));
        }
        Ok(Attempt::Done(messages))
    }

    async fn send(
        &self,
        mailbox: &MailboxAddress,
        operation: &'static str,
        body: String,
    ) -> Result<Attempt, MailboxError> {
        let request = HttpRequest {
            url: self.config.url.clone(),
            headers: vec![
                (
                    "Content-Type".to_owned(),
                    "text/xml; charset=utf-8".to_owned(),
                ),
                ("Accept".to_owned(), "text/xml".to_owned()),
                // Routes the request to the mailbox's server; without it impersonated calls see
                // intermittent 500/503s (exchange.md §2.2).
                ("X-AnchorMailbox".to_owned(), mailbox.as_str().to_owned()),
                ("Authorization".to_owned(), self.config.auth.header_value()),
            ],
            body,
        };
        let started = Instant::now();
        let response =
            self.transport
                .post(request)
                .await
                .map_err(|e| MailboxError::Unreachable {
                    url: self.config.url.to_string(),
                    source: Box::new(e),
                })?;
        tracing::debug!(
            %mailbox,
            operation,
            status = response.status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "EWS call"
        );
        match response.status {
            200 => match parse_response(&response.body) {
                Ok(messages) => self.messages_attempt(mailbox, messages),
                Err(ResponseError::Fault(fault)) => self.fault_attempt(mailbox, fault),
                Err(e) => Err(MailboxError::Protocol {
                    message: format!("unreadable {operation} response"),
                    source: Some(Box::new(e)),
                }),
            },
            429 | 503 => Ok(Attempt::Busy(retry_after(&response))),
            401 | 403 => Err(MailboxError::Configuration {
                mailbox: mailbox.clone(),
                code: format!("HTTP {}", response.status),
                message: "Exchange rejected the service account; check its credentials and the \
                          ApplicationImpersonation role"
                    .to_owned(),
            }),
            status => match parse_fault_body(&response.body) {
                Some(fault) => self.fault_attempt(mailbox, fault),
                None => Err(MailboxError::Server {
                    code: format!("HTTP {status}"),
                    message: snippet(&response.body),
                    transient: status >= 500,
                }),
            },
        }
    }

    /// Runs a per-item operation over `inputs` in chunks of `batch`, one outcome per input in
    /// order. Items answered with ErrorServerBusy are re-sent on their own after the back-off
    /// (they were not processed), at most `max_retries` times; the rest keep their outcome.
    pub(super) async fn batched<T, R>(
        &self,
        mailbox: &MailboxAddress,
        operation: &'static str,
        inputs: &[T],
        batch: usize,
        build: impl Fn(&[T]) -> String,
        outcome: impl Fn(&T, &ResponseMessage) -> ItemOutcome<R>,
    ) -> Result<Vec<ItemOutcome<R>>, MailboxError>
    where
        T: Clone,
    {
        let mut all = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(batch.max(1)) {
            let mut results: Vec<Option<ItemOutcome<R>>> = chunk.iter().map(|_| None).collect();
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            let mut retries = 0;
            while !pending.is_empty() {
                let subset: Vec<T> = pending.iter().map(|&i| chunk[i].clone()).collect();
                let messages = self.call_raw(mailbox, operation, build(&subset)).await?;
                if messages.len() != subset.len() {
                    return Err(MailboxError::Protocol {
                        message: format!(
                            "{operation} returned {} response messages for {} items",
                            messages.len(),
                            subset.len()
                        ),
                        source: None,
                    });
                }
                let mut busy = Vec::new();
                let mut hint = None;
                for (&i, message) in pending.iter().zip(&messages) {
                    if message.code == SERVER_BUSY && retries < self.config.max_retries {
                        busy.push(i);
                        hint = hint.or(message.back_off());
                    } else {
                        results[i] = Some(outcome(&chunk[i], message));
                    }
                }
                if !busy.is_empty() {
                    retries += 1;
                    let wait = self.wait_for(hint);
                    tracing::warn!(%mailbox, operation, items = busy.len(), wait_ms = wait.as_millis() as u64, "EWS items throttled; backing off");
                    self.gate.hold(mailbox, wait);
                }
                pending = busy;
            }
            // Every index got an outcome: an item leaves `pending` only with one.
            all.extend(results.into_iter().flatten());
        }
        Ok(all)
    }

    pub(super) fn item_outcome<R>(
        &self,
        message: &ResponseMessage,
        id: Option<&ExchangeItemId>,
        ok: impl FnOnce(&ResponseMessage) -> ItemOutcome<R>,
    ) -> ItemOutcome<R> {
        if message.is_success() {
            ok(message)
        } else {
            Err(classify::item_error(
                &message.code,
                message.message_text.as_deref(),
                id,
                message.back_off(),
                self.config.default_back_off,
            ))
        }
    }

    /// Pages through FindItem on `folder` (restricted or not) and keeps the items whose stamp is
    /// in `wanted`, oldest first.
    pub(super) async fn list_stamped(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderRef,
        restriction: Option<Restriction>,
        wanted: &HashSet<&str>,
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut found = Vec::new();
        let mut offset = 0u32;
        loop {
            let op = FindItems {
                folder,
                restriction: restriction.clone(),
                page: Page {
                    offset,
                    max_entries: self.config.find_page_size.max(1),
                },
            };
            let message = self.call_ok(mailbox, &op).await?;
            for item in &message.items {
                if let Some(stamp) = item.crm_id().filter(|s| wanted.contains(s)) {
                    found.push(StampedItem {
                        stamp: CrmStamp::from_raw(stamp),
                        item: item_ref(item),
                    });
                }
            }
            let returned = u32::try_from(message.items.len()).unwrap_or(u32::MAX);
            let last = message.paging.is_none_or(|p| p.includes_last_item_in_range);
            if last || returned == 0 {
                break;
            }
            let next = offset.saturating_add(returned);
            // Trust the server's offset only when it moves forward, so paging always ends.
            offset = message
                .paging
                .and_then(|p| p.next_offset)
                .filter(|&o| o > offset)
                .unwrap_or(next);
        }
        Ok(found)
    }

    /// One page of SyncFolderItems on `folder`, as the core's folder changes.
    pub(super) async fn sync_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderRef,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        let op = SyncFolderItems {
            folder,
            sync_state: cursor.map(|c| c.0.as_str()),
            max_changes: self.config.sync_page_size,
        };
        let message = self.call_ok(mailbox, &op).await?;
        let sync = message.sync.ok_or_else(|| MailboxError::Protocol {
            message: "SyncFolderItems succeeded without a SyncState".to_owned(),
            source: None,
        })?;
        let changes = sync
            .changes
            .iter()
            .filter_map(|change| match change {
                SyncChange::Create(info) | SyncChange::Update(info) => Some(FolderChange::Upsert {
                    item: item_ref(info),
                    stamp: info.crm_id().map(CrmStamp::from_raw),
                }),
                SyncChange::Delete(id) => Some(FolderChange::Deleted {
                    id: ExchangeItemId::new(id.id.clone()),
                }),
                // Read state is not a mapped field of a contact or an event.
                SyncChange::ReadFlagChange { .. } => None,
            })
            .collect();
        Ok(FolderChanges {
            changes,
            cursor: FolderCursor(sync.sync_state),
            more: !sync.includes_last_item_in_range,
        })
    }

    async fn find_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<Option<FolderId>, MailboxError> {
        let op = FindFolder {
            parent: FolderRef::Distinguished(DistinguishedFolder::Contacts),
            display_name: self.config.folder_name.clone(),
        };
        let message = self.call_ok(mailbox, &op).await?;
        Ok(message
            .folders
            .first()
            .map(|f| FolderId::new(f.id.id.clone())))
    }
}

fn folder_ref(folder: &FolderId) -> FolderRef {
    FolderRef::Id(codec::FolderId::new(folder.as_str()))
}

pub(super) fn item_ref(info: &ItemInfo) -> ItemRef {
    ItemRef {
        id: ExchangeItemId::new(info.id.id.clone()),
        version: ExchangeVersion::new(info.id.change_key.clone().unwrap_or_default()),
    }
}

/// The first item of a successful write/read message, which every success must carry.
pub(super) fn returned_item(message: &ResponseMessage) -> ItemOutcome<ItemRef> {
    message
        .items
        .first()
        .map(item_ref)
        .ok_or_else(|| ItemError::Failed {
            code: "NoItemInResponse".to_owned(),
            message: "Exchange reported success without returning the item id".to_owned(),
            transient: false,
        })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Exchange).
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    response
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The start of an unexpected body for the error message (an IIS or proxy page, not item data).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl Mailbox for EwsMailbox {
    async fn ensure_contact_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<ContactFolder, MailboxError> {
        if let Some(id) = self.find_folder(mailbox).await? {
            return Ok(ContactFolder { id, created: false });
        }
        let op = CreateContactsFolder {
            parent: FolderRef::Distinguished(DistinguishedFolder::Contacts),
            display_name: self.config.folder_name.clone(),
        };
        let message = self.call_one(mailbox, &op).await?;
        if message.is_success() {
            return message
                .folders
                .first()
                .map(|f| ContactFolder {
                    id: FolderId::new(f.id.id.clone()),
                    created: true,
                })
                .ok_or_else(|| MailboxError::Protocol {
                    message: "CreateFolder succeeded without a FolderId".to_owned(),
                    source: None,
                });
        }
        if message.code == FOLDER_EXISTS {
            // Another run created it between our find and create.
            return self
                .find_folder(mailbox)
                .await?
                .map(|id| ContactFolder { id, created: false })
                .ok_or_else(|| MailboxError::Protocol {
                    message: format!(
                        "\"{}\" exists but FindFolder does not return it",
                        self.config.folder_name
                    ),
                    source: None,
                });
        }
        Err(self.message_error(mailbox, &message))
    }

    async fn find_stamped_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let values: Vec<&str> = stamps.iter().map(CrmStamp::as_str).collect();
        let wanted: HashSet<&str> = values.iter().copied().collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let restriction = if wanted.len() <= self.config.restriction_max_stamps {
            Restriction::crm_id_in(&values)
        } else {
            None
        };
        self.list_stamped(mailbox, &folder_ref(folder), restriction, &wanted)
            .await
    }

    async fn create_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        contacts: &[NewContact],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let folder = folder_ref(folder);
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "CreateItem",
            contacts,
            self.config.write_batch,
            |batch| {
                envelope.build(&CreateContacts {
                    folder: &folder,
                    contacts: batch,
                })
            },
            |_, message| self.item_outcome(message, None, returned_item),
        )
        .await
    }

    async fn update_contacts(
        &self,
        mailbox: &MailboxAddress,
        // An EWS id changes when its item moves, so an item that left the folder is already
        // ErrorItemNotFound by its old id.
        _folder: &FolderId,
        updates: &[ContactUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "UpdateItem",
            updates,
            self.config.write_batch,
            |batch| envelope.build(&UpdateContacts { updates: batch }),
            |update, message| self.item_outcome(message, Some(&update.item.id), returned_item),
        )
        .await
    }

    async fn delete_items(
        &self,
        mailbox: &MailboxAddress,
        // An EWS id changes when its item moves, so an item that left the folder is already
        // ErrorItemNotFound by its old id.
        _folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "DeleteItem",
            ids,
            self.config.write_batch,
            |batch| {
                let ids: Vec<codec::ItemId> = batch
                    .iter()
                    .map(|id| codec::ItemId::new(id.as_str(), None))
                    .collect();
                envelope.build(&DeleteItems { ids: &ids })
            },
            |id, message| self.item_outcome(message, Some(id), |_| Ok(())),
        )
        .await
    }

    async fn current_versions(
        &self,
        mailbox: &MailboxAddress,
        // An EWS id changes when its item moves, so an item that left the folder is already
        // ErrorItemNotFound by its old id.
        _folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "GetItem",
            ids,
            self.config.read_batch,
            |batch| {
                let ids: Vec<codec::ItemId> = batch
                    .iter()
                    .map(|id| codec::ItemId::new(id.as_str(), None))
                    .collect();
                envelope.build(&GetItems::stamps(&ids))
            },
            |id, message| self.item_outcome(message, Some(id), returned_item),
        )
        .await
    }

    async fn sync_contact_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        self.sync_folder(mailbox, &folder_ref(folder), cursor).await
    }

    fn max_batch(&self) -> usize {
        self.config.write_batch.max(1)
    }

    // The calendar methods live in `ews::calendar`.

    async fn calendar_view(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<CalendarEvent>, MailboxError> {
        self.calendar_view_impl(mailbox, window).await
    }

    async fn sync_calendar(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
        // SyncFolderItems reports the whole calendar folder; the core filters by window.
        _window: Window,
    ) -> Result<FolderChanges, MailboxError> {
        self.sync_calendar_impl(mailbox, cursor).await
    }

    async fn get_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<EventRead>>, MailboxError> {
        self.get_events_impl(mailbox, ids, window).await
    }

    async fn find_stamped_events(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        self.find_stamped_events_impl(mailbox, stamps).await
    }

    async fn create_events(
        &self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Result<Vec<ItemOutcome<CreatedEvent>>, MailboxError> {
        self.create_events_impl(mailbox, events).await
    }

    async fn update_events(
        &self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        self.update_events_impl(mailbox, updates).await
    }

    async fn cancel_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        self.cancel_events_impl(mailbox, ids).await
    }

    // Push lives in `ews::subscribe`.

    async fn subscribe_calendar(
        &self,
        mailbox: &MailboxAddress,
        request: &PushRequest,
    ) -> Result<Subscribed, MailboxError> {
        self.subscribe_calendar_impl(mailbox, request).await
    }
}
