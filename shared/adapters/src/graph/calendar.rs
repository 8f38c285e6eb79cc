//! The calendar half of [`GraphMailbox`] (R15–R30, exchange.md §3.3–3.5): calendarView and its
//! delta, reads by id (series expanded with `instances`), the lookup by stamp, event writes, and
//! the mapping between Graph events and the core's calendar model.
//!
//! Keys (R24, R25): Graph's `iCalUId` differs per occurrence, so an occurrence or exception is
//! keyed by its series master's `iCalUId` (the series UID, as EWS reports it) plus its
//! `originalStart`; masters are read once per series and call.
//!
//! Time (R20): reads are in UTC (`Prefer: outlook.timezone="UTC"`). Timed events stay instants;
//! all-day events become dates in the event's own zone (`originalStartTimeZone`), so a zone
//! conversion never moves them by a day. Writes name the event's zone by its Windows id: timed
//! events as local wall time in it (UTC when that is ambiguous or the zone has no Windows id),
//! all-day events as local midnights.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use lnsync_core::calendar::{
    AttendeeRole, CalendarEvent, CreatedEvent, EventAttendee, EventFields, EventKey, EventKind,
    EventParty, EventRead, EventTime, EventUpdate, NewEvent, ResponseType, Sensitivity,
};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, ExchangeVersion, IcalUid, MailboxAddress};
use lnsync_core::model::ShowTimeAs;
use lnsync_core::ports::{
    FolderChange, FolderChanges, FolderCursor, ItemOutcome, ItemRef, StampedItem, Window,
};
use serde_json::Value;

use super::classify;
use super::client::{Answer, Page, Request, encode_segment, query, user_path};
use super::contacts::Stamped;
use super::cursor::DeltaCursor;
use super::mailbox::{GraphMailbox, change_key, etag};
use super::model::{
    self, Attendee, AttendeeType, BodyType, CRM_ID_PROPERTY, DateTimeTimeZone, EmailAddress, Event,
    EventType, EventWrite, ExtendedProperty, FreeBusyStatus, ItemBody, Location, expand_stamp,
    extended_value,
};
use crate::exchange::{
    CALL_CATEGORY, DEFAULT_REMINDER_MINUTES, merged_categories, nearest_midnight_date,
    normalize_text, short_text,
};
use crate::tz;

/// How far past the run's window the first delta round looks: the window moves a day a day, so
/// a delta token stays usable this long before its window no longer covers the run's (then the
/// core re-reads in full, R38).
const DELTA_MARGIN_DAYS: i64 = 30;

fn failed(code: &str, message: impl Into<String>) -> ItemError {
    ItemError::Failed {
        code: code.to_owned(),
        message: message.into(),
        transient: false,
    }
}

fn is_master(ev: &Event) -> bool {
    ev.event_type == Some(EventType::SeriesMaster)
}

fn is_instance(ev: &Event) -> bool {
    matches!(
        ev.event_type,
        Some(EventType::Occurrence | EventType::Exception)
    )
}

fn stamp_text(ev: &Event) -> Option<&str> {
    extended_value(
        ev.single_value_extended_properties.as_deref(),
        CRM_ID_PROPERTY,
    )
}

fn item_ref(ev: &Event) -> ItemRef {
    ItemRef {
        id: ExchangeItemId::new(ev.id.clone()),
        version: ExchangeVersion::new(change_key(ev.change_key.as_deref(), ev.etag.as_deref())),
    }
}

impl Stamped for Event {
    fn item_ref(&self) -> ItemRef {
        item_ref(self)
    }

    fn stamp(&self) -> Option<&str> {
        stamp_text(self)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    // Our models are plain data; serializing them cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

/// An event addressed through the calendar: one the user deleted sits in Deleted Items under
/// the same immutable id, and must read as gone (404 here) rather than be read or written there.
fn event_path(mailbox: &MailboxAddress, id: &str) -> String {
    format!(
        "{}/calendar/events/{}",
        user_path(mailbox),
        encode_segment(id)
    )
}

fn utc_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// Graph → core
// ---------------------------------------------------------------------------------------------

/// The zone rules of a zone id as Graph writes it: a Windows id (`W. Europe Standard Time`) or
/// one of the IANA ids Graph also accepts.
fn zone_of(id: &str) -> Option<Tz> {
    tz::windows_zone(id).or_else(|| tz::parse_iana(id).ok())
}

/// The IANA id of a zone id as Graph writes it.
fn iana_of(id: &str) -> Option<String> {
    match tz::windows_to_iana(id) {
        Some(iana) => Some(iana.to_owned()),
        None => tz::parse_iana(id).ok().map(|z| z.name().to_owned()),
    }
}

/// An instant from a `dateTimeTimeZone`: UTC as asked for, else read in the zone it names.
fn instant(value: &DateTimeTimeZone) -> Option<DateTime<Utc>> {
    let text = value.date_time.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let zone = value
        .time_zone
        .as_deref()
        .map(str::trim)
        .filter(|z| !z.is_empty() && !z.eq_ignore_ascii_case("UTC"));
    match zone {
        None => Some(naive.and_utc()),
        Some(z) => zone_of(z)?
            .from_local_datetime(&naive)
            .earliest()
            .map(|at| at.with_timezone(&Utc)),
    }
}

fn response(value: Option<&model::ResponseStatus>) -> ResponseType {
    match value.and_then(|s| s.response) {
        Some(model::ResponseType::Organizer) => ResponseType::Organizer,
        Some(model::ResponseType::TentativelyAccepted) => ResponseType::Tentative,
        Some(model::ResponseType::Accepted) => ResponseType::Accept,
        Some(model::ResponseType::Declined) => ResponseType::Decline,
        // none, notResponded, or nothing said.
        _ => ResponseType::None,
    }
}

fn show_as(value: Option<FreeBusyStatus>) -> ShowTimeAs {
    match value {
        Some(FreeBusyStatus::Free) => ShowTimeAs::Free,
        Some(FreeBusyStatus::Tentative) => ShowTimeAs::Tentative,
        Some(FreeBusyStatus::Oof) => ShowTimeAs::OutOfOffice,
        // busy, workingElsewhere, unknown: R20 maps the others to Busy.
        _ => ShowTimeAs::Busy,
    }
}

fn free_busy(value: ShowTimeAs) -> FreeBusyStatus {
    match value {
        ShowTimeAs::Free => FreeBusyStatus::Free,
        ShowTimeAs::Busy => FreeBusyStatus::Busy,
        ShowTimeAs::Tentative => FreeBusyStatus::Tentative,
        ShowTimeAs::OutOfOffice => FreeBusyStatus::Oof,
    }
}

fn sensitivity(value: Option<model::Sensitivity>) -> Sensitivity {
    match value {
        Some(model::Sensitivity::Personal) => Sensitivity::Personal,
        Some(model::Sensitivity::Private) => Sensitivity::Private,
        Some(model::Sensitivity::Confidential) => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

fn span(ev: &Event) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((instant(ev.start.as_ref()?)?, instant(ev.end.as_ref()?)?))
}

fn event_time(ev: &Event) -> Result<EventTime, ItemError> {
    let Some((start, end)) = span(ev) else {
        return Err(failed(
            "IncompleteCalendarItem",
            "Graph returned an event without a readable start/end",
        ));
    };
    if ev.is_all_day != Some(true) {
        return Ok(EventTime::Timed { start, end });
    }
    let zone = ev.original_start_time_zone.as_deref().and_then(zone_of);
    // Graph shows an all-day event as floating midnights labelled with the zone the request
    // asked for (UTC here): those dates are the event's days as they are, and reading them as
    // UTC instants would put a zone west of UTC one day early. A server that did convert them
    // answers another time of day: that instant is taken back to the event's own zone.
    let date = |value: Option<&DateTimeTimeZone>, at| match value.and_then(wall_time) {
        Some(wall) if wall.time() == NaiveTime::MIN => wall.date(),
        _ => match zone {
            Some(zone) => tz::local_date(at, zone),
            None => nearest_midnight_date(at),
        },
    };
    Ok(EventTime::AllDay {
        start: date(ev.start.as_ref(), start),
        end: date(ev.end.as_ref(), end),
    })
}

/// The wall-clock date and time a `dateTimeTimeZone` states, whatever zone it names.
fn wall_time(value: &DateTimeTimeZone) -> Option<NaiveDateTime> {
    let text = value.date_time.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.naive_local());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn person(address: Option<&EmailAddress>) -> Option<(String, Option<String>)> {
    let address = address?;
    Some((
        short_text(address.address.as_deref())?,
        short_text(address.name.as_deref()),
    ))
}

fn attendee(a: &Attendee) -> Option<EventAttendee> {
    let (email, name) = person(a.email_address.as_ref())?;
    Some(EventAttendee {
        email,
        name,
        role: match a.attendee_type {
            Some(AttendeeType::Optional) => AttendeeRole::Optional,
            Some(AttendeeType::Resource) => AttendeeRole::Resource,
            _ => AttendeeRole::Required,
        },
        response: response(a.status.as_ref()),
    })
}

/// A single event, occurrence or exception as the core sees it. `series_uid` is the
/// `iCalUId` of the series master of an occurrence or exception.
pub(super) fn to_event(
    ev: &Event,
    mailbox: &MailboxAddress,
    series_uid: Option<&str>,
) -> Result<CalendarEvent, ItemError> {
    let kind = match ev.event_type {
        Some(EventType::Occurrence) => EventKind::Occurrence,
        Some(EventType::Exception) => EventKind::Exception,
        Some(EventType::SeriesMaster) => {
            return Err(failed(
                "RecurringMaster",
                "a series master is read as a series, not as one event",
            ));
        }
        _ => EventKind::Single,
    };
    let key = match kind {
        // Graph gives every event an iCalUId; should one lack it, the id still identifies the
        // event in this mailbox (it just cannot be matched with other mailboxes' copies).
        EventKind::Single => EventKey::single(IcalUid::new(
            ev.ical_uid.clone().unwrap_or_else(|| ev.id.clone()),
        )),
        EventKind::Occurrence | EventKind::Exception => {
            let uid = series_uid.ok_or_else(|| {
                failed(
                    "SeriesUnknown",
                    format!("the series of occurrence {} could not be read", ev.id),
                )
            })?;
            // An unmodified occurrence starts at its original start.
            let original = ev.original_start.or(if kind == EventKind::Occurrence {
                span(ev).map(|(s, _)| s)
            } else {
                None
            });
            let original = original.ok_or_else(|| {
                failed(
                    "IncompleteCalendarItem",
                    "Graph returned an exception without originalStart",
                )
            })?;
            EventKey {
                uid: IcalUid::new(uid),
                original_start: Some(original),
            }
        }
    };
    let organizer = ev
        .organizer
        .as_ref()
        .and_then(|o| person(o.email_address.as_ref()))
        .map(|(email, name)| EventParty { email, name });
    let attendees: Vec<EventAttendee> =
        ev.attendees.iter().flatten().filter_map(attendee).collect();
    let my_response = response(ev.response_status.as_ref());
    let is_organizer = ev.is_organizer.unwrap_or_else(|| {
        my_response == ResponseType::Organizer
            || organizer
                .as_ref()
                .is_some_and(|o| o.email.eq_ignore_ascii_case(mailbox.as_str()))
    });
    Ok(CalendarEvent {
        item: item_ref(ev),
        key,
        kind,
        series_id: match kind {
            EventKind::Single => None,
            _ => ev.series_master_id.clone().map(ExchangeItemId::new),
        },
        stamp: stamp_text(ev).map(CrmStamp::from_raw),
        fields: EventFields {
            subject: short_text(ev.subject.as_deref()),
            location: short_text(ev.location.as_ref().and_then(|l| l.display_name.as_deref())),
            body: normalize_text(ev.body.as_ref().and_then(|b| b.content.as_deref())),
            time: event_time(ev)?,
            reminder_minutes: (ev.is_reminder_on == Some(true)).then(|| {
                ev.reminder_minutes_before_start
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(DEFAULT_REMINDER_MINUTES)
            }),
            show_as: show_as(ev.show_as),
            is_call: ev
                .categories
                .iter()
                .flatten()
                .any(|c| c.eq_ignore_ascii_case(CALL_CATEGORY)),
        },
        time_zone: ev.original_start_time_zone.as_deref().and_then(iana_of),
        organizer,
        is_organizer,
        is_meeting: !attendees.is_empty(),
        my_response,
        attendees,
        sensitivity: sensitivity(ev.sensitivity),
        is_cancelled: ev.is_cancelled.unwrap_or(false),
        // Without lastModifiedDateTime the conflict policy (R28) sees the Exchange side as
        // oldest, which resolves ties towards LN as it does anyway.
        last_modified: ev
            .last_modified_date_time
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    })
}

/// Whether an event overlaps the window as R15 defines it (end at or after its start, start
/// before its end). Unreadable times count as inside: the mapping then reports them.
fn in_window(ev: &Event, window: &Window) -> bool {
    span(ev).is_none_or(|(start, end)| end >= window.start && start < window.end)
}

// ---------------------------------------------------------------------------------------------
// core → Graph
// ---------------------------------------------------------------------------------------------

/// `dateTimeTimeZone` of a timed boundary: wall time in the event's zone when that names one
/// instant, else UTC (an instant in a DST fold or gap would be read back an hour off).
fn timed(at: DateTime<Utc>, zone: Option<(Tz, &str)>) -> DateTimeTimeZone {
    if let Some((tz, windows)) = zone {
        let local = at.with_timezone(&tz).naive_local();
        if let LocalResult::Single(back) = tz.from_local_datetime(&local)
            && back.with_timezone(&Utc) == at
        {
            return DateTimeTimeZone {
                date_time: local.format("%Y-%m-%dT%H:%M:%S").to_string(),
                time_zone: Some(windows.to_owned()),
            };
        }
    }
    DateTimeTimeZone {
        date_time: at.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        time_zone: Some("UTC".to_owned()),
    }
}

fn midnight(date: NaiveDate, windows: &str) -> DateTimeTimeZone {
    DateTimeTimeZone {
        date_time: format!("{}T00:00:00", date.format("%Y-%m-%d")),
        time_zone: Some(windows.to_owned()),
    }
}

fn attendees_write(attendees: &[EventAttendee]) -> Vec<Attendee> {
    attendees
        .iter()
        .filter(|a| !a.email.trim().is_empty())
        .map(|a| Attendee {
            attendee_type: Some(match a.role {
                AttendeeRole::Required => AttendeeType::Required,
                AttendeeRole::Optional => AttendeeType::Optional,
                AttendeeRole::Resource => AttendeeType::Resource,
            }),
            status: None,
            email_address: Some(EmailAddress {
                address: Some(a.email.trim().to_owned()),
                name: short_text(a.name.as_deref()),
            }),
        })
        .collect()
}

/// The mapped fields as written in `time_zone` (IANA).
pub(super) fn event_write(
    fields: &EventFields,
    time_zone: &str,
    categories: Vec<String>,
) -> Result<EventWrite, ItemError> {
    let zone = tz::parse_iana(time_zone).map_err(|e| failed("InvalidTimeZone", e.to_string()))?;
    let windows = tz::iana_to_windows(time_zone);
    let (start, end, all_day) = match fields.time {
        EventTime::Timed { start, end } => {
            let zone = windows.as_ref().ok().map(|w| (zone, *w));
            (timed(start, zone), timed(end, zone), false)
        }
        EventTime::AllDay { start, end } => {
            // Graph wants all-day boundaries as midnights of a zone it knows, which then also
            // decides which days the event covers in Outlook.
            let windows = windows
                .as_ref()
                .map_err(|e| failed("InvalidTimeZone", e.to_string()))?;
            (midnight(start, windows), midnight(end, windows), true)
        }
    };
    Ok(EventWrite {
        subject: short_text(fields.subject.as_deref()).unwrap_or_default(),
        body: ItemBody {
            content_type: Some(BodyType::Text),
            content: Some(
                fields
                    .body
                    .clone()
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_default(),
            ),
        },
        start,
        end,
        is_all_day: all_day,
        show_as: free_busy(fields.show_as),
        location: Location {
            display_name: Some(short_text(fields.location.as_deref()).unwrap_or_default()),
        },
        is_reminder_on: fields.reminder_minutes.is_some(),
        reminder_minutes_before_start: fields
            .reminder_minutes
            .map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
        categories,
        attendees: None,
        transaction_id: None,
        single_value_extended_properties: None,
    })
}

/// The `transactionId` of a create: derived from the stamp and what is created, so a create the
/// core retries after an unclear failure is dropped by Graph as a duplicate, while a later
/// re-creation of the same activity with other content is not taken for one.
fn transaction_id(event: &NewEvent) -> String {
    let hash = lnsync_core::normalize::content_hash(&(
        event.stamp.as_str(),
        &event.fields,
        &event.time_zone,
        &event.attendees,
    ));
    format!("lnsync-{}", hash.0.get(..32).unwrap_or(&hash.0))
}

pub(super) fn new_event_write(event: &NewEvent) -> Result<EventWrite, ItemError> {
    let categories = merged_categories(&[], event.fields.is_call);
    let mut write = event_write(&event.fields, &event.time_zone, categories)?;
    write.attendees = Some(attendees_write(&event.attendees));
    write.transaction_id = Some(transaction_id(event));
    write.single_value_extended_properties = Some(vec![ExtendedProperty::new(
        CRM_ID_PROPERTY,
        event.stamp.as_str(),
    )]);
    Ok(write)
}

// ---------------------------------------------------------------------------------------------
// The calendar methods
// ---------------------------------------------------------------------------------------------

/// `startDateTime`/`endDateTime` of a view over `window`. Graph's views show events ending
/// after their start; R15 also wants those ending exactly at the window's start, so look one
/// second earlier and filter precisely afterwards.
fn view_query(window: &Window, extra: &[(&str, String)]) -> String {
    let mut pairs = vec![
        (
            "startDateTime",
            utc_text(window.start - Duration::seconds(1)),
        ),
        ("endDateTime", utc_text(window.end)),
    ];
    pairs.extend(extra.iter().cloned());
    query(&pairs)
}

fn answer_error(e: MailboxError) -> ItemError {
    ItemError::Failed {
        code: "UnreadableAnswer".to_owned(),
        message: e.to_string(),
        transient: false,
    }
}

impl GraphMailbox {
    /// The `iCalUId` of the series master of every occurrence or exception in `events` that
    /// `known` lacks, by master id; read by id, 20 per `$batch`. A master that cannot be read
    /// is left out (its instances are then skipped or reported as failed).
    async fn series_uids<'a>(
        &self,
        mailbox: &MailboxAddress,
        events: impl Iterator<Item = &'a Event>,
        known: &mut HashMap<String, String>,
    ) -> Result<(), MailboxError> {
        let mut wanted: Vec<String> = Vec::new();
        for ev in events.filter(|e| is_instance(e)) {
            if let Some(master) = &ev.series_master_id
                && !known.contains_key(master)
                && !wanted.contains(master)
            {
                wanted.push(master.clone());
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let requests: Vec<Request> = wanted
            .iter()
            .map(|id| {
                Request::get(format!(
                    "{}{}",
                    event_path(mailbox, id),
                    query(&[("$select", "id,iCalUId".to_owned())])
                ))
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        for (id, answer) in wanted.into_iter().zip(answers) {
            if !answer.is_success() {
                let e = classify::item_error(&answer, None, self.default_back_off());
                tracing::warn!(%mailbox, master = %id, error = %e, "series master not read");
                continue;
            }
            let master: Event = answer.parse("series master")?;
            if let Some(uid) = master.ical_uid.filter(|u| !u.is_empty()) {
                known.insert(id, uid);
            }
        }
        Ok(())
    }

    fn events_of(
        &self,
        mailbox: &MailboxAddress,
        events: &[Event],
        series: &HashMap<String, String>,
    ) -> Vec<CalendarEvent> {
        events
            .iter()
            .filter_map(|ev| {
                let uid = ev
                    .series_master_id
                    .as_ref()
                    .and_then(|m| series.get(m))
                    .map(String::as_str);
                match to_event(ev, mailbox, uid) {
                    Ok(event) => Some(event),
                    // An event we cannot read the same way next time either; skipping it keeps
                    // the rest of the calendar in sync.
                    Err(e) => {
                        tracing::warn!(%mailbox, item = %ev.id, error = %e, "calendar item skipped");
                        None
                    }
                }
            })
            .collect()
    }

    /// [`Mailbox::calendar_view`](lnsync_core::ports::Mailbox::calendar_view): one paged
    /// `calendarView` with the stamp expanded, plus one read of the series masters.
    pub(super) async fn calendar_view_impl(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<CalendarEvent>, MailboxError> {
        let request = Request::get(format!(
            "{}/calendarView{}",
            user_path(mailbox),
            view_query(&window, &[("$expand", expand_stamp())])
        ))
        .paged()
        .text_body();
        let listed: Vec<Event> = self.client.list(mailbox, request, "calendar view").await?;
        let events: Vec<Event> = listed
            .into_iter()
            .filter(|e| !is_master(e) && e.removed.is_none() && in_window(e, &window))
            .collect();
        let mut series = HashMap::new();
        self.series_uids(mailbox, events.iter(), &mut series)
            .await?;
        Ok(self.events_of(mailbox, &events, &series))
    }

    /// [`Mailbox::sync_calendar`](lnsync_core::ports::Mailbox::sync_calendar) over
    /// `calendarView/delta`.
    ///
    /// Graph reports an instance as `@removed` both when it was deleted and when it merely left
    /// the delta's window (moved out, or the series changed). The core takes
    /// `FolderChange::Deleted` as a real deletion, so removals are reported as upserts without a
    /// version instead: the core reads them by id (`get_events`), where `NotFound` means deleted
    /// and a found event is handled as moved (out of the window, R16).
    pub(super) async fn sync_calendar_impl(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
        window: Window,
    ) -> Result<FolderChanges, MailboxError> {
        let invalid = || MailboxError::InvalidCursor {
            mailbox: mailbox.clone(),
        };
        let (path, start, end) = match cursor {
            Some(cursor) => {
                let (link, start, end) =
                    DeltaCursor::calendar_link(cursor, mailbox.as_str(), &window)
                        .ok_or_else(invalid)?;
                (self.client.relative(&link).ok_or_else(invalid)?, start, end)
            }
            None => {
                // Wider than the run's window so that the daily-moving window stays covered
                // by this token for DELTA_MARGIN_DAYS.
                let span = Window {
                    start: window.start,
                    end: window.end + Duration::days(DELTA_MARGIN_DAYS),
                };
                let path = format!(
                    "{}/calendarView/delta{}",
                    user_path(mailbox),
                    view_query(&span, &[])
                );
                (path, span.start - Duration::seconds(1), span.end)
            }
        };
        let answer = self
            .client
            .send(mailbox, &Request::get(path).paged())
            .await?;
        if !answer.is_success() {
            return Err(classify::call_error(
                mailbox,
                &answer,
                self.default_back_off(),
            ));
        }
        let page: Page<Event> = answer.parse("calendar delta")?;
        let (link, more) = match (page.next_link, page.delta_link) {
            (Some(next), _) => (next, true),
            (None, Some(delta)) => (delta, false),
            (None, None) => {
                return Err(MailboxError::Protocol {
                    message: "a calendar delta page without nextLink or deltaLink".to_owned(),
                    source: None,
                });
            }
        };
        let changes = page
            .value
            .iter()
            .filter(|ev| !ev.id.is_empty())
            .map(|ev| FolderChange::Upsert {
                item: if ev.removed.is_some() {
                    ItemRef {
                        id: ExchangeItemId::new(ev.id.clone()),
                        version: ExchangeVersion::new(""),
                    }
                } else {
                    item_ref(ev)
                },
                // Delta cannot expand extended properties; get_events reads the stamp.
                stamp: None,
            })
            .collect();
        let cursor = DeltaCursor::Calendar {
            mailbox: mailbox.as_str().to_owned(),
            start,
            end,
            link,
        }
        .encode();
        Ok(FolderChanges {
            changes,
            cursor,
            more,
        })
    }

    /// [`Mailbox::get_events`](lnsync_core::ports::Mailbox::get_events): events by id with the
    /// stamp (one `$batch`); each series master comes back with its instances inside the
    /// window (`instances`, one `$batch` for all masters of the call).
    pub(super) async fn get_events_impl(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<EventRead>>, MailboxError> {
        let expand = [("$expand", expand_stamp())];
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| {
                Request::get(format!(
                    "{}{}",
                    event_path(mailbox, id.as_str()),
                    query(&expand)
                ))
                .text_body()
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        let reads: Vec<ItemOutcome<Event>> = ids
            .iter()
            .zip(answers)
            .map(|(id, a)| {
                self.item_outcome(a, Some(id), |a| {
                    a.parse::<Event>("event").map_err(answer_error)
                })
            })
            .collect();

        // Series: their instances in the window.
        let masters: Vec<&Event> = reads.iter().flatten().filter(|e| is_master(e)).collect();
        let mut series: HashMap<String, String> = masters
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.ical_uid.clone()?)))
            .collect();
        let requests: Vec<Request> = masters
            .iter()
            .map(|m| {
                Request::get(format!(
                    "{}/instances{}",
                    event_path(mailbox, &m.id),
                    view_query(&window, &expand)
                ))
                .paged()
                .text_body()
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        let mut instances: HashMap<String, ItemOutcome<Vec<Event>>> = HashMap::new();
        for ((master, request), answer) in masters.iter().zip(&requests).zip(answers) {
            let listed = if answer.is_success() {
                let all: Vec<Event> = self
                    .client
                    .rest_of(mailbox, request, answer, "series instances")
                    .await?;
                Ok(all
                    .into_iter()
                    .filter(|e| !is_master(e) && in_window(e, &window))
                    .collect())
            } else {
                let id = ExchangeItemId::new(master.id.clone());
                Err(classify::item_error(
                    &answer,
                    Some(&id),
                    self.default_back_off(),
                ))
            };
            instances.insert(master.id.clone(), listed);
        }
        let singles: Vec<&Event> = reads.iter().flatten().filter(|e| !is_master(e)).collect();
        self.series_uids(mailbox, singles.into_iter(), &mut series)
            .await?;

        Ok(reads
            .into_iter()
            .map(|read| {
                let ev = read?;
                if !is_master(&ev) {
                    let uid = ev
                        .series_master_id
                        .as_ref()
                        .and_then(|m| series.get(m))
                        .map(String::as_str);
                    return to_event(&ev, mailbox, uid).map(|e| EventRead::Event(Box::new(e)));
                }
                let uid = ev
                    .ical_uid
                    .clone()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        failed("IncompleteCalendarItem", "series master without iCalUId")
                    })?;
                let occurrences = match instances.remove(&ev.id) {
                    Some(listed) => self.events_of(mailbox, &listed?, &series),
                    None => Vec::new(),
                };
                Ok(EventRead::Series {
                    master: item_ref(&ev),
                    uid: IcalUid::new(uid),
                    occurrences,
                })
            })
            .collect())
    }

    /// [`Mailbox::find_stamped_events`](lnsync_core::ports::Mailbox::find_stamped_events): a
    /// `$filter` on the stamp over the user's events (singles and masters), ten stamps per
    /// filter joined with `or`. Never a listing: a calendar is not a folder we own.
    pub(super) async fn find_stamped_events_impl(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut values: Vec<&str> = stamps.iter().map(CrmStamp::as_str).collect();
        values.sort_unstable();
        values.dedup();
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let back_off = self.default_back_off();
        let found = self
            .lookup_stamped::<Event>(
                mailbox,
                // The calendar only: an event deleted in Outlook keeps its stamp (and its
                // immutable id) in Deleted Items, and must not be found there.
                &format!("{}/calendar/events", user_path(mailbox)),
                &values,
                |a| classify::call_error(mailbox, a, back_off),
            )
            .await?;
        let wanted: HashSet<&str> = values.into_iter().collect();
        Ok(found
            .into_iter()
            .filter(|s| wanted.contains(s.stamp.as_str()))
            .collect())
    }

    /// [`Mailbox::create_events`](lnsync_core::ports::Mailbox::create_events): one `$batch` of
    /// `POST /calendar/events`, each with its stamp and `transactionId`. Graph sends the
    /// invitations itself and answers the event with its `iCalUId`.
    pub(super) async fn create_events_impl(
        &self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Result<Vec<ItemOutcome<CreatedEvent>>, MailboxError> {
        let mut results: Vec<Option<ItemOutcome<CreatedEvent>>> =
            (0..events.len()).map(|_| None).collect();
        let mut requests = Vec::new();
        let mut indices = Vec::new();
        let path = format!("{}/calendar/events", user_path(mailbox));
        for (i, event) in events.iter().enumerate() {
            match new_event_write(event) {
                Ok(write) => {
                    requests.push(Request::post(path.clone(), to_json(&write)));
                    indices.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let answers = self.client.batch(mailbox, &requests).await?;
        for (i, answer) in indices.into_iter().zip(answers) {
            results[i] = Some(self.item_outcome(answer, None, |a| {
                let ev: Event = a.parse("created event").map_err(answer_error)?;
                let uid = ev.ical_uid.clone().filter(|u| !u.is_empty());
                match (ev.id.is_empty(), uid) {
                    (false, Some(uid)) => Ok(CreatedEvent {
                        item: item_ref(&ev),
                        uid: IcalUid::new(uid),
                    }),
                    // Created, but not as we can link it: transient, so the core retries and
                    // its stamp lookup finds the event again.
                    _ => Err(ItemError::Failed {
                        code: "CreatedButUnread".to_owned(),
                        message: format!("event {:?} answered without id or iCalUId", ev.id),
                        transient: true,
                    }),
                }
            }));
        }
        Ok(filled(results))
    }

    /// [`Mailbox::update_events`](lnsync_core::ports::Mailbox::update_events): the events'
    /// categories and versions are read first (one `$batch`), so a moved version is a conflict
    /// at once and the user's own categories survive; then one `$batch` of PATCHes with
    /// `If-Match` (stale: 412 → conflict).
    ///
    /// `notify_attendees: false` cannot be honoured: Graph always sends updates to the
    /// attendees of a meeting (exchange.md §3.4). The core asks for silence only for plain
    /// appointments, which have nobody to notify.
    pub(super) async fn update_events_impl(
        &self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let reads: Vec<Request> = updates
            .iter()
            .map(|u| {
                Request::get(format!(
                    "{}{}",
                    event_path(mailbox, u.item.id.as_str()),
                    query(&[("$select", "id,changeKey,categories".to_owned())])
                ))
            })
            .collect();
        let current = self.client.batch(mailbox, &reads).await?;
        let mut results: Vec<Option<ItemOutcome<ItemRef>>> =
            (0..updates.len()).map(|_| None).collect();
        let mut requests = Vec::new();
        let mut indices = Vec::new();
        for (i, (update, answer)) in updates.iter().zip(current).enumerate() {
            let id = &update.item.id;
            let read = self.item_outcome(answer, Some(id), |a| {
                a.parse::<Event>("event").map_err(answer_error)
            });
            let ev = match read {
                Ok(ev) => ev,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let version = update.item.version.as_str();
            if !version.is_empty() && item_ref(&ev).version.as_str() != version {
                results[i] = Some(Err(ItemError::Conflict(id.clone())));
                continue;
            }
            let categories = merged_categories(
                ev.categories.as_deref().unwrap_or_default(),
                update.fields.is_call,
            );
            match event_write(&update.fields, &update.time_zone, categories) {
                Ok(mut write) => {
                    write.attendees = update.attendees.as_deref().map(attendees_write);
                    requests.push(
                        Request::patch(event_path(mailbox, id.as_str()), to_json(&write))
                            .if_match(etag(version)),
                    );
                    indices.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let answers = self.client.batch(mailbox, &requests).await?;
        for (i, answer) in indices.into_iter().zip(answers) {
            let id = &updates[i].item.id;
            results[i] = Some(self.item_outcome(answer, Some(id), |a| {
                let ev: Event = a.parse("updated event").map_err(answer_error)?;
                Ok(item_ref(&ev))
            }));
        }
        Ok(filled(results))
    }

    /// [`Mailbox::cancel_events`](lnsync_core::ports::Mailbox::cancel_events): `DELETE`, which
    /// on the organizer's meeting sends the cancellations and on a plain appointment simply
    /// deletes it, so no read is needed to tell them apart.
    pub(super) async fn cancel_events_impl(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| Request::delete(event_path(mailbox, id.as_str())))
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        Ok(ids
            .iter()
            .zip(answers)
            .map(|(id, a): (&ExchangeItemId, Answer)| self.item_outcome(a, Some(id), |_| Ok(())))
            .collect())
    }
}

/// Every slot was filled by the loop that built it; a gap would be a bug here, reported as such
/// rather than panicking in production.
fn filled<R>(results: Vec<Option<ItemOutcome<R>>>) -> Vec<ItemOutcome<R>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(failed("InternalError", "no outcome was recorded"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::error::Error;

    type TestResult = Result<(), Box<dyn Error>>;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid instant")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn alice() -> MailboxAddress {
        MailboxAddress::new("alice@contoso.com")
    }

    /// A meeting as Graph answers it with `Prefer: outlook.timezone="UTC"`.
    fn meeting() -> Value {
        json!({
            "@odata.etag": "W/\"DwAAABYA\"",
            "id": "AAkALgEv1",
            "changeKey": "DwAAABYA",
            "iCalUId": "040000008200E00074C5B7101A82E0080000000000",
            "type": "singleInstance",
            "subject": "Quarterly review",
            "body": {"contentType": "text", "content": "Agenda\r\nline 2\r\n"},
            "start": {"dateTime": "2026-02-10T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-02-10T09:00:00.0000000", "timeZone": "UTC"},
            "originalStartTimeZone": "W. Europe Standard Time",
            "originalEndTimeZone": "W. Europe Standard Time",
            "isAllDay": false,
            "isReminderOn": true,
            "reminderMinutesBeforeStart": 30,
            "showAs": "tentative",
            "sensitivity": "private",
            "categories": ["Blue", "Call"],
            "location": {"displayName": "Room 1"},
            "organizer": {"emailAddress": {"name": "Alice", "address": "alice@contoso.com"}},
            "attendees": [
                {"type": "required", "status": {"response": "accepted", "time": "2026-02-02T10:00:00Z"},
                 "emailAddress": {"name": "Bob", "address": "bob@contoso.com"}},
                {"type": "required", "status": {"response": "notResponded", "time": "0001-01-01T00:00:00Z"},
                 "emailAddress": {"address": "dan@partner.example"}},
                {"type": "optional", "status": {"response": "tentativelyAccepted"},
                 "emailAddress": {"address": "carol@contoso.com"}},
                {"type": "resource", "status": {"response": "declined"},
                 "emailAddress": {"address": "room1@contoso.com"}}
            ],
            "isOrganizer": true,
            "isCancelled": false,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "lastModifiedDateTime": "2026-02-01T10:00:00.1234567Z",
            "singleValueExtendedProperties": [
                {"id": "String {00020329-0000-0000-c000-000000000046} Name CrmId", "value": "ln:prod:activity:A1"}
            ]
        })
    }

    fn event(value: Value) -> Result<Event, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn fields(time: EventTime) -> EventFields {
        EventFields {
            subject: Some("Review".into()),
            location: None,
            body: Some("a\nb".into()),
            time,
            reminder_minutes: Some(15),
            show_as: ShowTimeAs::OutOfOffice,
            is_call: true,
        }
    }

    #[test]
    fn a_full_meeting_maps_to_the_core_event() -> TestResult {
        let ev = to_event(&event(meeting())?, &alice(), None)?;
        assert_eq!(ev.item.id.as_str(), "AAkALgEv1");
        assert_eq!(ev.item.version.as_str(), "DwAAABYA");
        assert_eq!(
            ev.key,
            EventKey::single(IcalUid::new("040000008200E00074C5B7101A82E0080000000000"))
        );
        assert_eq!(ev.kind, EventKind::Single);
        assert_eq!(ev.series_id, None);
        // The stamp is found although Graph lower-cased the property set's GUID.
        assert_eq!(ev.stamp, Some(CrmStamp::from_raw("ln:prod:activity:A1")));
        assert_eq!(
            ev.fields,
            EventFields {
                subject: Some("Quarterly review".into()),
                location: Some("Room 1".into()),
                body: Some("Agenda\nline 2".into()),
                time: EventTime::Timed {
                    start: at(2026, 2, 10, 8, 0),
                    end: at(2026, 2, 10, 9, 0)
                },
                reminder_minutes: Some(30),
                show_as: ShowTimeAs::Tentative,
                is_call: true,
            }
        );
        assert_eq!(ev.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(
            ev.organizer,
            Some(EventParty {
                email: "alice@contoso.com".into(),
                name: Some("Alice".into())
            })
        );
        assert!(ev.is_organizer && ev.is_meeting && !ev.is_cancelled);
        assert_eq!(ev.my_response, ResponseType::Organizer);
        let summary: Vec<(&str, AttendeeRole, ResponseType)> = ev
            .attendees
            .iter()
            .map(|a| (a.email.as_str(), a.role, a.response))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "bob@contoso.com",
                    AttendeeRole::Required,
                    ResponseType::Accept
                ),
                (
                    "dan@partner.example",
                    AttendeeRole::Required,
                    ResponseType::None
                ),
                (
                    "carol@contoso.com",
                    AttendeeRole::Optional,
                    ResponseType::Tentative
                ),
                (
                    "room1@contoso.com",
                    AttendeeRole::Resource,
                    ResponseType::Decline
                ),
            ]
        );
        assert_eq!(ev.sensitivity, Sensitivity::Private);
        assert_eq!(
            ev.last_modified.timestamp(),
            at(2026, 2, 1, 10, 0).timestamp()
        );
        Ok(())
    }

    #[test]
    fn all_day_events_are_dates_in_their_own_zone() -> TestResult {
        let all_day = |zone: &str, start: &str, end: &str| -> Result<EventTime, Box<dyn Error>> {
            let mut v = meeting();
            v["isAllDay"] = json!(true);
            v["originalStartTimeZone"] = json!(zone);
            v["start"] = json!({"dateTime": start, "timeZone": "UTC"});
            v["end"] = json!({"dateTime": end, "timeZone": "UTC"});
            Ok(to_event(&event(v)?, &alice(), None)?.fields.time)
        };
        // Tokyo midnights are the previous day in UTC.
        assert_eq!(
            all_day(
                "Tokyo Standard Time",
                "2026-02-09T15:00:00.0000000",
                "2026-02-10T15:00:00.0000000"
            )?,
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 11)
            }
        );
        // An IANA zone, as Graph also reports for some events.
        assert_eq!(
            all_day(
                "America/Los_Angeles",
                "2026-02-10T08:00:00",
                "2026-02-12T08:00:00"
            )?,
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 12)
            }
        );
        // Berlin across the spring switch.
        assert_eq!(
            all_day(
                "W. Europe Standard Time",
                "2026-03-28T23:00:00",
                "2026-03-29T22:00:00"
            )?,
            EventTime::AllDay {
                start: date(2026, 3, 29),
                end: date(2026, 3, 30)
            }
        );
        // As Graph answers: floating midnights labelled with the zone asked for. New York's
        // 29 March stays the 29th (as UTC instants it would be the 28th there).
        assert_eq!(
            all_day(
                "Eastern Standard Time",
                "2026-03-29T00:00:00.0000000",
                "2026-03-30T00:00:00.0000000"
            )?,
            EventTime::AllDay {
                start: date(2026, 3, 29),
                end: date(2026, 3, 30)
            }
        );
        // A custom zone: the nearest midnight.
        assert_eq!(
            all_day(
                "tzone://Microsoft/Custom",
                "2026-02-09T23:00:00",
                "2026-02-10T23:00:00"
            )?,
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 11)
            }
        );
        Ok(())
    }

    #[test]
    fn answers_in_another_zone_are_read_in_that_zone() {
        let berlin = DateTimeTimeZone {
            date_time: "2026-07-01T10:00:00.0000000".into(),
            time_zone: Some("W. Europe Standard Time".into()),
        };
        assert_eq!(instant(&berlin), Some(at(2026, 7, 1, 8, 0)));
        let offset = DateTimeTimeZone {
            date_time: "2026-07-01T10:00:00+02:00".into(),
            time_zone: None,
        };
        assert_eq!(instant(&offset), Some(at(2026, 7, 1, 8, 0)));
        let garbage = DateTimeTimeZone {
            date_time: "soon".into(),
            time_zone: None,
        };
        assert_eq!(instant(&garbage), None);
    }

    #[test]
    fn occurrences_are_keyed_by_the_series_uid_and_original_start() -> TestResult {
        let mut v = meeting();
        v["type"] = json!("occurrence");
        v["iCalUId"] = json!("per-occurrence-uid");
        v["seriesMasterId"] = json!("AAkALgMaster");
        let occurrence = event(v.clone())?;
        let ev = to_event(&occurrence, &alice(), Some("SERIES-UID"))?;
        assert_eq!(ev.kind, EventKind::Occurrence);
        assert_eq!(ev.key.uid.as_str(), "SERIES-UID");
        // Without originalStart an occurrence starts where it always did.
        assert_eq!(ev.key.original_start, Some(at(2026, 2, 10, 8, 0)));
        assert_eq!(ev.series_id, Some(ExchangeItemId::new("AAkALgMaster")));
        // Without its series' UID it cannot be matched across mailboxes.
        assert!(to_event(&occurrence, &alice(), None).is_err());

        v["type"] = json!("exception");
        v["start"] = json!({"dateTime": "2026-02-10T10:00:00", "timeZone": "UTC"});
        v["originalStart"] = json!("2026-02-10T08:00:00Z");
        let ev = to_event(&event(v.clone())?, &alice(), Some("SERIES-UID"))?;
        assert_eq!(ev.kind, EventKind::Exception);
        assert_eq!(ev.key.original_start, Some(at(2026, 2, 10, 8, 0)));
        assert_eq!(
            ev.key.external_reference(),
            "SERIES-UID/2026-02-10T08:00:00Z"
        );
        v["originalStart"] = Value::Null;
        assert!(to_event(&event(v.clone())?, &alice(), Some("SERIES-UID")).is_err());

        v["type"] = json!("seriesMaster");
        assert!(matches!(
            to_event(&event(v)?, &alice(), None),
            Err(ItemError::Failed { code, .. }) if code == "RecurringMaster"
        ));
        Ok(())
    }

    #[test]
    fn writes_name_the_zone_and_all_day_midnights() -> TestResult {
        let timed = EventTime::Timed {
            start: at(2026, 2, 10, 8, 0),
            end: at(2026, 2, 10, 9, 0),
        };
        let w = event_write(&fields(timed), "Europe/Berlin", vec!["Call".into()])?;
        assert_eq!(w.start.date_time, "2026-02-10T09:00:00");
        assert_eq!(
            w.start.time_zone.as_deref(),
            Some("W. Europe Standard Time")
        );
        assert_eq!(w.end.date_time, "2026-02-10T10:00:00");
        assert!(!w.is_all_day);
        assert_eq!(w.show_as, FreeBusyStatus::Oof);
        assert_eq!(w.reminder_minutes_before_start, Some(15));
        assert!(w.is_reminder_on);
        assert_eq!(w.location.display_name.as_deref(), Some(""));
        // 02:30 on the autumn switch happens twice in Berlin: sent as UTC instead.
        let fold = EventTime::Timed {
            start: at(2026, 10, 25, 0, 30),
            end: at(2026, 10, 25, 2, 0),
        };
        let w = event_write(&fields(fold), "Europe/Berlin", vec![])?;
        assert_eq!(w.start.date_time, "2026-10-25T00:30:00");
        assert_eq!(w.start.time_zone.as_deref(), Some("UTC"));
        assert_eq!(w.end.date_time, "2026-10-25T03:00:00");
        assert_eq!(w.end.time_zone.as_deref(), Some("W. Europe Standard Time"));

        let day = EventTime::AllDay {
            start: date(2026, 3, 29),
            end: date(2026, 3, 30),
        };
        let w = event_write(&fields(day), "Asia/Tokyo", vec![])?;
        assert_eq!(w.start.date_time, "2026-03-29T00:00:00");
        assert_eq!(w.end.date_time, "2026-03-30T00:00:00");
        assert_eq!(w.start.time_zone.as_deref(), Some("Tokyo Standard Time"));
        assert!(w.is_all_day);
        assert!(matches!(
            event_write(&fields(day), "Mars/Olympus", vec![]),
            Err(ItemError::Failed { code, .. }) if code == "InvalidTimeZone"
        ));
        Ok(())
    }

    #[test]
    fn new_events_carry_stamp_transaction_id_and_attendees() -> TestResult {
        let new = NewEvent {
            stamp: CrmStamp::from_raw("ln:prod:activity:A1"),
            fields: fields(EventTime::Timed {
                start: at(2026, 2, 10, 8, 0),
                end: at(2026, 2, 10, 9, 0),
            }),
            time_zone: "Europe/Berlin".into(),
            attendees: vec![
                EventAttendee {
                    email: "bob@contoso.com".into(),
                    name: Some("Bob".into()),
                    role: AttendeeRole::Required,
                    response: ResponseType::Accept,
                },
                EventAttendee {
                    email: " ".into(),
                    name: None,
                    role: AttendeeRole::Optional,
                    response: ResponseType::None,
                },
                EventAttendee {
                    email: "room@contoso.com".into(),
                    name: None,
                    role: AttendeeRole::Resource,
                    response: ResponseType::None,
                },
            ],
        };
        let w = new_event_write(&new)?;
        let json = serde_json::to_value(&w)?;
        assert_eq!(json["categories"], json!(["Call"]));
        assert_eq!(
            json["singleValueExtendedProperties"][0]["id"],
            CRM_ID_PROPERTY
        );
        assert_eq!(
            json["singleValueExtendedProperties"][0]["value"],
            "ln:prod:activity:A1"
        );
        assert_eq!(json["attendees"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["attendees"][1]["type"], "resource");
        assert!(
            json["attendees"][0].get("status").is_none(),
            "responses are not written"
        );
        assert_eq!(
            json["body"],
            json!({"contentType": "text", "content": "a\nb"})
        );
        // The same create gives the same transactionId; other content another one.
        let id = w.transaction_id.clone().ok_or("transactionId")?;
        assert!(id.starts_with("lnsync-") && id.len() == 39, "{id}");
        assert_eq!(new_event_write(&new)?.transaction_id, Some(id.clone()));
        let mut moved = new.clone();
        moved.fields.subject = Some("Moved".into());
        assert_ne!(new_event_write(&moved)?.transaction_id, Some(id));
        Ok(())
    }

    #[test]
    fn the_call_category_is_added_or_removed_and_user_categories_stay() {
        let user = vec!["Blue".to_owned(), "call".to_owned()];
        assert_eq!(merged_categories(&user, false), vec!["Blue".to_owned()]);
        assert_eq!(
            merged_categories(&user, true),
            vec!["Blue".to_owned(), "Call".to_owned()]
        );
    }

    #[test]
    fn windows_are_checked_like_r15() -> TestResult {
        let window = Window {
            start: at(2026, 2, 10, 0, 0),
            end: at(2026, 2, 11, 0, 0),
        };
        let mut v = meeting();
        v["start"] = json!({"dateTime": "2026-02-09T23:00:00", "timeZone": "UTC"});
        v["end"] = json!({"dateTime": "2026-02-10T00:00:00", "timeZone": "UTC"});
        assert!(
            in_window(&event(v.clone())?, &window),
            "ends exactly at the start"
        );
        v["start"] = json!({"dateTime": "2026-02-11T00:00:00", "timeZone": "UTC"});
        v["end"] = json!({"dateTime": "2026-02-11T01:00:00", "timeZone": "UTC"});
        assert!(!in_window(&event(v)?, &window), "starts at the end");
        Ok(())
    }
}
