//! Push notifications (exchange.md §2.9): the `Subscribe` operation with
//! `PushSubscriptionRequest`, the subscriptions it creates, routing of mailbox events to them,
//! and the SendNotification XML the delivery task (`push_delivery`) POSTs.
//!
//! Events come from the mailboxes' event tables (`events`), which every mutation fills, so
//! EWS writes, meeting traffic between hosted mailboxes and "user in Outlook" actions all
//! notify alike. Routing runs whenever the state lock is released (`SimHandle::lock`), so no
//! code path can change a mailbox without its subscribers hearing of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::calendar::fmt_utc;
use crate::config::PushConfig;
use crate::events::{EventKind, EventObject, MailboxEvent, ParentRef, WatermarkError};
use crate::model::FolderId;
use crate::ops::{OpCtx, OpFault, OpOutput, Responses, folder_ref, injected, mailbox};
use crate::render::item_id_el;
use crate::state::SimState;
use crate::store::{FolderRef, Store};
use crate::xml::{Element, NS_M, NS_SOAP, NS_T, esc, text_el};

/// `SOAPAction` of the notification service (notification-service.wsdl).
pub const SEND_NOTIFICATION_ACTION: &str =
    "http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification";

/// Where a subscription is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SubscriptionState {
    Alive,
    /// The subscriber answered `Unsubscribe`.
    Unsubscribed {
        at: DateTime<Utc>,
    },
    /// The server stopped calling: retries exhausted, or dropped through the admin API.
    Dropped {
        at: DateTime<Utc>,
        reason: String,
    },
}

/// An event waiting for delivery, with the watermark it carries.
#[derive(Clone, Debug)]
pub(crate) struct QueuedEvent {
    pub event: MailboxEvent,
    pub watermark: String,
}

/// The notification being delivered: its first try and every retry send the same body.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub body: String,
    /// Element names of its events (`StatusEvent` for a status notification).
    pub events: Vec<String>,
    /// Watermark of its last event: `PreviousWatermark` of the next notification.
    pub last_watermark: String,
    pub attempts: u32,
    /// The gap before the latest retry (the next one doubles it).
    pub last_gap: Option<Duration>,
    pub retry_at: Option<Instant>,
}

impl InFlight {
    fn is_status(&self) -> bool {
        self.events.iter().all(|e| e == "StatusEvent")
    }
}

/// One push subscription.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) id: String,
    /// Creation order, for listings.
    pub(crate) number: u64,
    pub(crate) mailbox: String,
    pub(crate) mailbox_key: String,
    pub(crate) folders: Vec<FolderId>,
    pub(crate) all_folders: bool,
    pub(crate) event_types: Vec<EventKind>,
    pub(crate) url: String,
    pub(crate) status_frequency: u32,
    pub(crate) caller_data: Option<String>,
    /// `RequestServerVersion` of the Subscribe: notifications are written for it.
    pub(crate) server_version: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) start_watermark: String,
    /// Position in the mailbox's event table up to which events were routed.
    pub(crate) cursor: u64,
    pub(crate) queue: VecDeque<QueuedEvent>,
    pub(crate) in_flight: Option<InFlight>,
    /// Watermark of the last notification the subscriber acknowledged.
    pub(crate) last_watermark: String,
    /// When the last notification was acknowledged (or the subscription made): the status
    /// timer counts idle StatusFrequency minutes from here.
    pub(crate) last_activity: Instant,
    pub(crate) last_attempt: Option<DateTime<Utc>>,
    pub(crate) last_success: Option<DateTime<Utc>>,
    pub(crate) failures: u32,
    pub(crate) total_failures: u32,
    pub(crate) notifications_delivered: u64,
    pub(crate) events_delivered: u64,
    pub(crate) status_events_delivered: u64,
    pub(crate) state: SubscriptionState,
    pub(crate) wake: Arc<Notify>,
    pub(crate) task_started: bool,
}

impl Subscription {
    pub fn is_alive(&self) -> bool {
        self.state == SubscriptionState::Alive
    }

    fn matches(&self, ev: &MailboxEvent, folder_events: bool) -> bool {
        if ev.object.is_folder() && !folder_events {
            return false;
        }
        if !self.event_types.contains(&ev.kind) {
            return false;
        }
        if self.all_folders {
            return true;
        }
        let watched = |f: &FolderId| self.folders.contains(f);
        // A move out of a watched folder is news there too; a folder event also reaches
        // subscribers of the folder itself (its content changed).
        watched(&ev.parent.id)
            || ev.old.as_ref().is_some_and(|(_, p)| watched(&p.id))
            || matches!(&ev.object, EventObject::Folder { id, .. } if watched(id))
    }

    pub fn info(&self) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id.clone(),
            mailbox: self.mailbox.clone(),
            folders: self.folders.clone(),
            subscribe_to_all_folders: self.all_folders,
            event_types: self.event_types.clone(),
            url: self.url.clone(),
            status_frequency: self.status_frequency,
            caller_data: self.caller_data.clone(),
            created: self.created,
            start_watermark: self.start_watermark.clone(),
            last_watermark: self.last_watermark.clone(),
            last_attempt: self.last_attempt,
            last_success: self.last_success,
            failures: self.failures,
            total_failures: self.total_failures,
            notifications_delivered: self.notifications_delivered,
            events_delivered: self.events_delivered,
            status_events_delivered: self.status_events_delivered,
            pending_events: self.queue.len()
                + self
                    .in_flight
                    .as_ref()
                    .filter(|f| !f.is_status())
                    .map_or(0, |f| f.events.len()),
            alive: self.is_alive(),
            state: self.state.clone(),
        }
    }
}

/// A subscription as the admin API and `SimHandle::subscriptions` show it.
#[derive(Clone, Debug, Serialize)]
pub struct SubscriptionInfo {
    pub id: String,
    pub mailbox: String,
    pub folders: Vec<FolderId>,
    pub subscribe_to_all_folders: bool,
    pub event_types: Vec<EventKind>,
    pub url: String,
    /// Minutes.
    pub status_frequency: u32,
    pub caller_data: Option<String>,
    /// Simulator clock, as are the other times.
    pub created: DateTime<Utc>,
    /// The watermark the Subscribe answered with.
    pub start_watermark: String,
    /// Watermark of the last acknowledged notification.
    pub last_watermark: String,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Failed attempts since the last acknowledged one.
    pub failures: u32,
    pub total_failures: u32,
    /// Notifications acknowledged (`OK` or `Unsubscribe`), events and status ones.
    pub notifications_delivered: u64,
    pub events_delivered: u64,
    pub status_events_delivered: u64,
    /// Events routed to it and not acknowledged yet.
    pub pending_events: usize,
    pub alive: bool,
    #[serde(flatten)]
    pub state: SubscriptionState,
}

/// All push subscriptions.
#[derive(Debug, Default)]
pub struct PushState {
    pub(crate) subs: BTreeMap<String, Subscription>,
    next_number: u64,
}

impl PushState {
    pub fn list(&self) -> Vec<SubscriptionInfo> {
        let mut v: Vec<&Subscription> = self.subs.values().collect();
        v.sort_by_key(|s| s.number);
        v.into_iter().map(Subscription::info).collect()
    }

    /// Lets every delivery task re-plan (the time scale changed, or it should stop).
    pub(crate) fn wake_all(&self) {
        for s in self.subs.values() {
            s.wake.notify_one();
        }
    }

    /// Ends one subscription without telling the subscriber (Exchange just stops calling).
    pub(crate) fn drop_one(&mut self, id: &str, at: DateTime<Utc>, reason: &str) -> bool {
        match self.subs.get_mut(id) {
            Some(s) if s.is_alive() => {
                s.state = SubscriptionState::Dropped {
                    at,
                    reason: reason.to_string(),
                };
                s.in_flight = None;
                s.wake.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Ends every subscription (simulator stopping or resetting), so no task outlives it.
    pub(crate) fn stop_all(&mut self, at: DateTime<Utc>, reason: &str) {
        let ids: Vec<String> = self.subs.keys().cloned().collect();
        for id in ids {
            self.drop_one(&id, at, reason);
        }
    }

    /// Subscriptions whose delivery task is not running yet; marks them started.
    pub(crate) fn take_unstarted(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.subs.values_mut() {
            if !s.task_started && s.is_alive() {
                s.task_started = true;
                out.push(s.id.clone());
            }
        }
        out
    }

    fn alive_for(&self, mailbox_key: &str) -> usize {
        self.subs
            .values()
            .filter(|s| s.is_alive() && s.mailbox_key == mailbox_key)
            .count()
    }
}

/// Routes new mailbox events to the subscriptions that watch them (waking their tasks), then
/// trims the event tables to the retention. Cheap when nothing happened; runs on every
/// release of the state lock.
pub(crate) fn settle(st: &mut SimState) {
    let SimState {
        store,
        push,
        config,
        ..
    } = st;
    let folder_events = config.push.folder_events;
    for sub in push.subs.values_mut().filter(|s| s.is_alive()) {
        let Some(mb) = store.mailboxes.get(&sub.mailbox_key) else {
            continue;
        };
        if mb.events.position() == sub.cursor {
            continue;
        }
        let mut routed = false;
        for ev in mb.events.after(sub.cursor) {
            if sub.matches(ev, folder_events) {
                sub.queue.push_back(QueuedEvent {
                    event: ev.clone(),
                    watermark: mb.events.watermark_of(ev),
                });
                routed = true;
            }
        }
        sub.cursor = mb.events.position();
        if routed {
            sub.wake.notify_one();
        }
    }
    prune(store, &config.push);
}

fn prune(store: &mut Store, cfg: &PushConfig) {
    let now = store.seq.now();
    let oldest = i64::try_from(cfg.watermark_retention_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for mb in store.mailboxes.values_mut() {
        mb.events.prune(cfg.watermark_retention_events, oldest);
    }
}

// ---------------------------------------------------------------- Subscribe

/// A folder named in `FolderIds`, with the `Mailbox` a DistinguishedFolderId may carry.
struct WatchedFolder {
    folder: FolderRef,
    mailbox: Option<String>,
}

struct PushRequest {
    folders: Vec<WatchedFolder>,
    all_folders: bool,
    event_types: Vec<EventKind>,
    watermark: Option<String>,
    status_frequency: u32,
    url: String,
    caller_data: Option<String>,
}

/// Children of PushSubscriptionRequestType, in XSD sequence order.
const PUSH_ORDER: [&str; 6] = [
    "FolderIds",
    "EventTypes",
    "Watermark",
    "StatusFrequency",
    "URL",
    "CallerData",
];

const STATUS_FREQUENCY_TYPE: &str =
    "http://schemas.microsoft.com/exchange/services/2006/types:SubscriptionStatusFrequencyType";

fn parse_push_request(op: &Element) -> Result<PushRequest, OpFault> {
    let req = match op.children.as_slice() {
        [one] => one,
        _ => {
            return Err(OpFault::schema(
                "Subscribe requires exactly one subscription request",
            ));
        }
    };
    match req.name.as_str() {
        "PushSubscriptionRequest" => {}
        "PullSubscriptionRequest" | "StreamingSubscriptionRequest" => {
            return Err(OpFault::invalid_request(format!(
                "The request is invalid: {} is not supported by the simulator (push only).",
                req.name
            )));
        }
        other => {
            return Err(OpFault::schema(format!(
                "The element '{other}' is not allowed in Subscribe."
            )));
        }
    }
    let mut last: Option<usize> = None;
    for c in &req.children {
        let pos = PUSH_ORDER
            .iter()
            .position(|n| *n == c.name)
            .ok_or_else(|| {
                OpFault::schema(format!(
                    "line {}: The element '{}' is not allowed in PushSubscriptionRequest.",
                    c.line, c.name
                ))
            })?;
        if last.is_some_and(|l| pos <= l) {
            return Err(OpFault::schema(format!(
                "line {}: The element '{}' is out of order or repeated in PushSubscriptionRequest.",
                c.line, c.name
            )));
        }
        last = Some(pos);
    }
    let all_folders = match req.attr("SubscribeToAllFolders").map(str::trim) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(v) => {
            return Err(OpFault::schema(format!(
                "The 'SubscribeToAllFolders' attribute is invalid - The value '{v}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:boolean'."
            )));
        }
    };
    let folders = match req.child("FolderIds") {
        None => Vec::new(),
        Some(list) if list.children.is_empty() => {
            return Err(OpFault::schema("FolderIds must not be empty"));
        }
        Some(list) => list
            .children
            .iter()
            .map(|f| {
                Ok(WatchedFolder {
                    folder: folder_ref(f)?,
                    mailbox: f
                        .child("Mailbox")
                        .and_then(|m| m.child_text("EmailAddress"))
                        .map(|e| e.trim().to_string()),
                })
            })
            .collect::<Result<Vec<_>, OpFault>>()?,
    };
    let types_el = req
        .child("EventTypes")
        .ok_or_else(|| OpFault::schema("PushSubscriptionRequest requires EventTypes"))?;
    if types_el.children.is_empty() {
        return Err(OpFault::schema("EventTypes must not be empty"));
    }
    let mut event_types = Vec::new();
    for t in &types_el.children {
        let kind = (t.name == "EventType")
            .then(|| EventKind::parse(t.text.trim()))
            .flatten()
            .ok_or_else(|| {
                OpFault::schema(format!(
                    "line {}: The 'EventType' element is invalid - The value '{}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:NotificationEventTypeType' - The Enumeration constraint failed.",
                    t.line,
                    t.text.trim()
                ))
            })?;
        if !event_types.contains(&kind) {
            event_types.push(kind);
        }
    }
    let watermark = match req.child_text("Watermark").map(str::trim) {
        None => None,
        Some("") => {
            return Err(OpFault::schema(
                "The 'Watermark' element is invalid - The value '' is invalid according to its datatype 'NonEmptyStringType' - The actual length is less than the MinLength value.",
            ));
        }
        Some(w) => Some(w.to_string()),
    };
    let freq_text = req
        .child_text("StatusFrequency")
        .ok_or_else(|| OpFault::schema("PushSubscriptionRequest requires StatusFrequency"))?
        .trim();
    let status_frequency = match freq_text.parse::<i64>() {
        Ok(n) if (1..=1440).contains(&n) => n as u32,
        Ok(n) => {
            let facet = if n < 1 {
                "MinInclusive"
            } else {
                "MaxInclusive"
            };
            return Err(OpFault::schema(format!(
                "The 'http://schemas.microsoft.com/exchange/services/2006/types:StatusFrequency' element is invalid - The value '{freq_text}' is invalid according to its datatype '{STATUS_FREQUENCY_TYPE}' - The {facet} constraint failed."
            )));
        }
        Err(_) => {
            return Err(OpFault::schema(format!(
                "The 'http://schemas.microsoft.com/exchange/services/2006/types:StatusFrequency' element is invalid - The value '{freq_text}' is invalid according to its datatype '{STATUS_FREQUENCY_TYPE}' - The string '{freq_text}' is not a valid Int32 value."
            )));
        }
    };
    let url = req
        .child_text("URL")
        .ok_or_else(|| OpFault::schema("PushSubscriptionRequest requires URL"))?
        .trim()
        .to_string();
    Ok(PushRequest {
        folders,
        all_folders,
        event_types,
        watermark,
        status_frequency,
        url,
        caller_data: req.child_text("CallerData").map(str::to_string),
    })
}

/// Exchange calls back only to absolute http(s) URLs.
fn valid_push_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

fn new_subscription_id() -> String {
    use base64::Engine;
    // Real ids are base64 blobs (`JgBkZ2Vs…`); 24 random bytes give the same look.
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `Subscribe` operation (push subscriptions only).
pub(crate) fn subscribe(
    state: &mut SimState,
    ctx: &OpCtx<'_>,
    op: &Element,
) -> Result<OpOutput, OpFault> {
    let req = parse_push_request(op)?;
    mailbox(state, ctx)?;
    // Route what is pending and apply retention now, so the watermark check sees the table
    // exactly as it stands.
    settle(state);
    let mut r = Responses::new("Subscribe", "SubscribeResponseMessage");
    if let Some((code, text)) = injected(ctx, 0) {
        r.error(code, text, "");
        return Ok(r.finish());
    }
    match create(state, ctx, req) {
        Ok((id, watermark)) => {
            let mut payload = String::new();
            text_el(&mut payload, "m:SubscriptionId", &id);
            text_el(&mut payload, "m:Watermark", &watermark);
            r.success(&payload);
        }
        Err((code, text)) => r.error(code, text, ""),
    }
    Ok(r.finish())
}

/// Checks a parsed request against the mailbox and creates the subscription; returns its id
/// and starting watermark, or the per-message error.
fn create(
    state: &mut SimState,
    ctx: &OpCtx<'_>,
    req: PushRequest,
) -> Result<(String, String), (&'static str, &'static str)> {
    let key = Store::key(ctx.mailbox);
    let mb = state.store.mailbox(ctx.mailbox).map_err(|_| {
        (
            "ErrorNonExistentMailbox",
            "The SMTP address has no mailbox associated with it.",
        )
    })?;
    // Exactly one of the two ways to name what to watch.
    let names_folders = !req.folders.is_empty();
    if req.all_folders == names_folders {
        return Err((
            "ErrorInvalidSubscriptionRequest",
            "The subscription request must name folders or set SubscribeToAllFolders, not both.",
        ));
    }
    let mut folders = Vec::new();
    for w in &req.folders {
        // Another user's folder means delegate access, which cannot subscribe: impersonate
        // that user instead (exchange.md §2.2).
        if w.mailbox.as_deref().is_some_and(|m| Store::key(m) != key) {
            return Err((
                "ErrorSubscriptionDelegateAccessNotSupported",
                "Subscriptions are not supported for delegate user access.",
            ));
        }
        let id = mb.resolve(&w.folder).map_err(|code| {
            (
                code,
                match code {
                    "ErrorInvalidIdMalformed" => "Id is malformed.",
                    _ => "The specified folder could not be found in the store.",
                },
            )
        })?;
        if !folders.contains(&id) {
            folders.push(id);
        }
    }
    if !valid_push_url(&req.url) {
        return Err((
            "ErrorInvalidPushSubscriptionUrl",
            "The URL of the push subscription is invalid.",
        ));
    }
    let start = match &req.watermark {
        None => mb.events.position(),
        Some(w) => mb.events.check(w).map_err(|e| {
            (
                "ErrorInvalidWatermark",
                match e {
                    WatermarkError::Unknown => {
                        "The watermark used for creating this subscription was not found."
                    }
                    WatermarkError::Expired => {
                        "The watermark used for creating this subscription is too old."
                    }
                },
            )
        })?,
    };
    if state.push.alive_for(&key) >= state.config.push.max_subscriptions_per_mailbox {
        return Err((
            "ErrorExceededSubscriptionCount",
            "You have exceeded the maximum number of subscriptions allowed.",
        ));
    }
    // A resumed subscription answers with the watermark it resumes from: a client that
    // persists it loses nothing even if it crashes before the backlog arrives.
    let start_watermark = req
        .watermark
        .clone()
        .unwrap_or_else(|| mb.events.watermark_at(start));
    let now = state.store.seq.now();
    let id = new_subscription_id();
    state.push.next_number += 1;
    let mut sub = Subscription {
        id: id.clone(),
        number: state.push.next_number,
        mailbox: mb.smtp.clone(),
        mailbox_key: key,
        folders,
        all_folders: req.all_folders,
        event_types: req.event_types,
        url: req.url,
        status_frequency: req.status_frequency,
        caller_data: req.caller_data,
        server_version: ctx.server_version.unwrap_or("Exchange2013_SP1").to_string(),
        created: now,
        start_watermark: start_watermark.clone(),
        cursor: start,
        queue: VecDeque::new(),
        in_flight: None,
        last_watermark: start_watermark.clone(),
        last_activity: Instant::now(),
        last_attempt: None,
        last_success: None,
        failures: 0,
        total_failures: 0,
        notifications_delivered: 0,
        events_delivered: 0,
        status_events_delivered: 0,
        state: SubscriptionState::Alive,
        wake: Arc::new(Notify::new()),
        task_started: false,
    };
    // The backlog since the watermark goes first, in order.
    let folder_events = state.config.push.folder_events;
    for ev in mb.events.after(start) {
        if sub.matches(ev, folder_events) {
            sub.queue.push_back(QueuedEvent {
                event: ev.clone(),
                watermark: mb.events.watermark_of(ev),
            });
        }
    }
    sub.cursor = mb.events.position();
    state.push.subs.insert(id.clone(), sub);
    Ok((id, start_watermark))
}

// ---------------------------------------------------------------- SendNotification

fn envelope(server_version: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"><soap:Header><t:RequestServerVersion Version=\"{}\"/></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>",
        esc(server_version)
    )
}

fn notification(sub: &Subscription, previous: &str, more: bool, events: &str) -> String {
    let mut n = String::from(
        "<m:SendNotification><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Notification>",
    );
    text_el(&mut n, "t:SubscriptionId", &sub.id);
    text_el(&mut n, "t:PreviousWatermark", previous);
    text_el(&mut n, "t:MoreEvents", if more { "true" } else { "false" });
    n.push_str(events);
    n.push_str("</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification>");
    envelope(&sub.server_version, &n)
}

fn object_el(out: &mut String, prefix: &str, o: &EventObject) {
    match o {
        EventObject::Item { id, change_key } => item_id_el(
            out,
            &format!("{prefix}ItemId"),
            id.as_str(),
            Some(change_key.as_str()),
        ),
        EventObject::Folder { id, change_key } => item_id_el(
            out,
            &format!("{prefix}FolderId"),
            id.as_str(),
            Some(change_key.as_str()),
        ),
    }
}

fn parent_el(out: &mut String, tag: &str, p: &ParentRef) {
    item_id_el(
        out,
        tag,
        p.id.as_str(),
        p.change_key.as_ref().map(|c| c.as_str()),
    );
}

/// One event in `t:BaseObjectChangedEventType` / `t:MovedCopiedEventType` order.
fn render_event(out: &mut String, q: &QueuedEvent) {
    let ev = &q.event;
    let tag = ev.kind.as_str();
    out.push_str(&format!("<t:{tag}>"));
    text_el(out, "t:Watermark", &q.watermark);
    text_el(out, "t:TimeStamp", &fmt_utc(ev.time));
    object_el(out, "", &ev.object);
    parent_el(out, "ParentFolderId", &ev.parent);
    if let Some((old, old_parent)) = &ev.old {
        object_el(out, "Old", old);
        parent_el(out, "OldParentFolderId", old_parent);
    }
    out.push_str(&format!("</t:{tag}>"));
}

/// The next events notification of `sub` (taking up to `max` queued events), or `None`.
pub(crate) fn next_events(sub: &mut Subscription, max: usize) -> Option<InFlight> {
    if sub.queue.is_empty() {
        return None;
    }
    let n = max.max(1).min(sub.queue.len());
    let batch: Vec<QueuedEvent> = sub.queue.drain(..n).collect();
    let more = !sub.queue.is_empty();
    let mut events = String::new();
    for q in &batch {
        render_event(&mut events, q);
    }
    let last_watermark = batch
        .last()
        .map_or_else(|| sub.last_watermark.clone(), |q| q.watermark.clone());
    Some(InFlight {
        body: notification(sub, &sub.last_watermark, more, &events),
        events: batch
            .iter()
            .map(|q| q.event.kind.as_str().to_string())
            .collect(),
        last_watermark,
        attempts: 0,
        last_gap: None,
        retry_at: None,
    })
}

/// A status (keep-alive) notification carrying the subscription's current watermark.
pub(crate) fn status(sub: &Subscription, watermark: String) -> InFlight {
    let mut events = String::from("<t:StatusEvent>");
    text_el(&mut events, "t:Watermark", &watermark);
    events.push_str("</t:StatusEvent>");
    InFlight {
        body: notification(sub, &sub.last_watermark, false, &events),
        events: vec!["StatusEvent".into()],
        last_watermark: watermark,
        attempts: 0,
        last_gap: None,
        retry_at: None,
    }
}

/// The subscriber's `SubscriptionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriberAnswer {
    Ok,
    Unsubscribe,
}

impl SubscriberAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberAnswer::Ok => "OK",
            SubscriberAnswer::Unsubscribe => "Unsubscribe",
        }
    }
}

/// Reads a subscriber's reply: a SOAP 1.1 envelope whose Body holds
/// `m:SendNotificationResult/m:SubscriptionStatus` (messages.xsd). Anything else is as good
/// as no answer, and is retried.
pub fn parse_reply(body: &str) -> Result<SubscriberAnswer, String> {
    let root = crate::xml::parse(body).map_err(|e| format!("reply is not XML: {e}"))?;
    if !root.is(NS_SOAP, "Envelope") {
        return Err(format!(
            "reply is not a SOAP 1.1 envelope (root '{}' in '{}')",
            root.name, root.ns
        ));
    }
    let result = root
        .children
        .iter()
        .find(|c| c.is(NS_SOAP, "Body"))
        .and_then(|b| b.children.first())
        .filter(|r| r.is(NS_M, "SendNotificationResult"))
        .ok_or("reply Body holds no m:SendNotificationResult")?;
    let status = result
        .children
        .iter()
        .find(|c| c.is(NS_M, "SubscriptionStatus"))
        .ok_or("SendNotificationResult holds no m:SubscriptionStatus")?;
    match status.text.trim() {
        "OK" => Ok(SubscriberAnswer::Ok),
        "Unsubscribe" => Ok(SubscriberAnswer::Unsubscribe),
        other => Err(format!(
            "SubscriptionStatus '{other}' is neither OK nor Unsubscribe"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_strictly() {
        let ok = format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP}\"><s:Body><SendNotificationResult xmlns=\"{NS_M}\"><SubscriptionStatus>OK</SubscriptionStatus></SendNotificationResult></s:Body></s:Envelope>"
        );
        assert_eq!(parse_reply(&ok), Ok(SubscriberAnswer::Ok));
        let unsub = ok.replace(">OK<", "> Unsubscribe <");
        assert_eq!(parse_reply(&unsub), Ok(SubscriberAnswer::Unsubscribe));
        // Wrong namespace, wrong value, not XML: no answer.
        let no_ns = ok.replace(&format!(" xmlns=\"{NS_M}\""), "");
        assert!(parse_reply(&no_ns).is_err());
        assert!(parse_reply(&ok.replace(">OK<", ">Yes<")).is_err());
        assert!(parse_reply("OK").is_err());
    }

    #[test]
    fn push_urls_must_be_absolute_http() {
        assert!(valid_push_url("https://sync.corp.example/ews/notify"));
        assert!(valid_push_url("http://127.0.0.1:8080/x"));
        assert!(!valid_push_url("/ews/notify"));
        assert!(!valid_push_url("ftp://host/x"));
        assert!(!valid_push_url("not a url"));
        assert!(!valid_push_url(""));
    }
}
