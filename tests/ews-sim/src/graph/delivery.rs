//! Graph change notifications, the delivery side: the subscriptions `POST /v1.0/subscriptions`
//! made (`subscriptions`), routing of journalled mailbox changes to them, and one delivery
//! task per subscription that POSTs `changeNotificationCollection`s to its `notificationUrl`
//! and lifecycle notifications to its `lifecycleNotificationUrl`, as Microsoft Graph's webhook
//! channel does.
//!
//! Changes come from the mailboxes' event journals (`events`), the same table EWS push
//! subscriptions read, so Graph writes, EWS writes, meeting traffic and "user in Outlook"
//! actions all notify alike. Routing runs whenever the state lock is released
//! ([`on_release`]), so no code path can change a mailbox without Graph subscribers hearing.
//!
//! Delivery: changes arriving within `batch_window_ms` share one POST (at most
//! `max_notifications_per_post`). A POST that gets no 2xx within `notification_timeout_ms` is
//! retried with the same body after `retry_base_ms`, then after doubling gaps while the time
//! since its first try stays within `retry_window_minutes` (Graph: 4 hours); then it is
//! dropped. Each POST retries on its own schedule, so one failing notification does not hold
//! back later ones. Every attempt is logged as an outgoing request record.
//!
//! The task holds no lock while it waits or posts: it plans under the lock, sends, then
//! records under the lock.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::events::{EventKind, EventObject, MailboxEvent};
use crate::graph::ids::graph_item_id;
use crate::log::{Direction, Protocol, PushDelivery, RequestRecord};
use crate::model::{ChangeKey, DistinguishedFolder, FolderId, ItemId};
use crate::sim::SimHandle;
use crate::state::SimState;
use crate::store::Mailbox;

/// `changeType` values (the CSDL's `microsoft.graph.changeType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    pub const ALL: [ChangeType; 3] = [
        ChangeType::Created,
        ChangeType::Updated,
        ChangeType::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// `lifecycleEvent` values (the CSDL's `microsoft.graph.lifecycleEventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    ReauthorizationRequired,
    SubscriptionRemoved,
    Missed,
}

impl LifecycleEvent {
    pub const ALL: [LifecycleEvent; 3] = [
        LifecycleEvent::ReauthorizationRequired,
        LifecycleEvent::SubscriptionRemoved,
        LifecycleEvent::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::ReauthorizationRequired => "reauthorizationRequired",
            LifecycleEvent::SubscriptionRemoved => "subscriptionRemoved",
            LifecycleEvent::Missed => "missed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The folder a subscription's resource names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Watched {
    /// `/users/{id}/events` and `/users/{id}/calendar/events`: the default calendar.
    Events,
    /// `/users/{id}/contacts`: the default Contacts folder.
    Contacts,
    /// `/users/{id}/contactFolders/{id}/contacts`.
    ContactFolder { folder: FolderId },
}

impl Watched {
    fn folder(&self, mb: &Mailbox) -> Option<FolderId> {
        match self {
            Watched::Events => mb.folder_id(DistinguishedFolder::Calendar).cloned(),
            Watched::Contacts => mb.folder_id(DistinguishedFolder::Contacts).cloned(),
            Watched::ContactFolder { folder } => Some(folder.clone()),
        }
    }

    fn odata_type(&self) -> &'static str {
        match self {
            Watched::Events => "#Microsoft.Graph.Event",
            Watched::Contacts | Watched::ContactFolder { .. } => "#Microsoft.Graph.Contact",
        }
    }

    /// The entity-set segment of notification resources (`Users/{u}/Events/{id}`).
    fn segment(&self) -> &'static str {
        match self {
            Watched::Events => "Events",
            Watched::Contacts | Watched::ContactFolder { .. } => "Contacts",
        }
    }
}

/// A change routed to a subscription, waiting to be batched.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub change: ChangeType,
    pub item: ItemId,
    pub change_key: ChangeKey,
}

/// Why and when a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// What an outgoing POST carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutgoingKind {
    Changes,
    Lifecycle,
}

/// One POST being delivered (first try and retries send the same body).
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    number: u64,
    kind: OutgoingKind,
    url: String,
    body: String,
    /// `changeType`s in order, or the one lifecycle event.
    labels: Vec<String>,
    attempts: u32,
    first_try: Option<Instant>,
    last_gap: Option<Duration>,
    due: Instant,
}

/// What `subscriptions` hands over to create a subscription (all checks done).
#[derive(Clone, Debug)]
pub(crate) struct NewSubscription {
    pub id: String,
    pub mailbox: String,
    pub mailbox_key: String,
    pub resource: String,
    pub watched: Watched,
    pub change_types: Vec<ChangeType>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: DateTime<Utc>,
    pub application_id: String,
    pub tenant: String,
}

/// One Graph subscription.
#[derive(Debug)]
pub struct GraphSubscription {
    pub(crate) id: String,
    /// Creation order, for listings.
    pub(crate) number: u64,
    pub(crate) mailbox: String,
    pub(crate) mailbox_key: String,
    pub(crate) resource: String,
    watched: Watched,
    pub(crate) change_types: Vec<ChangeType>,
    pub(crate) notification_url: String,
    pub(crate) lifecycle_url: Option<String>,
    pub(crate) client_state: Option<String>,
    pub(crate) expiration: DateTime<Utc>,
    pub(crate) application_id: String,
    /// The service principal that created it (app-only: derived from the application).
    pub(crate) creator_id: String,
    pub(crate) tenant_id: String,
    created: DateTime<Utc>,
    /// Journal position up to which changes were routed.
    cursor: u64,
    pending: VecDeque<Change>,
    pending_since: Option<Instant>,
    outbox: VecDeque<Outgoing>,
    /// A `reauthorizationRequired` went out and the app has not reauthorized yet.
    reauthorization: Option<(Instant, DateTime<Utc>)>,
    /// Changes were lost while delivery was paused: `missed` goes out on resume.
    missed: bool,
    pub(crate) removed: Option<Removal>,
    notifications_delivered: u64,
    notifications_dropped: u64,
    changes_lost: u64,
    failed_attempts: u64,
    lifecycle_delivered: u64,
    wake: Arc<Notify>,
    task_started: bool,
}

impl GraphSubscription {
    pub fn is_active(&self) -> bool {
        self.removed.is_none()
    }

    /// Clears a pending reauthorization (`/reauthorize`, or a renewal).
    pub(crate) fn reauthorized(&mut self) {
        self.reauthorization = None;
    }

    /// Graph asks the app to reauthorize: delivery continues for the grace period, then
    /// pauses until [`GraphSubscription::reauthorized`]. `at` is the simulator clock.
    pub(crate) fn require_reauthorization(&mut self, at: DateTime<Utc>) {
        self.reauthorization.get_or_insert((Instant::now(), at));
    }

    pub fn info(&self) -> GraphSubscriptionInfo {
        GraphSubscriptionInfo {
            id: self.id.clone(),
            mailbox: self.mailbox.clone(),
            resource: self.resource.clone(),
            watched: self.watched.clone(),
            change_types: self.change_types.clone(),
            notification_url: self.notification_url.clone(),
            lifecycle_notification_url: self.lifecycle_url.clone(),
            client_state: self.client_state.clone(),
            expiration_date_time: self.expiration,
            application_id: self.application_id.clone(),
            tenant_id: self.tenant_id.clone(),
            created: self.created,
            active: self.is_active(),
            removed: self.removed.clone(),
            reauthorization_required_since: self.reauthorization.map(|(_, t)| t),
            pending_changes: self.pending.len()
                + self
                    .outbox
                    .iter()
                    .filter(|o| o.kind == OutgoingKind::Changes)
                    .map(|o| o.labels.len())
                    .sum::<usize>(),
            notifications_delivered: self.notifications_delivered,
            notifications_dropped: self.notifications_dropped,
            changes_lost: self.changes_lost,
            failed_attempts: self.failed_attempts,
            lifecycle_delivered: self.lifecycle_delivered,
        }
    }

    /// The subscription entity as the API shows it: every property the CSDL subset declares
    /// for `microsoft.graph.subscription`, unsupported ones null as on Graph.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self
                .change_types
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(","),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": fmt_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": null,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }

    /// Ends the subscription: nothing more is delivered for it (pending changes go), except
    /// lifecycle notifications already queued and, with `lifecycle`, a `subscriptionRemoved`.
    /// False if it had already ended.
    pub(crate) fn remove(&mut self, at: DateTime<Utc>, reason: &str, lifecycle: bool) -> bool {
        if self.removed.is_some() {
            return false;
        }
        self.removed = Some(Removal {
            at,
            reason: reason.to_string(),
        });
        self.pending.clear();
        self.pending_since = None;
        self.outbox.retain(|o| o.kind == OutgoingKind::Lifecycle);
        if lifecycle {
            self.queue_lifecycle(LifecycleEvent::SubscriptionRemoved, Instant::now());
        }
        self.wake.notify_one();
        true
    }

    /// Queues a lifecycle notification; false when the subscription has no
    /// `lifecycleNotificationUrl` (Graph then sends none).
    pub(crate) fn queue_lifecycle(&mut self, event: LifecycleEvent, now: Instant) -> bool {
        let Some(url) = self.lifecycle_url.clone() else {
            return false;
        };
        let body = serde_json::json!({
            "value": [{
                "subscriptionId": self.id,
                "subscriptionExpirationDateTime": fmt_time(self.expiration),
                "tenantId": self.tenant_id,
                "clientState": self.client_state,
                "lifecycleEvent": event.as_str(),
            }]
        });
        self.enqueue(
            OutgoingKind::Lifecycle,
            url,
            body.to_string(),
            vec![event.as_str().to_string()],
            now,
        );
        true
    }

    fn enqueue(
        &mut self,
        kind: OutgoingKind,
        url: String,
        body: String,
        labels: Vec<String>,
        now: Instant,
    ) {
        let number = self.outbox.back().map_or(1, |o| o.number + 1);
        self.outbox.push_back(Outgoing {
            number,
            kind,
            url,
            body,
            labels,
            attempts: 0,
            first_try: None,
            last_gap: None,
            due: now,
        });
        self.wake.notify_one();
    }

    /// Turns the pending changes into POSTs of at most `cap` notifications each.
    fn flush(&mut self, cap: usize, now: Instant) {
        let cap = cap.max(1);
        while !self.pending.is_empty() {
            let n = cap.min(self.pending.len());
            let batch: Vec<Change> = self.pending.drain(..n).collect();
            let body = self.changes_body(&batch);
            let labels = batch
                .iter()
                .map(|c| c.change.as_str().to_string())
                .collect();
            let url = self.notification_url.clone();
            self.enqueue(OutgoingKind::Changes, url, body, labels, now);
        }
        self.pending_since = None;
    }

    /// A `changeNotificationCollection` (Outlook shape: no resource data beyond the id).
    fn changes_body(&self, batch: &[Change]) -> String {
        let value: Vec<serde_json::Value> = batch
            .iter()
            .map(|c| {
                let id = graph_item_id(&c.item);
                let resource = format!("Users/{}/{}/{id}", self.mailbox, self.watched.segment());
                serde_json::json!({
                    "subscriptionId": self.id,
                    "subscriptionExpirationDateTime": fmt_time(self.expiration),
                    "changeType": c.change.as_str(),
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": self.watched.odata_type(),
                        "@odata.id": resource,
                        "@odata.etag": format!("W/\"{}\"", c.change_key.as_str()),
                        "id": id,
                    },
                    "clientState": self.client_state,
                    "tenantId": self.tenant_id,
                })
            })
            .collect();
        serde_json::json!({ "value": value }).to_string()
    }
}

/// A subscription as `SimHandle::graph_subscriptions` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct GraphSubscriptionInfo {
    pub id: String,
    pub mailbox: String,
    /// As the client sent it.
    pub resource: String,
    pub watched: Watched,
    pub change_types: Vec<ChangeType>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration_date_time: DateTime<Utc>,
    pub application_id: String,
    pub tenant_id: String,
    /// Simulator clock.
    pub created: DateTime<Utc>,
    /// False once deleted, expired or removed.
    pub active: bool,
    pub removed: Option<Removal>,
    /// When a `reauthorizationRequired` went out that the app has not answered yet.
    pub reauthorization_required_since: Option<DateTime<Utc>>,
    /// Changes routed and not yet acknowledged.
    pub pending_changes: usize,
    /// Change-notification POSTs acknowledged with 2xx.
    pub notifications_delivered: u64,
    /// Change-notification POSTs given up after the retry window.
    pub notifications_dropped: u64,
    /// Changes never sent: delivery paused, or reauthorization overdue.
    pub changes_lost: u64,
    /// Attempts without a 2xx (change and lifecycle POSTs).
    pub failed_attempts: u64,
    pub lifecycle_delivered: u64,
}

/// All Graph subscriptions and the delivery switches.
#[derive(Debug, Default)]
pub struct GraphPushState {
    pub(crate) subs: BTreeMap<String, GraphSubscription>,
    next_number: u64,
    /// Lower-cased mailboxes whose changes are not delivered (`graph_pause_delivery`).
    pub(crate) paused: HashSet<String>,
}

impl GraphPushState {
    /// Every subscription made since the last reset (active or not), oldest first.
    pub fn list(&self) -> Vec<GraphSubscriptionInfo> {
        let mut v: Vec<&GraphSubscription> = self.subs.values().collect();
        v.sort_by_key(|s| s.number);
        v.into_iter().map(GraphSubscription::info).collect()
    }

    pub(crate) fn active(&self, id: &str) -> Option<&GraphSubscription> {
        self.subs.get(id).filter(|s| s.is_active())
    }

    pub(crate) fn active_mut(&mut self, id: &str) -> Option<&mut GraphSubscription> {
        self.subs.get_mut(id).filter(|s| s.is_active())
    }

    pub(crate) fn active_for(&self, mailbox_key: &str) -> usize {
        self.subs
            .values()
            .filter(|s| s.is_active() && s.mailbox_key == mailbox_key)
            .count()
    }

    /// Creates a subscription whose routing starts at journal position `cursor`.
    pub(crate) fn insert(&mut self, new: NewSubscription, cursor: u64, now: DateTime<Utc>) {
        self.next_number += 1;
        let sub = GraphSubscription {
            number: self.next_number,
            creator_id: principal_id(&new.tenant, &new.application_id),
            tenant_id: tenant_guid(&new.tenant),
            id: new.id,
            mailbox: new.mailbox,
            mailbox_key: new.mailbox_key,
            resource: new.resource,
            watched: new.watched,
            change_types: new.change_types,
            notification_url: new.notification_url,
            lifecycle_url: new.lifecycle_url,
            client_state: new.client_state,
            expiration: new.expiration,
            application_id: new.application_id,
            created: now,
            cursor,
            pending: VecDeque::new(),
            pending_since: None,
            outbox: VecDeque::new(),
            reauthorization: None,
            missed: false,
            removed: None,
            notifications_delivered: 0,
            notifications_dropped: 0,
            changes_lost: 0,
            failed_attempts: 0,
            lifecycle_delivered: 0,
            wake: Arc::new(Notify::new()),
            task_started: false,
        };
        self.subs.insert(sub.id.clone(), sub);
    }

    /// Resumes or pauses delivery for a mailbox; on resume, subscriptions that lost changes
    /// get `missed`. Returns how many `missed` notifications were queued.
    pub(crate) fn set_paused(&mut self, mailbox_key: &str, paused: bool) -> usize {
        if paused {
            self.paused.insert(mailbox_key.to_string());
            return 0;
        }
        self.paused.remove(mailbox_key);
        let now = Instant::now();
        let mut n = 0;
        for sub in self
            .subs
            .values_mut()
            .filter(|s| s.is_active() && s.mailbox_key == mailbox_key && s.missed)
        {
            sub.missed = false;
            if sub.queue_lifecycle(LifecycleEvent::Missed, now) {
                n += 1;
            }
        }
        n
    }

    pub(crate) fn wake_all(&self) {
        for s in self.subs.values() {
            s.wake.notify_one();
        }
    }

    /// Forgets every subscription (simulator reset or stop), ending their tasks.
    pub(crate) fn stop_all(&mut self) {
        self.wake_all();
        self.subs.clear();
        self.paused.clear();
    }

    fn take_unstarted(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.subs.values_mut() {
            if !s.task_started && (s.is_active() || !s.outbox.is_empty()) {
                s.task_started = true;
                out.push(s.id.clone());
            }
        }
        out
    }
}

/// Graph's `DateTimeOffset` shape in UTC (`2026-02-06T10:00:00Z`, fractions when present).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A GUID derived from a name (stable across runs), for ids Graph shows as GUIDs.
fn derived_guid(kind: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 8 (custom), RFC 9562 variant: a well-formed GUID that is not random.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The tenant's id: the tenant itself when it is a GUID, else one derived from its name
/// (`tenantId` is an `Edm.Guid` in notifications).
pub fn tenant_guid(tenant: &str) -> String {
    match uuid::Uuid::parse_str(tenant.trim()) {
        Ok(g) => g.to_string(),
        Err(_) => derived_guid("tenant", tenant),
    }
}

/// The app's service principal object id in the tenant (`creatorId` of app-only
/// subscriptions).
fn principal_id(tenant: &str, application_id: &str) -> String {
    derived_guid("principal", &format!("{tenant}/{application_id}"))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v.max(1))
}

/// `base + d`, saturating instead of panicking on absurd configurations.
fn later(base: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    base.checked_add(d)
        .or_else(|| base.checked_add(YEAR))
        .unwrap_or(base)
}

/// The Graph changes one journalled event means for a watched folder. Moves change the id
/// (as in Exchange): out of the folder is `deleted` (old id), into it `created` (new id).
fn changes_of(ev: &MailboxEvent, folder: &FolderId) -> Vec<Change> {
    let EventObject::Item { id, change_key } = &ev.object else {
        return Vec::new();
    };
    let here = ev.parent.id == *folder;
    let change = |change: ChangeType, item: &ItemId, ck: &ChangeKey| Change {
        change,
        item: item.clone(),
        change_key: ck.clone(),
    };
    match ev.kind {
        EventKind::CreatedEvent if here => vec![change(ChangeType::Created, id, change_key)],
        EventKind::ModifiedEvent if here => vec![change(ChangeType::Updated, id, change_key)],
        EventKind::DeletedEvent if here => vec![change(ChangeType::Deleted, id, change_key)],
        EventKind::MovedEvent | EventKind::CopiedEvent => {
            let mut v = Vec::new();
            if ev.kind == EventKind::MovedEvent
                && let Some((EventObject::Item { id, change_key }, from)) = &ev.old
                && from.id == *folder
            {
                v.push(change(ChangeType::Deleted, id, change_key));
            }
            if here {
                v.push(change(ChangeType::Created, id, change_key));
            }
            v
        }
        _ => Vec::new(),
    }
}

/// Runs on every release of the state lock: expires subscriptions past their
/// `expirationDateTime` (simulator clock), routes new journal events, and starts delivery
/// tasks for new subscriptions. Cheap when there are none.
pub(crate) fn on_release(st: &mut SimState, handle: &SimHandle) {
    if st.graph_push.subs.is_empty() {
        return;
    }
    settle(st);
    // Tasks need a runtime; without one they start at the next release inside one.
    if tokio::runtime::Handle::try_current().is_ok() {
        for id in st.graph_push.take_unstarted() {
            tokio::spawn(run(handle.clone(), id));
        }
    }
}

fn settle(st: &mut SimState) {
    let SimState {
        store,
        graph_push,
        config,
        ..
    } = st;
    let GraphPushState { subs, paused, .. } = graph_push;
    let cfg = &config.graph_push;
    let now = Instant::now();
    let sim_now = store.seq.now_precise();
    let grace = ms(cfg.minute_ms)
        .saturating_mul(u32::try_from(cfg.reauthorization_grace_minutes).unwrap_or(u32::MAX));
    for sub in subs.values_mut().filter(|s| s.is_active()) {
        if sub.expiration <= sim_now {
            sub.remove(sim_now, "expired", true);
            continue;
        }
        let Some(mb) = store.mailboxes.get(&sub.mailbox_key) else {
            continue;
        };
        let position = mb.events.position();
        if position == sub.cursor {
            continue;
        }
        let Some(folder) = sub.watched.folder(mb) else {
            sub.cursor = position;
            continue;
        };
        let is_paused = paused.contains(&sub.mailbox_key);
        // Graph keeps notifying for a while after asking to reauthorize, then pauses; what
        // changes meanwhile is lost (the app must catch up with delta).
        let lapsed = sub
            .reauthorization
            .is_some_and(|(since, _)| later(since, grace) <= now);
        let mut routed = false;
        for ev in mb.events.after(sub.cursor) {
            for c in changes_of(ev, &folder) {
                if !sub.change_types.contains(&c.change) {
                    continue;
                }
                if is_paused || lapsed {
                    sub.changes_lost += 1;
                    sub.missed |= is_paused;
                    continue;
                }
                sub.pending.push_back(c);
                routed = true;
            }
        }
        sub.cursor = position;
        if routed {
            sub.pending_since.get_or_insert(now);
            sub.wake.notify_one();
        }
    }
}

// ---------------------------------------------------------------- the delivery task

enum Step {
    Stop,
    /// Sleep until `until` (if any) or until woken.
    Wait {
        until: Option<Instant>,
        wake: Arc<Notify>,
    },
    Send(Attempt),
}

/// One POST, planned under the lock.
struct Attempt {
    seq: u64,
    started: DateTime<Utc>,
    number: u64,
    kind: OutgoingKind,
    url: String,
    body: String,
    attempt: u32,
    labels: Vec<String>,
    mailbox: String,
    timeout: Duration,
}

/// Runs until the subscription is gone and has nothing left to send.
async fn run(handle: SimHandle, id: String) {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            let mut st = handle.lock();
            let at = st.store.seq.now();
            if let Some(s) = st.graph_push.subs.get_mut(&id) {
                s.remove(at, &format!("cannot build an HTTP client: {e}"), false);
                s.outbox.clear();
            }
            return;
        }
    };
    loop {
        let step = {
            let mut st = handle.lock();
            plan(&mut st, &id)
        };
        match step {
            Step::Stop => return,
            Step::Wait { until, wake } => match until {
                Some(t) => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => wake.notified().await,
            },
            Step::Send(attempt) => {
                let answer = post(&client, &attempt).await;
                let mut st = handle.lock();
                finish(&mut st, &id, attempt, answer);
            }
        }
    }
}

fn plan(st: &mut SimState, id: &str) -> Step {
    let SimState {
        store,
        graph_push,
        config,
        next_request_seq,
        ..
    } = st;
    let cfg = &config.graph_push;
    let now = Instant::now();
    let sim_now = store.seq.now_precise();
    let Some(sub) = graph_push.subs.get_mut(id) else {
        return Step::Stop;
    };
    let mut until: Option<Instant> = None;
    let mut wake_at = |t: Instant| until = Some(until.map_or(t, |u| u.min(t)));
    if sub.is_active() {
        if sub.expiration <= sim_now {
            sub.remove(sim_now, "expired", true);
        } else {
            // Wake at expiry to remove it on time even if nothing else happens.
            let left = (sub.expiration - sim_now).to_std().unwrap_or_default();
            wake_at(later(now, left));
        }
    }
    if sub.is_active() && !sub.pending.is_empty() {
        let flush_at = later(
            sub.pending_since.unwrap_or(now),
            Duration::from_millis(cfg.batch_window_ms),
        );
        if now >= flush_at || sub.pending.len() >= cfg.max_notifications_per_post.max(1) {
            sub.flush(cfg.max_notifications_per_post, now);
        } else {
            wake_at(flush_at);
        }
    }
    if !sub.is_active() && sub.outbox.is_empty() {
        return Step::Stop;
    }
    let Some(next) = sub.outbox.iter_mut().min_by_key(|o| (o.due, o.number)) else {
        return Step::Wait {
            until,
            wake: sub.wake.clone(),
        };
    };
    if next.due > now {
        wake_at(next.due);
        return Step::Wait {
            until,
            wake: sub.wake.clone(),
        };
    }
    next.attempts += 1;
    next.first_try.get_or_insert(now);
    *next_request_seq += 1;
    Step::Send(Attempt {
        seq: *next_request_seq,
        started: store.seq.now_precise(),
        number: next.number,
        kind: next.kind,
        url: next.url.clone(),
        body: next.body.clone(),
        attempt: next.attempts,
        labels: next.labels.clone(),
        mailbox: sub.mailbox.clone(),
        timeout: ms(cfg.notification_timeout_ms),
    })
}

/// What came back: the status (0 when none) and why it does not count as delivered.
struct Answer {
    http_status: u16,
    error: Option<String>,
}

async fn post(client: &reqwest::Client, a: &Attempt) -> Answer {
    let sent = client
        .post(&a.url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header(USER_AGENT, "Microsoft-Graph-ChangeNotifications")
        .timeout(a.timeout)
        .body(a.body.clone())
        .send()
        .await;
    match sent {
        Err(e) if e.is_timeout() => Answer {
            http_status: 0,
            error: Some(format!("no answer within {} ms", a.timeout.as_millis())),
        },
        Err(e) => Answer {
            http_status: 0,
            error: Some(format!("no answer: {e}")),
        },
        Ok(r) => {
            let http_status = r.status().as_u16();
            Answer {
                http_status,
                error: (!r.status().is_success()).then(|| format!("HTTP {http_status}")),
            }
        }
    }
}

/// The log record of an outgoing Graph POST (notification, lifecycle or validation).
pub(crate) fn outgoing_record(
    seq: u64,
    time: DateTime<Utc>,
    operation: &str,
    mailbox: &str,
    body: String,
    http_status: u16,
    delivery: PushDelivery,
) -> RequestRecord {
    RequestRecord {
        seq,
        direction: Direction::Outgoing,
        protocol: Protocol::Graph,
        time,
        mailbox: Some(mailbox.to_string()),
        operation: Some(operation.to_string()),
        method: Some("POST".into()),
        path: Some(delivery.url.clone()),
        item_count: delivery.events.len(),
        http_status,
        body,
        push: Some(delivery),
        ..RequestRecord::default()
    }
}

/// Records an attempt's outcome and schedules a retry or gives up.
fn finish(st: &mut SimState, id: &str, a: Attempt, answer: Answer) {
    let SimState {
        graph_push,
        config,
        log,
        ..
    } = st;
    let cfg = &config.graph_push;
    // Gone (the simulator was reset): the attempt belongs to a log that no longer exists.
    let Some(sub) = graph_push.subs.get_mut(id) else {
        return;
    };
    let operation = match a.kind {
        OutgoingKind::Changes => "notification",
        OutgoingKind::Lifecycle => "lifecycle",
    };
    log.push(outgoing_record(
        a.seq,
        a.started,
        operation,
        &a.mailbox,
        a.body,
        answer.http_status,
        PushDelivery {
            subscription_id: id.to_string(),
            url: a.url,
            attempt: a.attempt,
            events: a.labels,
            error: answer.error.clone(),
        },
    ));
    // Cleared while the POST was under way (the subscription was removed): nothing to do.
    let Some(pos) = sub.outbox.iter().position(|o| o.number == a.number) else {
        return;
    };
    let now = Instant::now();
    if answer.error.is_none() {
        sub.outbox.remove(pos);
        match a.kind {
            OutgoingKind::Changes => sub.notifications_delivered += 1,
            OutgoingKind::Lifecycle => sub.lifecycle_delivered += 1,
        }
        return;
    }
    sub.failed_attempts += 1;
    let Some(o) = sub.outbox.get_mut(pos) else {
        return;
    };
    let gap = o
        .last_gap
        .map_or(ms(cfg.retry_base_ms), |g| g.saturating_mul(2));
    let window = ms(cfg.minute_ms)
        .saturating_mul(u32::try_from(cfg.retry_window_minutes).unwrap_or(u32::MAX));
    let elapsed = o
        .first_try
        .map_or(Duration::ZERO, |t| now.duration_since(t));
    if elapsed.saturating_add(gap) > window {
        // Graph gives up on this notification; it cannot be recovered.
        sub.outbox.remove(pos);
        if a.kind == OutgoingKind::Changes {
            sub.notifications_dropped += 1;
        }
        return;
    }
    o.last_gap = Some(gap);
    o.due = later(now, gap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ParentRef;

    fn item_event(kind: EventKind, id: &str, parent: &str, old: Option<&str>) -> MailboxEvent {
        let obj = |id: &str| EventObject::Item {
            id: ItemId(id.into()),
            change_key: ChangeKey(format!("ck-{id}")),
        };
        let pref = |f: &str| ParentRef {
            id: FolderId(f.into()),
            change_key: None,
        };
        MailboxEvent {
            counter: 1,
            epoch: 0,
            time: Utc::now(),
            kind,
            object: obj(id),
            parent: pref(parent),
            old: old.map(|f| (obj("old"), pref(f))),
        }
    }

    fn kinds(v: &[Change]) -> Vec<(ChangeType, &str)> {
        v.iter().map(|c| (c.change, c.item.as_str())).collect()
    }

    #[test]
    fn journal_events_map_to_graph_change_types() {
        let cal = FolderId("cal".into());
        let ev = |k, p, old| changes_of(&item_event(k, "new", p, old), &cal);
        assert_eq!(
            kinds(&ev(EventKind::CreatedEvent, "cal", None)),
            [(ChangeType::Created, "new")]
        );
        assert_eq!(
            kinds(&ev(EventKind::ModifiedEvent, "cal", None)),
            [(ChangeType::Updated, "new")]
        );
        assert_eq!(
            kinds(&ev(EventKind::DeletedEvent, "cal", None)),
            [(ChangeType::Deleted, "new")]
        );
        // Another folder is not news; a move out is a delete of the old id, a move in a
        // create of the new one.
        assert!(ev(EventKind::CreatedEvent, "other", None).is_empty());
        assert_eq!(
            kinds(&ev(EventKind::MovedEvent, "deleted", Some("cal"))),
            [(ChangeType::Deleted, "old")]
        );
        assert_eq!(
            kinds(&ev(EventKind::MovedEvent, "cal", Some("other"))),
            [(ChangeType::Created, "new")]
        );
    }

    #[test]
    fn tenant_ids_are_guids_and_stable() {
        let a = tenant_guid("contoso");
        assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a}");
        assert_eq!(a, tenant_guid("Contoso"));
        assert_ne!(a, tenant_guid("fabrikam"));
        let g = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
        assert_eq!(tenant_guid(g), g);
        assert_eq!(ChangeType::parse("updated"), Some(ChangeType::Updated));
        assert_eq!(ChangeType::parse("Updated"), None);
        assert_eq!(
            LifecycleEvent::parse("missed").map(LifecycleEvent::as_str),
            Some("missed")
        );
    }
}
