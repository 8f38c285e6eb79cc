//! The calendar half of [`MemoryMailbox`]: meetings that behave like Exchange's closely enough
//! for the calendar service. Creating a meeting in the organizer's calendar delivers a copy
//! (same UID, no stamp) to every attendee mailbox the fake hosts; responses reach the
//! organizer's attendee list; an organizer's update or cancel reaches the copies; recurring
//! series (every N days, with exceptions and deleted occurrences) are expanded on read; every
//! change moves the ChangeKey and is journalled for `sync_calendar`.

use super::{MailboxData, MemoryMailbox, fake_now, lock};
use crate::calendar::*;
use crate::error::{ItemError, MailboxError};
use crate::ids::*;
use crate::plan::calendar::{in_window, time_bounds, zone};
use crate::ports::*;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A recurrence: `count` occurrences every `interval_days` days from the master's start.
/// Occurrences are expanded in UTC (the fake has no zone rules for series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub interval_days: u32,
    pub count: u32,
    /// Modified occurrences by original start.
    pub exceptions: BTreeMap<DateTime<Utc>, Exception>,
    pub deleted: BTreeSet<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub fields: EventFields,
    pub version: ExchangeVersion,
    pub last_modified: DateTime<Utc>,
}

/// A calendar item as the fake stores it: a single event or a recurring master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEvent {
    pub mailbox: MailboxAddress,
    pub id: ExchangeItemId,
    pub version: ExchangeVersion,
    pub uid: IcalUid,
    pub stamp: Option<CrmStamp>,
    pub fields: EventFields,
    pub time_zone: Option<String>,
    pub organizer: Option<EventParty>,
    pub is_organizer: bool,
    pub attendees: Vec<EventAttendee>,
    pub my_response: ResponseType,
    pub sensitivity: Sensitivity,
    pub is_cancelled: bool,
    pub last_modified: DateTime<Utc>,
    pub recurrence: Option<Recurrence>,
    pub seq: u64,
}

/// An event a user creates in Outlook (or an external organizer sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    pub fields: EventFields,
    pub attendees: Vec<(String, AttendeeRole)>,
    /// `(interval_days, count)` for a series.
    pub recurrence: Option<(u32, u32)>,
    pub sensitivity: Sensitivity,
    pub time_zone: Option<String>,
}

impl UserEvent {
    pub fn new(fields: EventFields) -> Self {
        Self {
            fields,
            attendees: Vec::new(),
            recurrence: None,
            sensitivity: Sensitivity::Normal,
            time_zone: None,
        }
    }
}

/// The calendar state of all mailboxes.
#[derive(Debug, Default)]
pub(super) struct CalendarData {
    pub(super) items: BTreeMap<(MailboxAddress, ExchangeItemId), MemoryEvent>,
    journal: Vec<(MailboxAddress, u64, ExchangeItemId)>,
    hosted: BTreeSet<MailboxAddress>,
    /// Cursors older than this are invalid (R38).
    invalid_before: HashMap<MailboxAddress, u64>,
    /// The next update of this mailbox finds its item changed meanwhile.
    conflict_next_update: BTreeSet<MailboxAddress>,
    /// Creates of events with this subject are refused per item (an `ItemError`).
    refused_subjects: BTreeSet<String>,
    page_size: usize,
}

fn occurrence_id(master: &ExchangeItemId, original_start: DateTime<Utc>) -> ExchangeItemId {
    ExchangeItemId::new(format!("{master}#{}", original_start.timestamp()))
}

fn parse_occurrence(id: &ExchangeItemId) -> Option<(ExchangeItemId, DateTime<Utc>)> {
    let (master, ts) = id.as_str().rsplit_once('#')?;
    let at = DateTime::from_timestamp(ts.parse().ok()?, 0)?;
    Some((ExchangeItemId::new(master), at))
}

fn shifted(fields: &EventFields, start: DateTime<Utc>) -> EventFields {
    let mut f = fields.clone();
    if let EventTime::Timed { start: s, end: e } = f.time {
        f.time = EventTime::Timed {
            start,
            end: start + (e - s),
        };
    }
    f
}

impl MemoryEvent {
    fn base(&self, item: ItemRef, kind: EventKind) -> CalendarEvent {
        CalendarEvent {
            item,
            key: EventKey::single(self.uid.clone()),
            kind,
            series_id: None,
            stamp: self.stamp.clone(),
            fields: self.fields.clone(),
            time_zone: self.time_zone.clone(),
            organizer: self.organizer.clone(),
            is_organizer: self.is_organizer,
            is_meeting: !self.attendees.is_empty(),
            my_response: self.my_response,
            attendees: self.attendees.clone(),
            sensitivity: self.sensitivity,
            is_cancelled: self.is_cancelled,
            last_modified: self.last_modified,
        }
    }

    fn original_starts(&self) -> Vec<DateTime<Utc>> {
        let (Some(r), EventTime::Timed { start, .. }) = (&self.recurrence, self.fields.time) else {
            return Vec::new();
        };
        (0..r.count)
            .map(|k| start + Duration::days(i64::from(k) * i64::from(r.interval_days)))
            .filter(|os| !r.deleted.contains(os))
            .collect()
    }

    fn occurrence(&self, original_start: DateTime<Utc>) -> Option<CalendarEvent> {
        let r = self.recurrence.as_ref()?;
        if !self.original_starts().contains(&original_start) {
            return None;
        }
        let exception = r.exceptions.get(&original_start);
        let (fields, version, modified, kind) = match exception {
            Some(x) => (
                x.fields.clone(),
                x.version.clone(),
                x.last_modified,
                EventKind::Exception,
            ),
            None => (
                shifted(&self.fields, original_start),
                self.version.clone(),
                self.last_modified,
                EventKind::Occurrence,
            ),
        };
        let mut ev = self.base(
            ItemRef {
                id: occurrence_id(&self.id, original_start),
                version,
            },
            kind,
        );
        ev.key.original_start = Some(original_start);
        ev.series_id = Some(self.id.clone());
        ev.fields = fields;
        ev.last_modified = modified;
        Some(ev)
    }

    /// Single events, or a series' occurrences, that overlap `window`.
    pub fn expand(&self, window: &Window) -> Vec<CalendarEvent> {
        let tz = zone(self.time_zone.as_deref());
        let overlaps = |e: &CalendarEvent| {
            let (s, en) = time_bounds(&e.fields.time, tz);
            in_window(window, s, en)
        };
        if self.recurrence.is_none() {
            let ev = self.base(
                ItemRef {
                    id: self.id.clone(),
                    version: self.version.clone(),
                },
                EventKind::Single,
            );
            return if overlaps(&ev) { vec![ev] } else { Vec::new() };
        }
        self.original_starts()
            .into_iter()
            .filter_map(|os| self.occurrence(os))
            .filter(overlaps)
            .collect()
    }
}

impl MailboxData {
    fn touch_event(&mut self, key: &(MailboxAddress, ExchangeItemId)) -> Option<ExchangeVersion> {
        let seq = self.next();
        let version = ExchangeVersion::new(format!("ck{seq}"));
        let item = self.cal.items.get_mut(key)?;
        item.version = version.clone();
        item.last_modified = fake_now();
        self.cal.journal.push((key.0.clone(), seq, key.1.clone()));
        Some(version)
    }

    fn remove_event(&mut self, key: &(MailboxAddress, ExchangeItemId)) -> Option<MemoryEvent> {
        let removed = self.cal.items.remove(key)?;
        let seq = self.next();
        self.cal.journal.push((key.0.clone(), seq, key.1.clone()));
        Some(removed)
    }

    fn insert_event(&mut self, mut ev: MemoryEvent) -> ExchangeItemId {
        let seq = self.next();
        ev.seq = seq;
        ev.id = ExchangeItemId::new(format!("ev-{seq}"));
        ev.version = ExchangeVersion::new(format!("ck{seq}"));
        ev.last_modified = fake_now();
        let id = ev.id.clone();
        self.cal.journal.push((ev.mailbox.clone(), seq, id.clone()));
        self.cal.items.insert((ev.mailbox.clone(), id.clone()), ev);
        id
    }

    fn find_copy(&self, mailbox: &MailboxAddress, uid: &IcalUid) -> Option<ExchangeItemId> {
        self.cal
            .items
            .values()
            .find(|e| &e.mailbox == mailbox && &e.uid == uid && !e.is_organizer)
            .map(|e| e.id.clone())
    }

    /// Makes every hosted attendee's copy reflect the organizer's item (Exchange's meeting
    /// requests, updates and cancellations). `organizer`: `None` when the item was removed.
    fn propagate(&mut self, uid: &IcalUid, source: Option<MemoryEvent>, from: &MailboxAddress) {
        let hosted: Vec<MailboxAddress> = self.cal.hosted.iter().cloned().collect();
        for mb in hosted {
            if &mb == from {
                continue;
            }
            let copy = self.find_copy(&mb, uid);
            let invited = source
                .as_ref()
                .is_some_and(|s| s.attendees.iter().any(|a| a.email == mb.as_str()));
            match (copy, &source) {
                (Some(id), Some(s)) if invited => {
                    let key = (mb.clone(), id);
                    if let Some(c) = self.cal.items.get_mut(&key) {
                        c.fields = s.fields.clone();
                        c.attendees = s.attendees.clone();
                        c.recurrence = s.recurrence.clone();
                        c.time_zone = s.time_zone.clone();
                        c.sensitivity = s.sensitivity;
                        c.organizer = s.organizer.clone();
                        c.is_cancelled = false;
                    }
                    self.touch_event(&key);
                }
                (Some(id), _) => {
                    let key = (mb.clone(), id);
                    let already = self.cal.items.get(&key).is_some_and(|c| c.is_cancelled);
                    if !already {
                        if let Some(c) = self.cal.items.get_mut(&key) {
                            c.is_cancelled = true;
                        }
                        self.touch_event(&key);
                    }
                }
                (None, Some(s)) if invited => {
                    let mut c = s.clone();
                    c.mailbox = mb.clone();
                    c.stamp = None;
                    c.is_organizer = false;
                    c.my_response = ResponseType::None;
                    self.insert_event(c);
                }
                (None, _) => {}
            }
        }
    }

    fn propagate_from(&mut self, key: &(MailboxAddress, ExchangeItemId)) {
        if let Some(item) = self.cal.items.get(key).cloned()
            && item.is_organizer
        {
            let uid = item.uid.clone();
            self.propagate(&uid, Some(item), &key.0);
        }
    }

    pub(super) fn cal_view(&self, mailbox: &MailboxAddress, window: &Window) -> Vec<CalendarEvent> {
        let mut out: Vec<CalendarEvent> = self
            .cal
            .items
            .values()
            .filter(|e| &e.mailbox == mailbox)
            .flat_map(|e| e.expand(window))
            .collect();
        out.sort_by(|a, b| (&a.key, &a.item.id).cmp(&(&b.key, &b.item.id)));
        out
    }

    pub(super) fn cal_sync(
        &mut self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        let invalid = || MailboxError::InvalidCursor {
            mailbox: mailbox.clone(),
        };
        let since: u64 = match cursor {
            None => 0,
            Some(c) => {
                c.0.strip_prefix("cal:")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(invalid)?
            }
        };
        if cursor.is_some() && since < self.cal.invalid_before.get(mailbox).copied().unwrap_or(0) {
            return Err(invalid());
        }
        let page = if self.cal.page_size == 0 {
            100
        } else {
            self.cal.page_size
        };
        let entries: Vec<(u64, ExchangeItemId)> = if cursor.is_none() {
            // A first sync lists what exists, not the history.
            self.cal
                .items
                .values()
                .filter(|e| &e.mailbox == mailbox)
                .map(|e| (e.seq, e.id.clone()))
                .collect()
        } else {
            self.cal
                .journal
                .iter()
                .filter(|(m, s, _)| m == mailbox && *s > since)
                .map(|(_, s, id)| (*s, id.clone()))
                .collect()
        };
        let mut ids: Vec<ExchangeItemId> = Vec::new();
        let mut last = since;
        let mut more = false;
        for (s, id) in entries {
            if !ids.contains(&id) {
                if ids.len() == page {
                    more = true;
                    break;
                }
                ids.push(id);
            }
            last = last.max(s);
        }
        if !more {
            last = last.max(self.seq);
        }
        let changes = ids
            .into_iter()
            .map(
                |id| match self.cal.items.get(&(mailbox.clone(), id.clone())) {
                    Some(e) => FolderChange::Upsert {
                        item: ItemRef {
                            id: e.id.clone(),
                            version: e.version.clone(),
                        },
                        stamp: e.stamp.clone(),
                    },
                    None => FolderChange::Deleted { id },
                },
            )
            .collect();
        Ok(FolderChanges {
            changes,
            cursor: FolderCursor(format!("cal:{last}")),
            more,
        })
    }

    pub(super) fn cal_get(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: &Window,
    ) -> Vec<ItemOutcome<EventRead>> {
        ids.iter()
            .map(|id| {
                if let Some(e) = self.cal.items.get(&(mailbox.clone(), id.clone())) {
                    if e.recurrence.is_some() {
                        return Ok(EventRead::Series {
                            master: ItemRef {
                                id: e.id.clone(),
                                version: e.version.clone(),
                            },
                            uid: e.uid.clone(),
                            occurrences: e.expand(window),
                        });
                    }
                    let mut w = *window;
                    w.start = DateTime::<Utc>::MIN_UTC;
                    w.end = DateTime::<Utc>::MAX_UTC;
                    return e
                        .expand(&w)
                        .into_iter()
                        .next()
                        .map(|ev| EventRead::Event(Box::new(ev)))
                        .ok_or_else(|| ItemError::NotFound(id.clone()));
                }
                parse_occurrence(id)
                    .and_then(|(master, os)| {
                        self.cal
                            .items
                            .get(&(mailbox.clone(), master))
                            .and_then(|m| m.occurrence(os))
                    })
                    .map(|ev| EventRead::Event(Box::new(ev)))
                    .ok_or_else(|| ItemError::NotFound(id.clone()))
            })
            .collect()
    }

    pub(super) fn cal_find_stamped(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Vec<StampedItem> {
        let mut found: Vec<&MemoryEvent> = self
            .cal
            .items
            .values()
            .filter(|e| &e.mailbox == mailbox)
            .filter(|e| e.stamp.as_ref().is_some_and(|s| stamps.contains(s)))
            .collect();
        found.sort_by_key(|e| e.seq);
        found
            .into_iter()
            .filter_map(|e| {
                e.stamp.clone().map(|stamp| StampedItem {
                    stamp,
                    item: ItemRef {
                        id: e.id.clone(),
                        version: e.version.clone(),
                    },
                })
            })
            .collect()
    }

    pub(super) fn cal_create(
        &mut self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Vec<ItemOutcome<CreatedEvent>> {
        events
            .iter()
            .map(|n| {
                if let Some(subject) = n
                    .fields
                    .subject
                    .as_ref()
                    .filter(|s| self.cal.refused_subjects.contains(*s))
                {
                    return Err(ItemError::Failed {
                        code: "ErrorCalendarInvalidPropertyValue".into(),
                        message: format!("refused: {subject}"),
                        transient: false,
                    });
                }
                let seq = self.seq + 1;
                let uid = IcalUid::new(format!("uid-{seq}@memory"));
                let ev = MemoryEvent {
                    mailbox: mailbox.clone(),
                    id: ExchangeItemId::new(""),
                    version: ExchangeVersion::new(""),
                    uid: uid.clone(),
                    stamp: Some(n.stamp.clone()),
                    fields: n.fields.clone(),
                    time_zone: Some(n.time_zone.clone()),
                    organizer: Some(EventParty {
                        email: mailbox.as_str().to_owned(),
                        name: None,
                    }),
                    is_organizer: true,
                    attendees: n
                        .attendees
                        .iter()
                        .map(|a| EventAttendee {
                            response: ResponseType::None,
                            ..a.clone()
                        })
                        .collect(),
                    my_response: ResponseType::Organizer,
                    sensitivity: Sensitivity::Normal,
                    is_cancelled: false,
                    last_modified: DateTime::default(),
                    recurrence: None,
                    seq: 0,
                };
                let id = self.insert_event(ev);
                let key = (mailbox.clone(), id.clone());
                self.propagate_from(&key);
                let version = self
                    .cal
                    .items
                    .get(&key)
                    .map(|e| e.version.clone())
                    .unwrap_or_else(|| ExchangeVersion::new(""));
                Ok(CreatedEvent {
                    item: ItemRef { id, version },
                    uid,
                })
            })
            .collect()
    }

    pub(super) fn cal_update(
        &mut self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Vec<ItemOutcome<ItemRef>> {
        updates
            .iter()
            .map(|u| {
                if self.cal.conflict_next_update.remove(mailbox) {
                    // Someone edited the item between our read and our write.
                    let key = match parse_occurrence(&u.item.id) {
                        Some((m, _)) => (mailbox.clone(), m),
                        None => (mailbox.clone(), u.item.id.clone()),
                    };
                    self.touch_event(&key);
                    return Err(ItemError::Conflict(u.item.id.clone()));
                }
                let key = (mailbox.clone(), u.item.id.clone());
                if let Some(item) = self.cal.items.get(&key) {
                    if item.version != u.item.version {
                        return Err(ItemError::Conflict(u.item.id.clone()));
                    }
                    if let Some(i) = self.cal.items.get_mut(&key) {
                        i.fields = u.fields.clone();
                        i.time_zone = Some(u.time_zone.clone());
                        if let Some(att) = &u.attendees {
                            let old: HashMap<String, ResponseType> = i
                                .attendees
                                .iter()
                                .map(|a| (a.email.clone(), a.response))
                                .collect();
                            i.attendees = att
                                .iter()
                                .map(|a| EventAttendee {
                                    response: old
                                        .get(&a.email)
                                        .copied()
                                        .unwrap_or(ResponseType::None),
                                    ..a.clone()
                                })
                                .collect();
                        }
                    }
                    let version = self
                        .touch_event(&key)
                        .unwrap_or_else(|| ExchangeVersion::new(""));
                    self.propagate_from(&key);
                    return Ok(ItemRef {
                        id: u.item.id.clone(),
                        version,
                    });
                }
                // An occurrence: the write makes (or rewrites) an exception.
                let Some((master, os)) = parse_occurrence(&u.item.id) else {
                    return Err(ItemError::NotFound(u.item.id.clone()));
                };
                let mkey = (mailbox.clone(), master);
                let Some(current) = self.cal.items.get(&mkey).and_then(|m| m.occurrence(os)) else {
                    return Err(ItemError::NotFound(u.item.id.clone()));
                };
                if current.item.version != u.item.version {
                    return Err(ItemError::Conflict(u.item.id.clone()));
                }
                let seq = self.next();
                let version = ExchangeVersion::new(format!("ck{seq}"));
                if let Some(r) = self
                    .cal
                    .items
                    .get_mut(&mkey)
                    .and_then(|m| m.recurrence.as_mut())
                {
                    r.exceptions.insert(
                        os,
                        Exception {
                            fields: u.fields.clone(),
                            version: version.clone(),
                            last_modified: fake_now(),
                        },
                    );
                }
                self.cal
                    .journal
                    .push((mailbox.clone(), seq, mkey.1.clone()));
                self.propagate_from(&mkey);
                Ok(ItemRef {
                    id: u.item.id.clone(),
                    version,
                })
            })
            .collect()
    }

    pub(super) fn cal_cancel(
        &mut self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Vec<ItemOutcome<()>> {
        ids.iter().map(|id| self.cal_delete(mailbox, id)).collect()
    }

    /// Deletes (organizer: cancels) an item or one occurrence.
    fn cal_delete(&mut self, mailbox: &MailboxAddress, id: &ExchangeItemId) -> ItemOutcome<()> {
        let key = (mailbox.clone(), id.clone());
        if let Some(removed) = self.remove_event(&key) {
            if removed.is_organizer {
                self.propagate(&removed.uid, None, mailbox);
            }
            return Ok(());
        }
        let Some((master, os)) = parse_occurrence(id) else {
            return Err(ItemError::NotFound(id.clone()));
        };
        let mkey = (mailbox.clone(), master);
        let exists = self
            .cal
            .items
            .get(&mkey)
            .is_some_and(|m| m.occurrence(os).is_some());
        if !exists {
            return Err(ItemError::NotFound(id.clone()));
        }
        if let Some(r) = self
            .cal
            .items
            .get_mut(&mkey)
            .and_then(|m| m.recurrence.as_mut())
        {
            r.exceptions.remove(&os);
            r.deleted.insert(os);
        }
        self.touch_event(&mkey);
        self.propagate_from(&mkey);
        Ok(())
    }
}

/// What tests do in Outlook, and what they look at.
impl MemoryMailbox {
    /// Makes the fake host `mailbox`: meeting copies are delivered to it.
    pub fn host(&self, mailbox: &MailboxAddress) {
        lock(&self.inner).cal.hosted.insert(mailbox.clone());
    }

    /// At most `n` changes per `sync_calendar` page.
    pub fn set_calendar_page_size(&self, n: usize) {
        lock(&self.inner).cal.page_size = n;
    }

    fn new_event(mailbox: &MailboxAddress, organizer: &str, spec: &UserEvent) -> MemoryEvent {
        MemoryEvent {
            mailbox: mailbox.clone(),
            id: ExchangeItemId::new(""),
            version: ExchangeVersion::new(""),
            uid: IcalUid::new(""),
            stamp: None,
            fields: spec.fields.clone(),
            time_zone: spec.time_zone.clone(),
            organizer: Some(EventParty {
                email: organizer.to_owned(),
                name: None,
            }),
            is_organizer: organizer == mailbox.as_str(),
            attendees: spec
                .attendees
                .iter()
                .map(|(email, role)| EventAttendee {
                    email: email.clone(),
                    name: None,
                    role: *role,
                    response: ResponseType::None,
                })
                .collect(),
            my_response: if organizer == mailbox.as_str() {
                ResponseType::Organizer
            } else {
                ResponseType::None
            },
            sensitivity: spec.sensitivity,
            is_cancelled: false,
            last_modified: DateTime::default(),
            recurrence: spec.recurrence.map(|(interval_days, count)| Recurrence {
                interval_days,
                count,
                exceptions: BTreeMap::new(),
                deleted: BTreeSet::new(),
            }),
            seq: 0,
        }
    }

    /// A user creates an event (a meeting when it has attendees) in their own calendar.
    pub fn user_create_event(&self, mailbox: &MailboxAddress, spec: &UserEvent) -> ExchangeItemId {
        let mut data = lock(&self.inner);
        let mut ev = Self::new_event(mailbox, mailbox.as_str(), spec);
        ev.uid = IcalUid::new(format!("outlook-{}@memory", data.seq + 1));
        let id = data.insert_event(ev);
        data.propagate_from(&(mailbox.clone(), id.clone()));
        id
    }

    /// An organizer outside the fake (external, R23) sends a meeting to hosted mailboxes.
    pub fn deliver_external(&self, organizer: &str, spec: &UserEvent) -> IcalUid {
        let mut data = lock(&self.inner);
        let uid = IcalUid::new(format!("external-{}@partner.example", data.seq + 1));
        let hosted: Vec<MailboxAddress> = data.cal.hosted.iter().cloned().collect();
        for mb in hosted {
            if spec.attendees.iter().any(|(e, _)| e == mb.as_str()) {
                let mut ev = Self::new_event(&mb, organizer, spec);
                ev.uid = uid.clone();
                data.insert_event(ev);
            }
        }
        uid
    }

    /// The external organizer updates their meeting: every copy changes.
    pub fn external_update(&self, uid: &IcalUid, edit: impl Fn(&mut EventFields)) {
        let mut data = lock(&self.inner);
        let keys: Vec<_> = data
            .cal
            .items
            .iter()
            .filter(|(_, e)| &e.uid == uid)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(e) = data.cal.items.get_mut(&k) {
                edit(&mut e.fields);
            }
            data.touch_event(&k);
        }
    }

    /// A user edits an event or one occurrence of a series (making it an exception). An
    /// organizer's edit reaches the attendees' copies.
    pub fn user_edit_event(
        &self,
        mailbox: &MailboxAddress,
        id: &ExchangeItemId,
        edit: impl FnOnce(&mut EventFields),
    ) {
        let mut data = lock(&self.inner);
        let key = (mailbox.clone(), id.clone());
        if let Some(e) = data.cal.items.get_mut(&key) {
            edit(&mut e.fields);
            data.touch_event(&key);
            data.propagate_from(&key);
            return;
        }
        let Some((master, os)) = parse_occurrence(id) else {
            return;
        };
        let mkey = (mailbox.clone(), master);
        let Some(mut current) = data.cal.items.get(&mkey).and_then(|m| m.occurrence(os)) else {
            return;
        };
        edit(&mut current.fields);
        let seq = data.next();
        if let Some(r) = data
            .cal
            .items
            .get_mut(&mkey)
            .and_then(|m| m.recurrence.as_mut())
        {
            r.exceptions.insert(
                os,
                Exception {
                    fields: current.fields,
                    version: ExchangeVersion::new(format!("ck{seq}")),
                    last_modified: fake_now(),
                },
            );
        }
        data.cal
            .journal
            .push((mailbox.clone(), seq, mkey.1.clone()));
        data.propagate_from(&mkey);
    }

    /// A change Exchange makes to unmapped properties only (opened, categories of others, …):
    /// the ChangeKey moves, nothing we map does (R27).
    pub fn user_touch_event(&self, mailbox: &MailboxAddress, id: &ExchangeItemId) {
        let mut data = lock(&self.inner);
        data.touch_event(&(mailbox.clone(), id.clone()));
    }

    /// A user deletes an event or an occurrence; an organizer's delete cancels the meeting.
    pub fn user_delete_event(&self, mailbox: &MailboxAddress, id: &ExchangeItemId) {
        let mut data = lock(&self.inner);
        let _ = data.cal_delete(mailbox, id);
    }

    /// The organizer replaces the attendee list.
    pub fn user_set_attendees(
        &self,
        mailbox: &MailboxAddress,
        id: &ExchangeItemId,
        attendees: &[(String, AttendeeRole)],
    ) {
        let mut data = lock(&self.inner);
        let key = (mailbox.clone(), id.clone());
        if let Some(e) = data.cal.items.get_mut(&key) {
            e.attendees = attendees
                .iter()
                .map(|(email, role)| EventAttendee {
                    email: email.clone(),
                    name: None,
                    role: *role,
                    response: ResponseType::None,
                })
                .collect();
            data.touch_event(&key);
            data.propagate_from(&key);
        }
    }

    /// An attendee answers a meeting from their copy: the copy and the organizer's attendee
    /// list (when the organizer is hosted) both change.
    pub fn respond(&self, mailbox: &MailboxAddress, id: &ExchangeItemId, response: ResponseType) {
        let mut data = lock(&self.inner);
        let key = (mailbox.clone(), id.clone());
        let Some(uid) = data.cal.items.get(&key).map(|e| e.uid.clone()) else {
            return;
        };
        if let Some(e) = data.cal.items.get_mut(&key) {
            e.my_response = response;
        }
        data.touch_event(&key);
        let organizer_items: Vec<_> = data
            .cal
            .items
            .iter()
            .filter(|(_, e)| e.uid == uid && e.is_organizer)
            .map(|(k, _)| k.clone())
            .collect();
        for k in organizer_items {
            if let Some(e) = data.cal.items.get_mut(&k) {
                for a in e
                    .attendees
                    .iter_mut()
                    .filter(|a| a.email == mailbox.as_str())
                {
                    a.response = response;
                }
            }
            data.touch_event(&k);
        }
    }

    /// The next `sync_calendar` of `mailbox` with a cursor gets `InvalidCursor` (R38).
    pub fn invalidate_calendar_cursor(&self, mailbox: &MailboxAddress) {
        let mut data = lock(&self.inner);
        let seq = data.next();
        data.cal.invalid_before.insert(mailbox.clone(), seq + 1);
    }

    /// The next `update_events` of `mailbox` finds the item changed meanwhile (a concurrent
    /// Outlook edit of unmapped properties): it answers `Conflict` and moves the ChangeKey.
    pub fn conflict_next_update(&self, mailbox: &MailboxAddress) {
        lock(&self.inner)
            .cal
            .conflict_next_update
            .insert(mailbox.clone());
    }

    /// Creates of events with this subject answer a per-item error (the rest of the batch
    /// goes through).
    pub fn refuse_create(&self, subject: &str) {
        lock(&self.inner)
            .cal
            .refused_subjects
            .insert(subject.to_owned());
    }

    /// Events of a mailbox overlapping `window`, expanded, without counting a call.
    pub fn events(&self, mailbox: &MailboxAddress, window: &Window) -> Vec<CalendarEvent> {
        lock(&self.inner).cal_view(mailbox, window)
    }

    /// Stored calendar items (singles and masters) of a mailbox.
    pub fn event_items(&self, mailbox: &MailboxAddress) -> Vec<MemoryEvent> {
        lock(&self.inner)
            .cal
            .items
            .values()
            .filter(|e| &e.mailbox == mailbox)
            .cloned()
            .collect()
    }

    /// A position in the calendars' change journal, for [`MemoryMailbox::calendar_notifications`].
    pub fn calendar_mark(&self) -> u64 {
        lock(&self.inner).seq
    }

    /// What a push subscription on `mailbox`'s calendar would have delivered since `mark`
    /// (R31): the id of every item created, modified or deleted, once per change, oldest
    /// first. Not a call: the server sends these on its own.
    pub fn calendar_notifications(
        &self,
        mailbox: &MailboxAddress,
        mark: u64,
    ) -> Vec<ExchangeItemId> {
        lock(&self.inner)
            .cal
            .journal
            .iter()
            .filter(|(m, s, _)| m == mailbox && *s > mark)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// Calendar write calls (create, update, cancel) over all mailboxes.
    pub fn calendar_writes(&self) -> usize {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(_, op)| matches!(*op, "create_events" | "update_events" | "cancel_events"))
            .count()
    }

    /// Calls of one method for one mailbox.
    pub fn count_calls(&self, mailbox: &MailboxAddress, op: &str) -> usize {
        self.calls(mailbox).into_iter().filter(|o| *o == op).count()
    }
}
