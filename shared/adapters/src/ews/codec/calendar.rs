//! Calendar items on the wire: the operations of the calendar sync (FindItem with CalendarView,
//! GetItem with the full shape, CreateItem/UpdateItem/DeleteItem of `t:CalendarItem`) and the
//! EWS-shaped picture of a read calendar item.
//!
//! Like the contact side, these types stay EWS-shaped (strings for wire enumerations, Windows
//! zone ids): the mailbox adapter maps them to and from the core's calendar model, which keeps
//! the time-zone and field decisions in one place and the codec a faithful picture of the XML.
//! Element order follows types.xsd (ItemType's fields, then CalendarItemType's); the tests
//! validate every request against the schemas.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

use super::request::{Operation, WriteBody, write_item_ids, write_shape};
use super::types::{ExtendedField, FolderRef, ItemId, PropertyPath};
use super::xml::{Element, XmlBuilder};

/// Exchange refuses a CalendarView longer than two years (ErrorCalendarViewRangeTooBig); 730 days
/// is never more than two years, leap years included.
pub const MAX_CALENDAR_VIEW_DAYS: i64 = 730;

/// Who Exchange notifies about a calendar write. The same two values exist in
/// `CalendarItemCreateOrDeleteOperationType` (CreateItem, DeleteItem) and
/// `CalendarItemUpdateOperationType` (UpdateItem); the others are not used by lnsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeetingMessages {
    /// Nobody: plain appointments, and writes that must stay silent.
    SendToNone,
    /// Every attendee, with a copy in the organizer's Sent Items (what Outlook does).
    SendToAllAndSaveCopy,
}

impl MeetingMessages {
    fn as_str(self) -> &'static str {
        match self {
            Self::SendToNone => "SendToNone",
            Self::SendToAllAndSaveCopy => "SendToAllAndSaveCopy",
        }
    }
}

/// A mailbox on a calendar item (`t:Mailbox` inside `Organizer` or `Attendee`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Recipient {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Recipient {
    fn write(&self, b: &mut XmlBuilder) {
        b.element("t:Mailbox", &[], |b| {
            if let Some(name) = &self.name {
                b.text_element("t:Name", &[], name);
            }
            if let Some(email) = &self.email {
                b.text_element("t:EmailAddress", &[], email);
            }
        });
    }

    fn parse(mailbox: Option<&Element>) -> Option<Self> {
        let mailbox = mailbox?;
        let text = |n: &str| {
            mailbox
                .child_text(n)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            name: text("Name"),
            email: text("EmailAddress"),
        })
    }
}

/// An attendee as read: the mailbox and its `ResponseType` (`Unknown`, `Organizer`, `Tentative`,
/// `Accept`, `Decline`, `NoResponseReceived`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AttendeeInfo {
    pub mailbox: Recipient,
    pub response: Option<String>,
}

/// The three attendee lists of a meeting, each in the order Exchange keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttendeeLists {
    pub required: Vec<Recipient>,
    pub optional: Vec<Recipient>,
    pub resources: Vec<Recipient>,
}

/// What lnsync writes into a calendar item, already resolved to wire values by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarWrite {
    /// The R10 stamp; written on create only (an update never touches it).
    pub stamp: Option<String>,
    pub subject: Option<String>,
    /// Plain text (`BodyType="Text"`).
    pub body: Option<String>,
    pub categories: Vec<String>,
    /// `None`: no reminder.
    pub reminder_minutes: Option<u32>,
    /// `xs:dateTime` text: `…Z` for timed events, local midnight with its offset for all-day ones.
    pub start: String,
    pub end: String,
    pub all_day: bool,
    /// `LegacyFreeBusyType`: `Free`, `Tentative`, `Busy`, `OOF`.
    pub free_busy: &'static str,
    pub location: Option<String>,
    /// `None` on an update leaves the attendees alone.
    pub attendees: Option<AttendeeLists>,
    /// Windows zone id for StartTimeZone/EndTimeZone; `None` leaves the server's choice.
    pub time_zone: Option<String>,
}

/// One UpdateItem change: the item at the version the caller read, and its new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarChange {
    pub id: ItemId,
    pub write: CalendarWrite,
}

/// `t:Attendee` elements of one list.
fn write_attendees(b: &mut XmlBuilder, element: &str, list: &[Recipient]) {
    b.element(element, &[], |b| {
        for r in list {
            b.element("t:Attendee", &[], |b| r.write(b));
        }
    });
}

fn write_categories(b: &mut XmlBuilder, categories: &[String]) {
    b.element("t:Categories", &[], |b| {
        for c in categories {
            b.text_element("t:String", &[], c);
        }
    });
}

fn bool_text(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

/// `<t:CalendarItem>` for CreateItem, fields in XSD order: ItemType's Subject, Body, Categories,
/// ReminderIsSet, ReminderMinutesBeforeStart, ExtendedProperty, then CalendarItemType's Start,
/// End, IsAllDayEvent, LegacyFreeBusyStatus, Location, the attendee lists, StartTimeZone and
/// EndTimeZone.
pub(crate) fn write_calendar_item(b: &mut XmlBuilder, w: &CalendarWrite) {
    b.element("t:CalendarItem", &[], |b| {
        if let Some(subject) = &w.subject {
            b.text_element("t:Subject", &[], subject);
        }
        if let Some(body) = &w.body {
            b.text_element("t:Body", &[("BodyType", "Text")], body);
        }
        if !w.categories.is_empty() {
            write_categories(b, &w.categories);
        }
        b.text_element(
            "t:ReminderIsSet",
            &[],
            bool_text(w.reminder_minutes.is_some()),
        );
        if let Some(minutes) = w.reminder_minutes {
            b.text_element("t:ReminderMinutesBeforeStart", &[], &minutes.to_string());
        }
        if let Some(stamp) = &w.stamp {
            b.element("t:ExtendedProperty", &[], |b| {
                ExtendedField::CRM_ID.write(b);
                b.text_element("t:Value", &[], stamp);
            });
        }
        b.text_element("t:Start", &[], &w.start);
        b.text_element("t:End", &[], &w.end);
        b.text_element("t:IsAllDayEvent", &[], bool_text(w.all_day));
        b.text_element("t:LegacyFreeBusyStatus", &[], w.free_busy);
        if let Some(location) = &w.location {
            b.text_element("t:Location", &[], location);
        }
        if let Some(lists) = &w.attendees {
            // NonEmptyArrayOfAttendeesType: an empty list is left out, not written empty.
            for (element, list) in [
                ("t:RequiredAttendees", &lists.required),
                ("t:OptionalAttendees", &lists.optional),
                ("t:Resources", &lists.resources),
            ] {
                if !list.is_empty() {
                    write_attendees(b, element, list);
                }
            }
        }
        if let Some(zone) = &w.time_zone {
            b.empty("t:StartTimeZone", &[("Id", zone)]);
            b.empty("t:EndTimeZone", &[("Id", zone)]);
        }
    });
}

/// `<t:SetItemField>` of one calendar field.
fn set_field(b: &mut XmlBuilder, uri: &'static str, inner: impl FnOnce(&mut XmlBuilder)) {
    b.element("t:SetItemField", &[], |b| {
        PropertyPath::Field(uri).write(b);
        b.element("t:CalendarItem", &[], inner);
    });
}

fn delete_field(b: &mut XmlBuilder, uri: &'static str) {
    b.element("t:DeleteItemField", &[], |b| {
        PropertyPath::Field(uri).write(b)
    });
}

fn set_or_delete_text(b: &mut XmlBuilder, uri: &'static str, element: &str, v: Option<&str>) {
    match v {
        Some(v) => set_field(b, uri, |b| b.text_element(element, &[], v)),
        None => delete_field(b, uri),
    }
}

/// `<t:ItemChange>` that makes the item equal to `change.write` in every mapped field (a full
/// overwrite): filled fields are set, empty ones deleted. The zones are set before Start/End,
/// and Start/End are always sent with them, because a zone-only change would shift the
/// wall-clock times (exchange.md §2.6).
pub(crate) fn write_item_change(b: &mut XmlBuilder, change: &CalendarChange) {
    let w = &change.write;
    b.element("t:ItemChange", &[], |b| {
        change.id.write(b, "t:ItemId");
        b.element("t:Updates", &[], |b| {
            set_or_delete_text(b, "item:Subject", "t:Subject", w.subject.as_deref());
            // An empty body is set rather than deleted: every item has a body property.
            set_field(b, "item:Body", |b| {
                b.text_element(
                    "t:Body",
                    &[("BodyType", "Text")],
                    w.body.as_deref().unwrap_or(""),
                )
            });
            if w.categories.is_empty() {
                delete_field(b, "item:Categories");
            } else {
                set_field(b, "item:Categories", |b| write_categories(b, &w.categories));
            }
            set_field(b, "item:ReminderIsSet", |b| {
                b.text_element(
                    "t:ReminderIsSet",
                    &[],
                    bool_text(w.reminder_minutes.is_some()),
                )
            });
            if let Some(minutes) = w.reminder_minutes {
                set_field(b, "item:ReminderMinutesBeforeStart", |b| {
                    b.text_element("t:ReminderMinutesBeforeStart", &[], &minutes.to_string())
                });
            }
            if let Some(zone) = &w.time_zone {
                set_field(b, "calendar:StartTimeZone", |b| {
                    b.empty("t:StartTimeZone", &[("Id", zone)])
                });
                set_field(b, "calendar:EndTimeZone", |b| {
                    b.empty("t:EndTimeZone", &[("Id", zone)])
                });
            }
            set_field(b, "calendar:Start", |b| {
                b.text_element("t:Start", &[], &w.start)
            });
            set_field(b, "calendar:End", |b| b.text_element("t:End", &[], &w.end));
            set_field(b, "calendar:IsAllDayEvent", |b| {
                b.text_element("t:IsAllDayEvent", &[], bool_text(w.all_day))
            });
            set_field(b, "calendar:LegacyFreeBusyStatus", |b| {
                b.text_element("t:LegacyFreeBusyStatus", &[], w.free_busy)
            });
            set_or_delete_text(b, "calendar:Location", "t:Location", w.location.as_deref());
            if let Some(lists) = &w.attendees {
                for (uri, element, list) in [
                    (
                        "calendar:RequiredAttendees",
                        "t:RequiredAttendees",
                        &lists.required,
                    ),
                    (
                        "calendar:OptionalAttendees",
                        "t:OptionalAttendees",
                        &lists.optional,
                    ),
                    ("calendar:Resources", "t:Resources", &lists.resources),
                ] {
                    if list.is_empty() {
                        delete_field(b, uri);
                    } else {
                        set_field(b, uri, |b| write_attendees(b, element, list));
                    }
                }
            }
        });
    });
}

/// `xs:dateTime` in UTC with a `Z`, as Exchange reads literally whatever the zones say.
pub fn utc_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads an `xs:dateTime`: with `Z` or an offset as is, without one as UTC (Exchange answers
/// in UTC unless a request's TimeZoneContext says otherwise, and we never send one).
pub fn parse_date_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A calendar item as the server returned it; every field is optional because each request
/// asks for a different shape (a CalendarView page only has Start/End/type/UID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarData {
    pub subject: Option<String>,
    /// Body text as returned (we ask for `BodyType` Text).
    pub body: Option<String>,
    pub sensitivity: Option<String>,
    pub categories: Vec<String>,
    pub reminder_is_set: Option<bool>,
    pub reminder_minutes: Option<u32>,
    pub last_modified: Option<DateTime<Utc>>,
    pub uid: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// The occurrence's slot in its series, for occurrences and exceptions.
    pub original_start: Option<DateTime<Utc>>,
    pub is_all_day: Option<bool>,
    pub free_busy: Option<String>,
    pub location: Option<String>,
    pub is_meeting: Option<bool>,
    pub is_cancelled: Option<bool>,
    /// `Single`, `Occurrence`, `Exception` or `RecurringMaster`.
    pub item_type: Option<String>,
    pub my_response: Option<String>,
    pub organizer: Option<Recipient>,
    pub required: Vec<AttendeeInfo>,
    pub optional: Vec<AttendeeInfo>,
    pub resources: Vec<AttendeeInfo>,
    /// `StartTimeZone/@Id` (a Windows id, or a custom definition's id).
    pub start_time_zone: Option<String>,
}

fn attendees(el: &Element, list: &str) -> Vec<AttendeeInfo> {
    el.child(list)
        .map(|l| {
            l.children_named("Attendee")
                .filter_map(|a| {
                    Some(AttendeeInfo {
                        mailbox: Recipient::parse(a.child("Mailbox"))?,
                        response: a.child_text("ResponseType").map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_bool(text: Option<&str>) -> Option<bool> {
    match text {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        _ => None,
    }
}

/// Reads a `t:CalendarItem` element.
pub(crate) fn parse_calendar_item(el: &Element) -> CalendarData {
    let text = |n: &str| el.child_text(n).map(str::to_owned);
    let time = |n: &str| el.child_text(n).and_then(parse_date_time);
    CalendarData {
        subject: text("Subject"),
        // Not trimmed here: the adapter normalises line ends and trailing space itself.
        body: el.child("Body").map(|b| b.text.clone()),
        sensitivity: text("Sensitivity"),
        categories: el
            .child("Categories")
            .map(|c| {
                c.children_named("String")
                    .map(|s| s.text.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        reminder_is_set: parse_bool(el.child_text("ReminderIsSet")),
        reminder_minutes: el
            .child_text("ReminderMinutesBeforeStart")
            .and_then(|m| m.parse().ok()),
        last_modified: time("LastModifiedTime"),
        uid: text("UID").filter(|u| !u.is_empty()),
        start: time("Start"),
        end: time("End"),
        original_start: time("OriginalStart"),
        is_all_day: parse_bool(el.child_text("IsAllDayEvent")),
        free_busy: text("LegacyFreeBusyStatus"),
        location: text("Location"),
        is_meeting: parse_bool(el.child_text("IsMeeting")),
        is_cancelled: parse_bool(el.child_text("IsCancelled")),
        item_type: text("CalendarItemType"),
        my_response: text("MyResponseType"),
        organizer: el
            .child("Organizer")
            .and_then(|o| Recipient::parse(o.child("Mailbox"))),
        required: attendees(el, "RequiredAttendees"),
        optional: attendees(el, "OptionalAttendees"),
        resources: attendees(el, "Resources"),
        start_time_zone: el
            .child("StartTimeZone")
            .and_then(|z| z.attr("Id"))
            .map(str::to_owned),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// What a CalendarView page returns per item: enough to page, to group occurrences by series and
/// to decide what to read in full.
pub const VIEW_SHAPE: &[PropertyPath] = &[
    PropertyPath::Field("calendar:Start"),
    PropertyPath::Field("calendar:End"),
    PropertyPath::Field("calendar:CalendarItemType"),
    PropertyPath::Field("calendar:UID"),
];

/// Every field the calendar sync maps or decides on (R20–R26), plus the stamp.
pub const FULL_SHAPE: &[PropertyPath] = &[
    PropertyPath::Field("item:Subject"),
    PropertyPath::Field("item:Body"),
    PropertyPath::Field("item:Sensitivity"),
    PropertyPath::Field("item:Categories"),
    PropertyPath::Field("item:ReminderIsSet"),
    PropertyPath::Field("item:ReminderMinutesBeforeStart"),
    PropertyPath::Field("item:LastModifiedTime"),
    PropertyPath::Extended(ExtendedField::CRM_ID),
    PropertyPath::Field("calendar:UID"),
    PropertyPath::Field("calendar:Start"),
    PropertyPath::Field("calendar:End"),
    PropertyPath::Field("calendar:OriginalStart"),
    PropertyPath::Field("calendar:IsAllDayEvent"),
    PropertyPath::Field("calendar:LegacyFreeBusyStatus"),
    PropertyPath::Field("calendar:Location"),
    PropertyPath::Field("calendar:IsMeeting"),
    PropertyPath::Field("calendar:IsCancelled"),
    PropertyPath::Field("calendar:CalendarItemType"),
    PropertyPath::Field("calendar:MyResponseType"),
    PropertyPath::Field("calendar:Organizer"),
    PropertyPath::Field("calendar:RequiredAttendees"),
    PropertyPath::Field("calendar:OptionalAttendees"),
    PropertyPath::Field("calendar:Resources"),
    PropertyPath::Field("calendar:StartTimeZone"),
];

/// One page of a calendar window (FindItem + CalendarView): singles, occurrences and exceptions
/// overlapping `[start, end)`, sorted by start. CalendarView has no offset: the caller pages by
/// moving `start` (exchange.md §2.3) and keeps the span within [`MAX_CALENDAR_VIEW_DAYS`].
#[derive(Debug, Clone, Copy)]
pub struct FindCalendarView<'a> {
    pub folder: &'a FolderRef,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub max_entries: u32,
}

impl Operation for FindCalendarView<'_> {
    fn name(&self) -> &'static str {
        "FindItem"
    }
}

impl WriteBody for FindCalendarView<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:FindItem", &[("Traversal", "Shallow")], |b| {
            write_shape(b, "m:ItemShape", VIEW_SHAPE);
            let max = self.max_entries.max(1).to_string();
            b.empty(
                "m:CalendarView",
                &[
                    ("MaxEntriesReturned", &max),
                    ("StartDate", &utc_text(self.start)),
                    ("EndDate", &utc_text(self.end)),
                ],
            );
            b.element("m:ParentFolderIds", &[], |b| self.folder.write(b));
        });
    }
}

/// Reads calendar items with [`FULL_SHAPE`] and the body as plain text.
#[derive(Debug, Clone, Copy)]
pub struct GetCalendarItems<'a> {
    pub ids: &'a [ItemId],
}

impl Operation for GetCalendarItems<'_> {
    fn name(&self) -> &'static str {
        "GetItem"
    }
}

impl WriteBody for GetCalendarItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:GetItem", &[], |b| {
            b.element("m:ItemShape", &[], |b| {
                b.text_element("t:BaseShape", &[], "IdOnly");
                // Text, not HTML: R20 maps the body as plain text, and Exchange converts.
                b.text_element("t:BodyType", &[], "Text");
                b.element("t:AdditionalProperties", &[], |b| {
                    for p in FULL_SHAPE {
                        p.write(b);
                    }
                });
            });
            write_item_ids(b, self.ids);
        });
    }
}

/// Reads the recurring masters of occurrences (`t:RecurringMasterItemId`), ids and UIDs only:
/// a CalendarView names occurrences, and the core wants each occurrence's series id.
#[derive(Debug, Clone, Copy)]
pub struct GetRecurringMasters<'a> {
    /// Ids of one occurrence or exception per series.
    pub occurrence_ids: &'a [String],
}

impl Operation for GetRecurringMasters<'_> {
    fn name(&self) -> &'static str {
        "GetItem"
    }
}

impl WriteBody for GetRecurringMasters<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:GetItem", &[], |b| {
            write_shape(b, "m:ItemShape", &[PropertyPath::Field("calendar:UID")]);
            b.element("m:ItemIds", &[], |b| {
                for id in self.occurrence_ids {
                    b.empty("t:RecurringMasterItemId", &[("OccurrenceId", id)]);
                }
            });
        });
    }
}

/// Creates calendar items in `folder` (the calendar), as organizer.
#[derive(Debug, Clone, Copy)]
pub struct CreateCalendarItems<'a> {
    pub folder: &'a FolderRef,
    pub items: &'a [CalendarWrite],
    /// Required for calendar items: SendToAllAndSaveCopy invites the attendees.
    pub send: MeetingMessages,
}

impl Operation for CreateCalendarItems<'_> {
    fn name(&self) -> &'static str {
        "CreateItem"
    }
}

impl WriteBody for CreateCalendarItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element(
            "m:CreateItem",
            &[("SendMeetingInvitations", self.send.as_str())],
            |b| {
                b.element("m:SavedItemFolderId", &[], |b| self.folder.write(b));
                b.element("m:Items", &[], |b| {
                    for item in self.items {
                        write_calendar_item(b, item);
                    }
                });
            },
        );
    }
}

/// Overwrites calendar items at the caller's versions. `NeverOverwrite`: a concurrent change to
/// a field we set fails the item with ErrorIrresolvableConflict instead of being merged away, so
/// the core sees the conflict and applies its policy (R28).
#[derive(Debug, Clone, Copy)]
pub struct UpdateCalendarItems<'a> {
    pub changes: &'a [CalendarChange],
    /// Required for calendar items: SendToAllAndSaveCopy sends updates (and cancellations to
    /// removed attendees).
    pub send: MeetingMessages,
}

impl Operation for UpdateCalendarItems<'_> {
    fn name(&self) -> &'static str {
        "UpdateItem"
    }
}

impl WriteBody for UpdateCalendarItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element(
            "m:UpdateItem",
            &[
                ("ConflictResolution", "NeverOverwrite"),
                ("SendMeetingInvitationsOrCancellations", self.send.as_str()),
            ],
            |b| {
                b.element("m:ItemChanges", &[], |b| {
                    for change in self.changes {
                        write_item_change(b, change);
                    }
                });
            },
        );
    }
}

/// Cancels (organizer's meetings) or deletes (appointments) calendar items. They go to Deleted
/// Items rather than being purged, so a user can still recover a meeting lnsync cancelled.
#[derive(Debug, Clone, Copy)]
pub struct CancelCalendarItems<'a> {
    pub ids: &'a [ItemId],
    /// Required for calendar items: SendToAllAndSaveCopy sends the cancellations (R29).
    pub send: MeetingMessages,
}

impl Operation for CancelCalendarItems<'_> {
    fn name(&self) -> &'static str {
        "DeleteItem"
    }
}

impl WriteBody for CancelCalendarItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element(
            "m:DeleteItem",
            &[
                ("DeleteType", "MoveToDeletedItems"),
                ("SendMeetingCancellations", self.send.as_str()),
            ],
            |b| write_item_ids(b, self.ids),
        );
    }
}
