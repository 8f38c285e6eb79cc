//! `SimHandle` calendar actions: "the user in Outlook" creating appointments, meetings and
//! series, editing, moving or deleting occurrences, cancelling as organizer, answering as
//! attendee; calendar listings for assertions; and the simulator clock.
//!
//! Every action goes through the same store functions as EWS requests (journalled, ChangeKeys
//! move, invitations/cancellations/responses reach the other hosted mailboxes).

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{
    Attendee, CalendarItem, Recipient, Recurrence, local_to_utc, new_uid, utc_to_local, zone,
};
use crate::calendar_xml::{FREE_BUSY, SENSITIVITY, exception_from, finish_calendar_update};
use crate::error::SimError;
use crate::meetings::{
    Notify, Response, cancel_meeting, delete_occurrence, deliver, expand_calendar, find_by_uid,
    instance_item, mark_sent, resolve_occurrence, respond,
};
use crate::model::{Body, ChangeKey, DistinguishedFolder, Item, ItemId, StoredItem};
use crate::sim::SimHandle;
use crate::store::DeleteType;

fn default_true() -> bool {
    true
}

/// An appointment, meeting or series as a user creates it. Times are wall-clock times in
/// `time_zone` (a Windows zone id, default `UTC`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    #[serde(default)]
    pub subject: Option<String>,
    /// Plain-text body.
    #[serde(default)]
    pub body: Option<String>,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub all_day: bool,
    #[serde(default)]
    pub location: Option<String>,
    /// `Normal|Personal|Private|Confidential`.
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    /// `Free|Tentative|Busy|OOF|WorkingElsewhere|NoData`.
    #[serde(default)]
    pub free_busy: Option<String>,
    /// Reminder minutes; `None` = Outlook's default (15, set).
    #[serde(default)]
    pub reminder_minutes: Option<i32>,
    #[serde(default)]
    pub required_attendees: Vec<String>,
    #[serde(default)]
    pub optional_attendees: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// Send invitations to the attendees (default true).
    #[serde(default = "default_true")]
    pub send: bool,
    #[serde(default)]
    pub uid: Option<String>,
}

impl NewEvent {
    /// A one-hour-style appointment skeleton: `NewEvent::at("Review", start, end)`.
    pub fn new(subject: &str, start: NaiveDateTime, end: NaiveDateTime) -> Self {
        NewEvent {
            subject: Some(subject.to_string()),
            body: None,
            start,
            end,
            time_zone: None,
            all_day: false,
            location: None,
            sensitivity: None,
            categories: Vec::new(),
            free_busy: None,
            reminder_minutes: None,
            required_attendees: Vec::new(),
            optional_attendees: Vec::new(),
            resources: Vec::new(),
            recurrence: None,
            send: true,
            uid: None,
        }
    }

    pub fn in_zone(mut self, windows_id: &str) -> Self {
        self.time_zone = Some(windows_id.to_string());
        self
    }

    pub fn with_attendees(mut self, required: &[&str]) -> Self {
        self.required_attendees = required.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_recurrence(mut self, r: Recurrence) -> Self {
        self.recurrence = Some(r);
        self
    }
}

/// What `user_create_event` made.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedEvent {
    pub id: ItemId,
    pub change_key: ChangeKey,
    pub uid: String,
}

/// A user's edit of an event (or, given an occurrence id, of one occurrence). Unset fields
/// stay; local times are read in the event's zone, `*_utc` ones are literal.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventEdit {
    pub subject: Option<String>,
    pub body: Option<String>,
    pub location: Option<String>,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub start_utc: Option<DateTime<Utc>>,
    pub end_utc: Option<DateTime<Utc>>,
    pub all_day: Option<bool>,
    pub free_busy: Option<String>,
    pub sensitivity: Option<String>,
    pub categories: Option<Vec<String>>,
    pub required_attendees: Option<Vec<String>>,
    pub optional_attendees: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub recurrence: Option<Recurrence>,
    /// Send the update to attendees (organizer only; default true).
    pub send: Option<bool>,
}

/// One entry of a mailbox's expanded calendar (`SimHandle::calendar_view`).
#[derive(Clone, Debug, Serialize)]
pub struct EventInstance {
    /// Item id, or the occurrence id for occurrences/exceptions.
    pub id: ItemId,
    /// The series' item id for occurrences/exceptions.
    pub master_id: Option<ItemId>,
    pub change_key: ChangeKey,
    /// `Single|Occurrence|Exception`.
    pub item_type: String,
    pub uid: String,
    pub subject: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Wall-clock times in the event's zone.
    pub local_start: NaiveDateTime,
    pub local_end: NaiveDateTime,
    pub time_zone: String,
    pub original_start: Option<DateTime<Utc>>,
    pub location: Option<String>,
    pub is_all_day: bool,
    pub is_cancelled: bool,
    pub is_organizer: bool,
    pub organizer: Option<String>,
    pub my_response_type: String,
    pub attendees: Vec<Attendee>,
    pub sensitivity: String,
}

impl EventInstance {
    fn from_stored(st: &StoredItem) -> Option<Self> {
        let c = st.item.as_calendar()?;
        let tz = c.tz();
        Some(EventInstance {
            id: st.id.clone(),
            master_id: c.instance.as_ref().map(|i| i.master_id.clone()),
            change_key: st.change_key.clone(),
            item_type: c.item_type().to_string(),
            uid: c.uid.clone(),
            subject: st.item.subject.clone(),
            start: c.start,
            end: c.end,
            local_start: utc_to_local(tz, c.start),
            local_end: utc_to_local(tz, c.end),
            time_zone: c.start_time_zone.clone(),
            original_start: c.instance.as_ref().map(|i| i.original_start),
            location: c.location.clone(),
            is_all_day: c.is_all_day,
            is_cancelled: c.is_cancelled,
            is_organizer: c.is_organizer,
            organizer: c.organizer.as_ref().map(|o| o.email.clone()),
            my_response_type: c.my_response_type.clone(),
            attendees: c.all_attendees().cloned().collect(),
            sensitivity: c.sensitivity.clone(),
        })
    }
}

fn invalid(m: impl Into<String>) -> SimError {
    SimError::InvalidEvent(m.into())
}

fn check_enum(value: &Option<String>, allowed: &[&str], what: &str) -> Result<(), SimError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(invalid(format!("invalid {what} '{v}'"))),
        _ => Ok(()),
    }
}

fn attendees(list: &[String]) -> Vec<Attendee> {
    list.iter().map(|e| Attendee::new(e)).collect()
}

impl SimHandle {
    // ---- clock

    /// The simulator's clock (wall clock plus any offset from `advance_clock`/`set_clock`).
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().store.seq.now()
    }

    /// Moves the simulator clock forward (or back, with a negative delta).
    pub fn advance_clock(&self, by: TimeDelta) {
        self.lock().store.seq.clock_offset += by;
    }

    /// Sets the simulator clock to `t` (it keeps running from there).
    pub fn set_clock(&self, t: DateTime<Utc>) {
        let mut st = self.lock();
        st.store.seq.clock_offset = t - Utc::now();
    }

    // ---- calendar as the user in Outlook

    /// Creates an appointment (no attendees), a meeting (attendees; invitations go out unless
    /// `send` is false) or a series in `mailbox`'s calendar, organized by that mailbox.
    pub fn user_create_event(&self, mailbox: &str, ev: NewEvent) -> Result<CreatedEvent, SimError> {
        let zone_id = ev.time_zone.clone().unwrap_or_else(|| "UTC".into());
        let tz = zone(&zone_id).ok_or_else(|| invalid(format!("unknown zone '{zone_id}'")))?;
        check_enum(&ev.sensitivity, &SENSITIVITY, "sensitivity")?;
        check_enum(&ev.free_busy, &FREE_BUSY, "free_busy")?;
        if ev.end < ev.start {
            return Err(invalid("end is before start"));
        }
        let mut cal = CalendarItem::new(
            local_to_utc(tz, ev.start),
            local_to_utc(tz, ev.end),
            &zone_id,
        );
        cal.is_all_day = ev.all_day;
        cal.location = ev.location;
        if let Some(s) = ev.sensitivity {
            cal.sensitivity = s;
        }
        cal.categories = ev.categories;
        if let Some(f) = ev.free_busy {
            cal.legacy_free_busy = f;
        }
        if let Some(m) = ev.reminder_minutes {
            cal.reminder_minutes_before_start = m;
        }
        cal.required_attendees = attendees(&ev.required_attendees);
        cal.optional_attendees = attendees(&ev.optional_attendees);
        cal.resources = attendees(&ev.resources);
        cal.uid = ev.uid.unwrap_or_else(new_uid);
        if let Some(r) = ev.recurrence {
            r.validate().map_err(invalid)?;
            cal.recurrence = Some(r);
        }
        cal.widen_all_day();
        if cal.recurrence.is_some() {
            if cal.first_original().is_none() {
                return Err(invalid("the recurrence has no occurrence"));
            }
            cal.align_to_pattern();
        }
        let notify = if ev.send { Notify::All } else { Notify::None };
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        cal.organizer = Some(Recipient {
            name: None,
            email: mb.smtp.clone(),
        });
        if notify == Notify::All && !cal.attendee_emails().is_empty() {
            mark_sent(&mut cal, true);
        }
        let uid = cal.uid.clone();
        let folder = mb
            .folder_id(DistinguishedFolder::Calendar)
            .cloned()
            .ok_or_else(|| SimError::NoSuchFolder("calendar".into()))?;
        let mut item = Item::calendar(cal);
        item.subject = ev.subject;
        item.body = ev.body.map(|text| Body {
            body_type: "Text".into(),
            text,
        });
        let smtp = mb.smtp.clone();
        let (id, change_key) = mb.create_item(seq, &folder, item);
        deliver(&mut st.store, &smtp, &id, &[], notify);
        Ok(CreatedEvent {
            id,
            change_key,
            uid,
        })
    }

    /// Edits an event (or one occurrence, given an occurrence id: it becomes an exception).
    /// The organizer's edits reach the attendees' copies unless `send` is false.
    pub fn user_edit_event(
        &self,
        mailbox: &str,
        id: &ItemId,
        edit: EventEdit,
    ) -> Result<ChangeKey, SimError> {
        check_enum(&edit.sensitivity, &SENSITIVITY, "sensitivity")?;
        check_enum(&edit.free_busy, &FREE_BUSY, "free_busy")?;
        let mut st = self.lock();
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        let not_found = || SimError::NoSuchItem(id.0.clone());
        let (master_id, view, original) = match resolve_occurrence(mb, id.as_str()) {
            Some(Ok((master, original, index))) => (
                master.id.clone(),
                instance_item(master, original, index).ok_or_else(not_found)?,
                Some(original),
            ),
            Some(Err(code)) => return Err(SimError::NoSuchItem(format!("{code}: {id}"))),
            None => {
                let s = mb.items.get(id).ok_or_else(not_found)?;
                (s.id.clone(), s.clone(), None)
            }
        };
        let before = view
            .item
            .as_calendar()
            .cloned()
            .ok_or_else(|| invalid("not a calendar item"))?;
        let mut item = view.item.clone();
        if let Some(s) = edit.subject {
            item.subject = Some(s);
        }
        if let Some(b) = edit.body {
            item.body = Some(Body {
                body_type: "Text".into(),
                text: b,
            });
        }
        let cal = item
            .as_calendar_mut()
            .ok_or_else(|| invalid("not a calendar item"))?;
        let tz = cal.tz();
        if let Some(l) = edit.location {
            cal.location = Some(l);
        }
        if let Some(s) = edit.start {
            cal.start = local_to_utc(tz, s);
        }
        if let Some(e) = edit.end {
            cal.end = local_to_utc(tz, e);
        }
        if let Some(s) = edit.start_utc {
            cal.start = s;
        }
        if let Some(e) = edit.end_utc {
            cal.end = e;
        }
        if let Some(a) = edit.all_day {
            cal.is_all_day = a;
        }
        if let Some(f) = edit.free_busy {
            cal.legacy_free_busy = f;
        }
        if let Some(s) = edit.sensitivity {
            cal.sensitivity = s;
        }
        if let Some(c) = edit.categories {
            cal.categories = c;
        }
        let keep = |old: &CalendarItem, new: &[String]| -> Vec<Attendee> {
            new.iter()
                .map(|e| {
                    old.all_attendees()
                        .find(|a| a.email.eq_ignore_ascii_case(e))
                        .cloned()
                        .unwrap_or_else(|| Attendee::new(e))
                })
                .collect()
        };
        if let Some(r) = &edit.required_attendees {
            cal.required_attendees = keep(&before, r);
        }
        if let Some(r) = &edit.optional_attendees {
            cal.optional_attendees = keep(&before, r);
        }
        if let Some(r) = &edit.resources {
            cal.resources = keep(&before, r);
        }
        if let Some(r) = edit.recurrence {
            r.validate().map_err(invalid)?;
            cal.recurrence = Some(r);
        }
        finish_calendar_update(&before, cal).map_err(|(c, m)| invalid(format!("{c}: {m}")))?;
        let mut new_item = match original {
            Some(o) => {
                let mut master = mb.items.get(&master_id).ok_or_else(not_found)?.item.clone();
                if let (Some(ex), Some(mc)) = (exception_from(&item, o), master.as_calendar_mut()) {
                    mc.modified_occurrences.retain(|m| m.original_start != o);
                    mc.modified_occurrences.push(ex);
                }
                master
            }
            None => item,
        };
        let send = edit.send.unwrap_or(true);
        let organizer_meeting = new_item.as_calendar().is_some_and(|c| {
            c.is_organizer
                && (!c.attendee_emails().is_empty() || !before.attendee_emails().is_empty())
        });
        if send
            && organizer_meeting
            && let Some(c) = new_item.as_calendar_mut()
        {
            let first = !c.meeting_request_was_sent;
            mark_sent(c, first);
        }
        let ck = mb
            .commit_update(seq, &master_id, new_item)
            .ok_or_else(not_found)?;
        let smtp = mb.smtp.clone();
        if send && organizer_meeting {
            deliver(
                &mut st.store,
                &smtp,
                &master_id,
                &before.attendee_emails(),
                Notify::All,
            );
        }
        Ok(ck)
    }

    /// Deletes an event as the user would in Outlook (to Deleted Items). With `send`: the
    /// organizer cancels the meeting (attendee copies marked cancelled), an attendee declines
    /// (the organizer sees the Decline). Given an occurrence id, only that occurrence goes
    /// (and, with `send`, the attendees' copies lose it too).
    pub fn user_delete_event(
        &self,
        mailbox: &str,
        id: &ItemId,
        send: bool,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let mb = st.store.mailbox(mailbox)?;
        let smtp = mb.smtp.clone();
        if let Some(found) = resolve_occurrence(mb, id.as_str()) {
            let (master, original, _) =
                found.map_err(|c| SimError::NoSuchItem(format!("{c}: {id}")))?;
            let master_id = master.id.clone();
            let cal = master.item.as_calendar().cloned();
            delete_occurrence(&mut st.store, &smtp, &master_id, original)?;
            if send && let Some(c) = cal.filter(|c| c.is_organizer) {
                deliver(
                    &mut st.store,
                    &smtp,
                    &master_id,
                    &c.attendee_emails(),
                    Notify::All,
                );
            }
            return Ok(());
        }
        let stored = mb
            .items
            .get(id)
            .ok_or_else(|| SimError::NoSuchItem(id.0.clone()))?;
        let is_attendee_copy = stored.item.as_calendar().is_some_and(|c| !c.is_organizer);
        if is_attendee_copy && send {
            // A decline removes the copy as well.
            return respond(&mut st.store, &smtp, id, Response::Decline, true)
                .map_err(|(c, m)| invalid(format!("{c}: {m}")));
        }
        let notify = if send { Notify::All } else { Notify::None };
        cancel_meeting(&mut st.store, &smtp, id, notify);
        let (mb, seq) = st.store.mailbox_mut(mailbox)?;
        mb.delete_item(seq, id, DeleteType::MoveToDeletedItems)
            .map(|_| ())
    }

    /// The attendee in `mailbox` answers a meeting (their copy's id, or an occurrence of it).
    /// With `send` the organizer's copy records the response (its ChangeKey moves).
    pub fn user_respond(
        &self,
        mailbox: &str,
        id: &ItemId,
        response: Response,
        send: bool,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        respond(&mut st.store, mailbox, id, response, send)
            .map_err(|(c, m)| invalid(format!("{c}: {m}")))
    }

    // ---- calendar for assertions

    /// The calendar item (single or master) with this UID in `mailbox`, outside Deleted Items.
    pub fn event_by_uid(&self, mailbox: &str, uid: &str) -> Option<StoredItem> {
        let st = self.lock();
        let mb = st.store.mailbox(mailbox).ok()?;
        let id = find_by_uid(mb, uid, None)?;
        mb.items.get(&id).cloned()
    }

    /// Stored calendar items (singles and masters) of `mailbox`'s calendar, creation order.
    pub fn calendar_items(&self, mailbox: &str) -> Result<Vec<StoredItem>, SimError> {
        let folder = self.folder_id(mailbox, DistinguishedFolder::Calendar)?;
        self.items_in_folder(mailbox, &folder)
    }

    /// The calendar as a CalendarView shows it: singles, occurrences and exceptions
    /// overlapping `[start, end)`, ordered by start.
    pub fn calendar_view(
        &self,
        mailbox: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<EventInstance>, SimError> {
        let st = self.lock();
        let mb = st.store.mailbox(mailbox)?;
        let folder = mb
            .folder_id(DistinguishedFolder::Calendar)
            .cloned()
            .ok_or_else(|| SimError::NoSuchFolder("calendar".into()))?;
        Ok(expand_calendar(mb, &folder, start, end)
            .iter()
            .filter_map(EventInstance::from_stored)
            .collect())
    }
}
