//! The Exchange side of a user's calendar run: the saved cursor, the incremental read (one
//! `SyncFolderItems` when idle) or the full listing (first run, R38), and the mapping of an
//! Exchange event to what the planner sees.

use super::SyncError;
use crate::calendar::*;
use crate::error::{Classify, ErrorClass, ItemError, MailboxError};
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The user's Exchange calendar cursor (`ExchangeCalendar`), JSON `{sync, windowEnd, pending}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarCursor {
    pub sync: Option<String>,
    pub window_end: Option<DateTime<Utc>>,
    /// Attendee copies seen before their owner's link existed: R19's *Synchronized* flag is set
    /// once the link appears (checked in the store, no Exchange call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingCopy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCopy {
    pub uid: IcalUid,
    pub original_start: Option<DateTime<Utc>>,
    pub owner: UserId,
}

/// At most this many pending copies are kept per user; older ones are dropped.
pub(super) const MAX_PENDING: usize = 200;

/// What one run read from the user's calendar.
pub(super) struct ExchangeRead {
    pub events: Vec<CalendarEvent>,
    /// Masters read this run: (id, uid, keys of the occurrences listed).
    pub series: Vec<(ExchangeItemId, IcalUid, HashSet<EventKey>)>,
    pub deleted: Vec<ExchangeItemId>,
    pub cursor: FolderCursor,
    /// A full listing (first run or R38 reset).
    pub full: bool,
}

impl ExchangeRead {
    /// Nothing read yet.
    pub(super) fn empty() -> Self {
        Self {
            events: Vec::new(),
            series: Vec::new(),
            deleted: Vec::new(),
            cursor: FolderCursor(String::new()),
            full: false,
        }
    }

    /// Takes in what `get_events` answered for `id`: an event, a master's occurrences in the
    /// window (R25), or — `NotFound` — a deletion. Any other per-item error fails the read, so
    /// nothing is decided on a partial view of the item.
    pub(super) fn add(
        &mut self,
        id: &ExchangeItemId,
        outcome: ItemOutcome<EventRead>,
    ) -> Result<(), SyncError> {
        match outcome {
            Ok(EventRead::Event(ev)) => self.events.push(*ev),
            Ok(EventRead::Series {
                master,
                uid,
                occurrences,
            }) => {
                let keys = occurrences.iter().map(|o| o.key.clone()).collect();
                self.series.push((master.id, uid, keys));
                self.events.extend(occurrences);
            }
            // Gone between the notice (sync or push) and the read: a deletion.
            Err(ItemError::NotFound(_)) => self.deleted.push(id.clone()),
            Err(e) => {
                return Err(SyncError::Mailbox(MailboxError::Server {
                    code: "GetItem".into(),
                    message: e.to_string(),
                    transient: matches!(
                        e.class(),
                        ErrorClass::Transient | ErrorClass::Throttled(_)
                    ),
                }));
            }
        }
        Ok(())
    }

    /// A full listing that shows nothing: R30's signal that something is wrong with the
    /// mailbox or the account, unless no link is left to protect.
    pub fn is_empty_listing(&self) -> bool {
        self.full && self.events.is_empty()
    }
}

/// Reads the calendar: incrementally from the saved cursor, or (first run, R38) by taking a
/// fresh cursor first and then listing the window, so nothing that changes in between is lost.
pub(super) async fn read_exchange(
    mailbox: &dyn Mailbox,
    me: &MailboxAddress,
    exc: &CalendarCursor,
    window: Window,
) -> Result<ExchangeRead, SyncError> {
    let mut read = ExchangeRead::empty();
    let mut changed: Vec<ExchangeItemId> = Vec::new();
    let mut cursor = exc.sync.clone().map(FolderCursor);
    let incremental = cursor.is_some();
    loop {
        let page = match mailbox.sync_calendar(me, cursor.as_ref(), window).await {
            Err(MailboxError::InvalidCursor { .. })
                if cursor.is_some() && incremental && !read.full =>
            {
                read.full = true;
                changed.clear();
                read.deleted.clear();
                cursor = None;
                continue;
            }
            other => other?,
        };
        if incremental && !read.full {
            for c in page.changes {
                match c {
                    FolderChange::Upsert { item, .. } => changed.push(item.id),
                    FolderChange::Deleted { id } => read.deleted.push(id),
                }
            }
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    read.cursor = cursor.unwrap_or_else(|| FolderCursor(String::new()));
    if !incremental || read.full {
        read.full = true;
        read.events = mailbox.calendar_view(me, window).await?;
        return Ok(read);
    }
    changed.sort();
    changed.dedup();
    read.deleted.retain(|d| !changed.contains(d));
    for chunk in changed.chunks(mailbox.max_batch().max(1)) {
        let outcomes = mailbox.get_events(me, chunk, window).await?;
        for (id, outcome) in chunk.iter().zip(outcomes) {
            read.add(id, outcome)?;
        }
    }
    // R16: events that entered the window since the last run, without changing.
    if let Some(old_end) = exc.window_end
        && old_end < window.end
    {
        let slice = Window {
            start: old_end.max(window.start),
            end: window.end,
        };
        let known: HashSet<ExchangeItemId> =
            read.events.iter().map(|e| e.item.id.clone()).collect();
        for ev in mailbox.calendar_view(me, slice).await? {
            let (start, _) = time_bounds(&ev.fields.time, event_zone(&ev, Tz::UTC));
            if start >= old_end && !known.contains(&ev.item.id) {
                read.events.push(ev);
            }
        }
    }
    Ok(read)
}

/// The activity key of one of our `CrmId` stamps (`ln:<env>:activity:<key>`).
pub fn stamped_activity(env: &EnvironmentId, stamp: Option<&CrmStamp>) -> Option<ActivityKey> {
    let rest = stamp?.as_str().strip_prefix("ln:")?;
    let rest = rest.strip_prefix(env.as_str())?;
    rest.strip_prefix(":activity:").map(ActivityKey::new)
}

pub(super) fn event_zone(ev: &CalendarEvent, fallback: Tz) -> Tz {
    ev.time_zone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(fallback)
}

/// An Exchange event as the planner sees it.
pub fn ex_event(
    env: &EnvironmentId,
    ev: &CalendarEvent,
    owner: &MailboxAddress,
    tz: Tz,
) -> ExEvent {
    let content = EventContent::new(ev.fields.clone(), &ev.attendees, owner.as_str());
    let (_, end) = time_bounds(&ev.fields.time, event_zone(ev, tz));
    ExEvent {
        item: ev.item.clone(),
        key: ev.key.clone(),
        series_id: ev.series_id.clone(),
        hash: content.hash(),
        content,
        modified: ev.last_modified,
        stamped: stamped_activity(env, ev.stamp.as_ref()),
        organizer: ev.organizer.as_ref().map(|o| o.email.clone()),
        attendees: ev.attendees.clone(),
        time_zone: ev.time_zone.clone(),
        end,
    }
}

/// R38: a full listing deletes nothing on its own word. Of the `linked` items the listing did
/// not show, returns those Exchange answers `NotFound` for when read by id: only those count as
/// deleted (and still go through the R30 gate).
pub(super) async fn confirm_missing(
    env: &EnvironmentId,
    mailbox: &dyn Mailbox,
    me: &MailboxAddress,
    window: Window,
    read: &ExchangeRead,
    linked: &[Link],
) -> Result<Vec<Link>, SyncError> {
    let listed: HashSet<&ExchangeItemId> = read.events.iter().map(|e| &e.item.id).collect();
    // A linked event listed under another id is not missing: ids change when a mailbox moves
    // (or its backend switches from EWS to Graph), the event's key and our stamp do not. The
    // pair is matched by key and its link takes the new id.
    let keys: HashSet<(&IcalUid, Option<DateTime<Utc>>)> = read
        .events
        .iter()
        .map(|e| (&e.key.uid, e.key.original_start))
        .collect();
    let missing: Vec<&Link> = linked
        .iter()
        .filter(|l| !l.is_intent() && !listed.contains(&l.exchange_id))
        .filter(|l| {
            l.ical_uid.as_ref().is_none_or(|uid| {
                !keys.contains(&(uid, l.event.as_ref().and_then(|e| e.original_start)))
            })
        })
        .filter(|l| l.event.as_ref().is_none_or(|e| e.end >= window.start))
        .collect();
    let mut gone = Vec::new();
    for chunk in missing.chunks(mailbox.max_batch().max(1)) {
        let ids: Vec<ExchangeItemId> = chunk.iter().map(|l| l.exchange_id.clone()).collect();
        let outcomes = mailbox.get_events(me, &ids, window).await?;
        for (l, outcome) in chunk.iter().zip(outcomes) {
            if let Err(ItemError::NotFound(_)) = outcome {
                gone.push((*l).clone());
            }
        }
    }
    // Not found by its id may still mean there under another one (a backend switch whose
    // event has since left the window): what carries our stamp is not gone.
    let stamps: Vec<CrmStamp> = gone
        .iter()
        .filter(|l| l.origin == Origin::Ln)
        .map(|l| CrmStamp::activity(env, &ActivityKey::new(l.ln_key.as_str())))
        .collect();
    if !stamps.is_empty() {
        let found: HashSet<CrmStamp> = mailbox
            .find_stamped_events(me, &stamps)
            .await?
            .into_iter()
            .map(|s| s.stamp)
            .collect();
        gone.retain(|l| {
            l.origin != Origin::Ln
                || !found.contains(&CrmStamp::activity(
                    env,
                    &ActivityKey::new(l.ln_key.as_str()),
                ))
        });
    }
    Ok(gone)
}
