//! What crosses mailboxes: meeting invitations (attendee copies with the same UID),
//! updates, cancellations and attendee responses; plus occurrence views of a series.
//!
//! Exchange delivers a meeting request to each attendee, whose calendar assistant puts a
//! tentative copy into their calendar; the sim does the same at once for every attendee it
//! hosts. Copies never carry the organizer's extended properties (they are not sent with
//! the request), and the attendee's own state (response, reminder, categories, extended
//! properties) survives later updates.

use chrono::{DateTime, Utc};

use crate::calendar::{CalendarItem, InstanceOf, Recipient};
use crate::error::SimError;
use crate::model::{
    DistinguishedFolder, Item, ItemId, ItemKind, StoredItem, make_occurrence_id,
    parse_occurrence_id,
};
use crate::store::{DeleteType, Mailbox, Store};

/// Whom a write notifies (`SendMeetingInvitations`, `…OrCancellations`, `SendMeetingCancellations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    None,
    All,
    /// Only attendees added or removed by this change.
    Changed,
}

impl Notify {
    pub fn parse(s: &str) -> Option<Notify> {
        Some(match s {
            "SendToNone" => Notify::None,
            "SendOnlyToAll" | "SendToAllAndSaveCopy" => Notify::All,
            "SendOnlyToChanged" | "SendToChangedAndSaveCopy" => Notify::Changed,
            _ => return None,
        })
    }
}

/// The item of one occurrence/exception of `master`, as EWS shows it (own id, master's
/// ChangeKey, CalendarItemType Occurrence/Exception, OriginalStart).
pub fn instance_item(
    master: &StoredItem,
    original: DateTime<Utc>,
    index: u32,
) -> Option<StoredItem> {
    let cal = master.item.as_calendar()?;
    cal.recurrence.as_ref()?;
    let mut item = master.item.clone();
    let c = item.as_calendar_mut()?;
    c.recurrence = None;
    c.modified_occurrences.clear();
    c.deleted_occurrences.clear();
    let ex = cal.exception_at(original);
    match ex {
        Some(m) => {
            c.start = m.start;
            c.end = m.end;
            c.location = m.location.clone();
            c.legacy_free_busy = m.legacy_free_busy.clone();
            c.is_all_day = m.is_all_day;
            c.reminder_is_set = m.reminder_is_set;
            c.reminder_minutes_before_start = m.reminder_minutes_before_start;
            c.is_cancelled = cal.is_cancelled || m.is_cancelled;
            item.subject = m.subject.clone();
            item.body = m.body.clone();
        }
        None => {
            c.start = original;
            c.end = original + cal.duration();
        }
    }
    if let Some(c) = item.as_calendar_mut() {
        c.instance = Some(InstanceOf {
            master_id: master.id.clone(),
            original_start: original,
            index,
            exception: ex.is_some(),
        });
    }
    Some(StoredItem {
        id: make_occurrence_id(&master.id, original),
        change_key: master.change_key.clone(),
        folder: master.folder.clone(),
        created: master.created,
        modified: master.modified,
        created_seq: master.created_seq,
        last_seq: master.last_seq,
        item,
    })
}

/// An occurrence: its master, original start and 1-based index.
pub type OccurrenceRef<'m> = (&'m StoredItem, DateTime<Utc>, u32);

/// Resolves an occurrence id (`None`: not an occurrence id); the error is the EWS code.
pub fn resolve_occurrence<'m>(
    mb: &'m Mailbox,
    id: &str,
) -> Option<Result<OccurrenceRef<'m>, &'static str>> {
    let (master_id, original) = parse_occurrence_id(id)?;
    let Some(master) = mb.items.get(&master_id) else {
        return Some(Err("ErrorItemNotFound"));
    };
    Some(occurrence_of(master, original))
}

/// Checks that `original` is a live occurrence of `master`.
pub fn occurrence_of(
    master: &StoredItem,
    original: DateTime<Utc>,
) -> Result<OccurrenceRef<'_>, &'static str> {
    let Some(cal) = master.item.as_calendar() else {
        return Err("ErrorItemNotFound");
    };
    if cal.recurrence.is_none() {
        return Err("ErrorItemNotFound");
    }
    if cal.is_deleted(original) {
        return Err("ErrorCalendarOccurrenceIsDeletedFromRecurrence");
    }
    match cal.index_of(original) {
        Some(i) => Ok((master, original, i)),
        None => Err("ErrorItemNotFound"),
    }
}

fn deleted_items(mb: &Mailbox) -> Option<&crate::model::FolderId> {
    mb.folder_id(DistinguishedFolder::DeletedItems)
}

/// The calendar item with this UID outside Deleted Items: the organizer's copy
/// (`organizer = Some(true)`), an attendee copy (`Some(false)`) or either.
pub fn find_by_uid(mb: &Mailbox, uid: &str, organizer: Option<bool>) -> Option<ItemId> {
    let trash = deleted_items(mb);
    let mut hits: Vec<&StoredItem> = mb
        .items
        .values()
        .filter(|st| Some(&st.folder) != trash)
        .filter(|st| {
            st.item
                .as_calendar()
                .is_some_and(|c| c.uid == uid && organizer.is_none_or(|o| c.is_organizer == o))
        })
        .collect();
    hits.sort_by_key(|st| st.created_seq);
    hits.first().map(|st| st.id.clone())
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Marks an organizer's item as sent (call before committing it, so the ChangeKey the
/// client gets back is the final one).
pub fn mark_sent(cal: &mut CalendarItem, first_send: bool) {
    cal.meeting_request_was_sent = true;
    if !first_send {
        cal.appointment_sequence_number += 1;
    }
}

/// After the organizer's item `id` in `organizer_mb` was created/changed and sent: brings
/// the attendee copies in line (creating missing ones) and cancels the copies of attendees
/// who were removed. `before` = attendee addresses before the change.
pub fn deliver(
    store: &mut Store,
    organizer_mb: &str,
    id: &ItemId,
    before: &[String],
    notify: Notify,
) {
    if notify == Notify::None {
        return;
    }
    let Ok(org) = store.mailbox(organizer_mb) else {
        return;
    };
    let Some(st) = org.items.get(id) else {
        return;
    };
    let item = st.item.clone();
    let Some(cal) = item.as_calendar() else {
        return;
    };
    if !cal.is_organizer {
        return;
    }
    let current = cal.attendee_emails();
    let targets: Vec<&String> = current
        .iter()
        .filter(|e| notify == Notify::All || !before.iter().any(|b| same(b, e)))
        .collect();
    for t in targets {
        if same(t, organizer_mb) || !store.has_mailbox(t) {
            continue;
        }
        upsert_copy(store, t, &item);
    }
    for r in before
        .iter()
        .filter(|b| !current.iter().any(|c| same(b, c)))
    {
        if !same(r, organizer_mb) && store.has_mailbox(r) {
            cancel_copy(store, r, &cal.uid);
        }
    }
}

fn upsert_copy(store: &mut Store, attendee: &str, org_item: &Item) {
    let Some(org_cal) = org_item.as_calendar() else {
        return;
    };
    let Ok((mb, seq)) = store.mailbox_mut(attendee) else {
        return;
    };
    let mut cal = org_cal.clone();
    cal.is_organizer = false;
    cal.meeting_request_was_sent = false;
    cal.instance = None;
    match find_by_uid(mb, &org_cal.uid, Some(false)) {
        Some(id) => {
            let Some(old) = mb.items.get(&id).map(|st| st.item.clone()) else {
                return;
            };
            if let Some(oc) = old.as_calendar() {
                cal.my_response_type = oc.my_response_type.clone();
                cal.appointment_reply_time = oc.appointment_reply_time;
                cal.reminder_is_set = oc.reminder_is_set;
                cal.reminder_minutes_before_start = oc.reminder_minutes_before_start;
                cal.categories = oc.categories.clone();
            }
            let item = Item {
                subject: org_item.subject.clone(),
                body: org_item.body.clone(),
                extended_properties: old.extended_properties,
                kind: ItemKind::Calendar(Box::new(cal)),
            };
            mb.commit_update(seq, &id, item);
        }
        None => {
            cal.my_response_type = "NoResponseReceived".into();
            cal.appointment_reply_time = None;
            cal.reminder_is_set = true;
            cal.reminder_minutes_before_start = 15;
            cal.categories.clear();
            let Some(folder) = mb.folder_id(DistinguishedFolder::Calendar).cloned() else {
                return;
            };
            let mut item = Item::calendar(cal);
            item.subject = org_item.subject.clone();
            item.body = org_item.body.clone();
            mb.create_item(seq, &folder, item);
        }
    }
}

/// A cancellation arriving in an attendee's mailbox: the copy stays, marked cancelled and
/// prefixed "Canceled: ", until the attendee removes it.
fn cancel_copy(store: &mut Store, attendee: &str, uid: &str) {
    let Ok((mb, seq)) = store.mailbox_mut(attendee) else {
        return;
    };
    let Some(id) = find_by_uid(mb, uid, Some(false)) else {
        return;
    };
    let Some(mut item) = mb.items.get(&id).map(|st| st.item.clone()) else {
        return;
    };
    if let Some(c) = item.as_calendar_mut() {
        c.is_cancelled = true;
    }
    let subject = item.subject.clone().unwrap_or_default();
    if !subject.starts_with("Canceled: ") {
        item.subject = Some(format!("Canceled: {subject}"));
    }
    mb.commit_update(seq, &id, item);
}

/// The organizer deletes a meeting: with `notify`, every hosted attendee's copy is
/// cancelled. (The organizer's item itself is deleted by the caller.)
pub fn cancel_meeting(store: &mut Store, organizer_mb: &str, id: &ItemId, notify: Notify) {
    if notify == Notify::None {
        return;
    }
    let Ok(mb) = store.mailbox(organizer_mb) else {
        return;
    };
    let Some(cal) = mb
        .items
        .get(id)
        .and_then(|st| st.item.as_calendar())
        .cloned()
    else {
        return;
    };
    if !cal.is_organizer {
        return;
    }
    for a in cal.attendee_emails() {
        if !same(&a, organizer_mb) && store.has_mailbox(&a) {
            cancel_copy(store, &a, &cal.uid);
        }
    }
}

/// An attendee's answer to a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Accept,
    Tentative,
    Decline,
}

impl Response {
    /// ResponseTypeType value.
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Accept => "Accept",
            Response::Tentative => "Tentative",
            Response::Decline => "Decline",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Response::Accept => "Accept",
            Response::Tentative => "Tentative",
            Response::Decline => "Decline",
        }
    }
}

/// Why a response could not be made: the EWS code and message.
pub type RespondError = (&'static str, String);

/// The attendee in `attendee_mb` answers the meeting `id` (their copy, or an occurrence of
/// it: responses apply to the whole series). Their copy's MyResponseType changes (a decline
/// moves it to Deleted Items, as Outlook does by default); with `notify`, the organizer's
/// item (if hosted) records ResponseType + LastResponseTime, which moves its ChangeKey.
pub fn respond(
    store: &mut Store,
    attendee_mb: &str,
    id: &ItemId,
    response: Response,
    notify: bool,
) -> Result<(), RespondError> {
    let (mb, seq) = store
        .mailbox_mut(attendee_mb)
        .map_err(|e| ("ErrorNonExistentMailbox", e.to_string()))?;
    let id = match parse_occurrence_id(id.as_str()) {
        Some((master, _)) => master,
        None => id.clone(),
    };
    let Some(st) = mb.items.get(&id) else {
        return Err((
            "ErrorItemNotFound",
            "The specified object was not found in the store.".into(),
        ));
    };
    let Some(cal) = st.item.as_calendar() else {
        return Err((
            "ErrorInvalidItemForOperationCreateItem",
            "Only calendar items can be responded to.".into(),
        ));
    };
    if cal.is_organizer {
        let code = match response {
            Response::Accept => "ErrorCalendarIsOrganizerForAccept",
            Response::Tentative => "ErrorCalendarIsOrganizerForTentative",
            Response::Decline => "ErrorCalendarIsOrganizerForDecline",
        };
        return Err((
            code,
            format!(
                "The organizer cannot {} their own meeting.",
                response.suffix()
            ),
        ));
    }
    if cal.is_cancelled {
        let code = match response {
            Response::Accept => "ErrorCalendarIsCancelledForAccept",
            Response::Tentative => "ErrorCalendarIsCancelledForTentative",
            Response::Decline => "ErrorCalendarIsCancelledForDecline",
        };
        return Err((code, "The meeting was cancelled.".into()));
    }
    let organizer = cal.organizer.clone();
    let uid = cal.uid.clone();
    let now = seq.now();
    let mut item = st.item.clone();
    if let Some(c) = item.as_calendar_mut() {
        c.my_response_type = response.as_str().into();
        c.appointment_reply_time = Some(now);
    }
    mb.commit_update(seq, &id, item);
    if response == Response::Decline {
        let _ = mb.delete_item(seq, &id, DeleteType::MoveToDeletedItems);
    }
    let smtp = mb.smtp.clone();
    if notify && let Some(Recipient { email, .. }) = organizer {
        record_response(store, &email, &uid, &smtp, response.as_str(), now);
    }
    Ok(())
}

/// The organizer's side of a response: that attendee's ResponseType + LastResponseTime.
fn record_response(
    store: &mut Store,
    organizer_mb: &str,
    uid: &str,
    attendee: &str,
    response: &str,
    now: DateTime<Utc>,
) {
    let Ok((mb, seq)) = store.mailbox_mut(organizer_mb) else {
        return;
    };
    let Some(id) = find_by_uid(mb, uid, Some(true)) else {
        return;
    };
    let Some(mut item) = mb.items.get(&id).map(|st| st.item.clone()) else {
        return;
    };
    let mut found = false;
    if let Some(c) = item.as_calendar_mut() {
        for a in c.all_attendees_mut() {
            if same(&a.email, attendee) {
                a.response_type = response.to_string();
                a.last_response_time = Some(now);
                found = true;
            }
        }
    }
    if found {
        mb.commit_update(seq, &id, item);
    }
}

/// Deletes an occurrence of a series (it joins DeletedOccurrences, dropping any exception);
/// `NoSuchItem` if it is not a live occurrence.
pub fn delete_occurrence(
    store: &mut Store,
    mailbox: &str,
    master: &ItemId,
    original: DateTime<Utc>,
) -> Result<(), SimError> {
    let (mb, seq) = store.mailbox_mut(mailbox)?;
    let st = mb
        .items
        .get(master)
        .ok_or_else(|| SimError::NoSuchItem(master.0.clone()))?;
    occurrence_of(st, original).map_err(|c| SimError::NoSuchItem(format!("{c}: {original}")))?;
    let mut item = st.item.clone();
    if let Some(c) = item.as_calendar_mut() {
        c.modified_occurrences
            .retain(|m| m.original_start != original);
        c.deleted_occurrences.push(original);
    }
    mb.commit_update(seq, master, item);
    Ok(())
}

/// A calendar folder as a calendar view shows it: singles overlapping `[from, to)` plus the
/// expanded occurrences/exceptions of series, ordered by start.
pub fn expand_calendar(
    mb: &Mailbox,
    folder: &crate::model::FolderId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<StoredItem> {
    let mut out: Vec<StoredItem> = Vec::new();
    for st in mb.items_in(folder) {
        let Some(cal) = st.item.as_calendar() else {
            continue;
        };
        if cal.recurrence.is_some() {
            for slot in cal.instances(from, to) {
                if let Some(inst) = instance_item(st, slot.original_start, slot.index) {
                    out.push(inst);
                }
            }
        } else if cal.start < to && (cal.end > from || (cal.start == cal.end && cal.start >= from))
        {
            out.push(st.clone());
        }
    }
    out.sort_by_key(|st| {
        st.item
            .as_calendar()
            .map(|c| (c.start, c.end))
            .unwrap_or_default()
    });
    out
}
