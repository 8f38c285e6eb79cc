//! The Exchange side of calendar sync, as the core sees it whatever the backend (EWS or Graph).
//!
//! The core never sees a recurring master: mailboxes hand out single events and the occurrences
//! and exceptions of a series inside the sync window (R25), each identified across mailboxes by
//! its [`EventKey`] (series iCalendar UID plus original start). Instants are UTC; all-day events
//! are dates (R20), so they are never shifted by a day by a zone conversion.

use crate::ids::{CrmStamp, ExchangeItemId, IcalUid};
use crate::model::ShowTimeAs;
use crate::ports::ItemRef;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Identifies one event across every mailbox that holds a copy (R24, R25): the series' (or
/// single event's) iCalendar UID, plus the original start for an occurrence or exception.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    pub uid: IcalUid,
    pub original_start: Option<DateTime<Utc>>,
}

impl EventKey {
    pub fn single(uid: IcalUid) -> Self {
        Self {
            uid,
            original_start: None,
        }
    }

    /// The LN `externalReference` of an activity created from this event (R22, R25, R34):
    /// the UID for a single event, `UID/start` (RFC 3339, UTC) for an occurrence.
    pub fn external_reference(&self) -> String {
        match self.original_start {
            None => self.uid.as_str().to_owned(),
            Some(at) => format!(
                "{}/{}",
                self.uid,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }

    /// Parses [`EventKey::external_reference`] back.
    pub fn from_external_reference(value: &str) -> Option<Self> {
        if value.is_empty() {
            return None;
        }
        // A UID may itself contain '/', so only a valid RFC 3339 suffix counts as a start.
        if let Some((uid, start)) = value.rsplit_once('/')
            && let Ok(at) = DateTime::parse_from_rfc3339(start)
            && !uid.is_empty()
        {
            return Some(Self {
                uid: IcalUid::new(uid),
                original_start: Some(at.with_timezone(&Utc)),
            });
        }
        Some(Self::single(IcalUid::new(value)))
    }
}

/// What an event is in its series (EWS `CalendarItemType`, Graph `type`), masters excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Single,
    /// An unmodified occurrence of a series.
    Occurrence,
    /// A modified occurrence of a series.
    Exception,
}

/// When an event happens (R20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventTime {
    /// Instants in UTC.
    Timed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Whole days in the organizer's zone; `end` is exclusive (a one-day event on the 3rd has
    /// start = 3rd, end = 4th), as in EWS, Graph and iCalendar.
    AllDay { start: NaiveDate, end: NaiveDate },
}

/// The fields that are mapped between an Exchange event and an LN activity (R20). Both sides
/// are converted to this before hashing and comparing (R27).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventFields {
    pub subject: Option<String>,
    pub location: Option<String>,
    /// Plain text.
    pub body: Option<String>,
    pub time: EventTime,
    /// Minutes before the start; `None` when no reminder is set.
    pub reminder_minutes: Option<u32>,
    pub show_as: ShowTimeAs,
    /// An LN *Call* (R20): an appointment with the category "Call" in Exchange.
    pub is_call: bool,
}

/// An attendee's role on a meeting (R18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttendeeRole {
    Required,
    Optional,
    Resource,
}

/// An attendee's answer (EWS `ResponseType`, Graph `responseStatus`) (R21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseType {
    /// No answer yet (EWS `Unknown` and `NoResponseReceived`, Graph `none`/`notResponded`).
    None,
    Organizer,
    Tentative,
    Accept,
    Decline,
}

/// Exchange sensitivity (R26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
}

impl Sensitivity {
    /// Private and Confidential events are not copied to LN unless configured (R26).
    pub fn is_private(self) -> bool {
        matches!(self, Sensitivity::Private | Sensitivity::Confidential)
    }
}

/// A person on an event: the organizer or an attendee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventAttendee {
    /// SMTP address as Exchange returns it (compared case-sensitively with LN, R5).
    pub email: String,
    pub name: Option<String>,
    pub role: AttendeeRole,
    pub response: ResponseType,
}

/// One event as read from one mailbox: a single event, an occurrence or an exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub item: ItemRef,
    pub key: EventKey,
    pub kind: EventKind,
    /// The recurring master's id, for occurrences and exceptions.
    pub series_id: Option<ExchangeItemId>,
    /// Our `CrmId` stamp when lnsync created the item (R10).
    pub stamp: Option<CrmStamp>,
    pub fields: EventFields,
    /// The event's own zone as an IANA id (EWS `StartTimeZone`, Graph `originalStartTimeZone`),
    /// mapped from Windows ids through CLDR; `None` when the server did not say.
    pub time_zone: Option<String>,
    pub organizer: Option<EventParty>,
    /// The mailbox owner organizes this meeting (EWS `IsOrganizer`, Graph `isOrganizer`).
    pub is_organizer: bool,
    /// Whether it is a meeting (has attendees) rather than a plain appointment.
    pub is_meeting: bool,
    /// The mailbox owner's own answer, on an attendee's copy.
    pub my_response: ResponseType,
    /// Required, optional and resource attendees with their answers as this copy knows them
    /// (the organizer's copy is the one that collects responses).
    pub attendees: Vec<EventAttendee>,
    pub sensitivity: Sensitivity,
    /// The organizer cancelled the meeting (an attendee's copy that stays as "Canceled: …").
    pub is_cancelled: bool,
    pub last_modified: DateTime<Utc>,
}

/// The organizer of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventParty {
    pub email: String,
    pub name: Option<String>,
}

/// What reading one changed calendar item gives (after `sync_calendar` named it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRead {
    /// A single event, occurrence or exception.
    Event(Box<CalendarEvent>),
    /// A recurring master: every occurrence and exception of the series inside the window
    /// (deleted occurrences are absent), expanded in the series' own zone (R25).
    Series {
        master: ItemRef,
        uid: IcalUid,
        occurrences: Vec<CalendarEvent>,
    },
}

/// A meeting or appointment lnsync creates in the organizer's calendar (R18), with its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub stamp: CrmStamp,
    pub fields: EventFields,
    /// IANA zone the event is created in (StartTimeZone/EndTimeZone); all-day dates are days
    /// of this zone.
    pub time_zone: String,
    /// Invited attendees; responses are ignored on create.
    pub attendees: Vec<EventAttendee>,
}

/// The result of creating an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEvent {
    pub item: ItemRef,
    pub uid: IcalUid,
}

/// A full overwrite of the mapped fields of an event lnsync owns (as organizer), by version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventUpdate {
    pub item: ItemRef,
    pub fields: EventFields,
    pub time_zone: String,
    /// `Some`: replace the attendee list (added attendees are invited, removed ones get a
    /// cancellation). `None`: leave attendees as they are.
    pub attendees: Option<Vec<EventAttendee>>,
    /// Send updates to attendees (a meeting we organize); `false` for a plain appointment.
    pub notify_attendees: bool,
}
