//! The calendar half of [`EwsMailbox`] (R15–R30): reading the window, changes and series,
//! writing meetings, and the mapping between the codec's EWS-shaped calendar items and the
//! core's calendar model.
//!
//! Time (R20): Exchange answers in UTC. Timed events stay UTC instants; all-day events become
//! dates in the event's own zone (`StartTimeZone`), so a zone conversion never moves them by a
//! day. On write, timed events go out as UTC with the requested zone as StartTimeZone (it decides
//! how Outlook shows and repeats the event), all-day events as local midnight *with its offset*:
//! unambiguous whatever zone Exchange would otherwise read an offset-less time in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lnsync_core::calendar::{
    AttendeeRole, CalendarEvent, CreatedEvent, EventAttendee, EventFields, EventKey, EventKind,
    EventParty, EventRead, EventTime, EventUpdate, NewEvent, ResponseType, Sensitivity,
};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, IcalUid, MailboxAddress};
use lnsync_core::model::ShowTimeAs;
use lnsync_core::ports::{ItemOutcome, ItemRef, StampedItem, Window};

use super::codec::{
    self, AttendeeInfo, AttendeeLists, CalendarChange, CalendarData, CalendarWrite,
    CancelCalendarItems, CreateCalendarItems, DistinguishedFolder, Envelope, FindCalendarView,
    FolderRef, GetCalendarItems, GetItems, GetRecurringMasters, ItemInfo, MAX_CALENDAR_VIEW_DAYS,
    MeetingMessages, PropertyPath, Recipient, Restriction, UpdateCalendarItems,
};
use super::mailbox::{EwsMailbox, item_ref, returned_item};
use crate::exchange::{
    CALL_CATEGORY, DEFAULT_REMINDER_MINUTES, merged_categories, nearest_midnight_date,
    normalize_text, short_text,
};
use crate::tz;

/// CalendarView pages grow up to this many times the configured size when one page holds only
/// events that start at the same instant (the view cannot page past them otherwise).
const MAX_VIEW_PAGE_GROWTH: u32 = 8;

fn calendar_folder() -> FolderRef {
    FolderRef::Distinguished(DistinguishedFolder::Calendar)
}

fn failed(code: &str, message: impl Into<String>) -> ItemError {
    ItemError::Failed {
        code: code.to_owned(),
        message: message.into(),
        transient: false,
    }
}

fn is_master(info: &ItemInfo) -> bool {
    info.calendar.as_ref().and_then(|c| c.item_type.as_deref()) == Some("RecurringMaster")
}

fn uid_of(info: &ItemInfo) -> Option<&str> {
    info.calendar.as_ref().and_then(|c| c.uid.as_deref())
}

// ---------------------------------------------------------------------------------------------
// Exchange → core
// ---------------------------------------------------------------------------------------------

fn response_type(value: Option<&str>) -> ResponseType {
    match value {
        Some("Organizer") => ResponseType::Organizer,
        Some("Tentative") => ResponseType::Tentative,
        Some("Accept") => ResponseType::Accept,
        Some("Decline") => ResponseType::Decline,
        // Unknown, NoResponseReceived, or nothing said.
        _ => ResponseType::None,
    }
}

fn show_as(value: Option<&str>) -> ShowTimeAs {
    match value {
        Some("Free") => ShowTimeAs::Free,
        Some("Tentative") => ShowTimeAs::Tentative,
        Some("OOF") => ShowTimeAs::OutOfOffice,
        // Busy, WorkingElsewhere, NoData: R20 maps the others to Busy.
        _ => ShowTimeAs::Busy,
    }
}

fn free_busy(value: ShowTimeAs) -> &'static str {
    match value {
        ShowTimeAs::Free => "Free",
        ShowTimeAs::Busy => "Busy",
        ShowTimeAs::Tentative => "Tentative",
        ShowTimeAs::OutOfOffice => "OOF",
    }
}

fn sensitivity(value: Option<&str>) -> Sensitivity {
    match value {
        Some("Personal") => Sensitivity::Personal,
        Some("Private") => Sensitivity::Private,
        Some("Confidential") => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

fn event_time(data: &CalendarData) -> Result<EventTime, ItemError> {
    let (Some(start), Some(end)) = (data.start, data.end) else {
        return Err(failed(
            "IncompleteCalendarItem",
            "Exchange returned a calendar item without Start/End",
        ));
    };
    if data.is_all_day != Some(true) {
        return Ok(EventTime::Timed { start, end });
    }
    let zone = data.start_time_zone.as_deref().and_then(tz::windows_zone);
    let date = |at| match zone {
        Some(zone) => tz::local_date(at, zone),
        None => nearest_midnight_date(at),
    };
    Ok(EventTime::AllDay {
        start: date(start),
        end: date(end),
    })
}

fn attendee(a: &AttendeeInfo, role: AttendeeRole) -> Option<EventAttendee> {
    Some(EventAttendee {
        email: short_text(a.mailbox.email.as_deref())?,
        name: short_text(a.mailbox.name.as_deref()),
        role,
        response: response_type(a.response.as_deref()),
    })
}

/// A single event, occurrence or exception read with the full shape. `series_id` is the master
/// of an occurrence or exception when known.
pub(super) fn to_event(
    info: &ItemInfo,
    mailbox: &MailboxAddress,
    series_id: Option<ExchangeItemId>,
) -> Result<CalendarEvent, ItemError> {
    let Some(data) = info.calendar.as_deref() else {
        return Err(failed(
            "NotACalendarItem",
            format!(
                "item {} is a {}, not a calendar item",
                info.id.id, info.kind
            ),
        ));
    };
    let kind = match data.item_type.as_deref() {
        Some("Occurrence") => EventKind::Occurrence,
        Some("Exception") => EventKind::Exception,
        Some("RecurringMaster") => {
            return Err(failed(
                "RecurringMaster",
                "a recurring master is read as a series, not as one event",
            ));
        }
        _ => EventKind::Single,
    };
    // Exchange gives every calendar item a UID; should one lack it, the item id still identifies
    // the event inside this mailbox (it just cannot be matched with other mailboxes' copies).
    let uid = IcalUid::new(data.uid.clone().unwrap_or_else(|| info.id.id.clone()));
    let key = match kind {
        EventKind::Single => EventKey::single(uid),
        // An unmodified occurrence starts at its original start, so Start stands in for a
        // missing OriginalStart; an exception must say where it came from.
        EventKind::Occurrence | EventKind::Exception => EventKey {
            uid,
            original_start: data.original_start.or(if kind == EventKind::Occurrence {
                data.start
            } else {
                None
            }),
        },
    };
    if kind == EventKind::Exception && key.original_start.is_none() {
        return Err(failed(
            "IncompleteCalendarItem",
            "Exchange returned an exception without OriginalStart",
        ));
    }
    let organizer = data.organizer.as_ref().and_then(|o| {
        Some(EventParty {
            email: short_text(o.email.as_deref())?,
            name: short_text(o.name.as_deref()),
        })
    });
    let attendees: Vec<EventAttendee> = [
        (&data.required, AttendeeRole::Required),
        (&data.optional, AttendeeRole::Optional),
        (&data.resources, AttendeeRole::Resource),
    ]
    .into_iter()
    .flat_map(|(list, role)| list.iter().filter_map(move |a| attendee(a, role)))
    .collect();
    let my_response = response_type(data.my_response.as_deref());
    // MyResponseType says Organizer on the organizer's own copy (and on plain appointments); the
    // organizer address is the fallback for servers that leave it out.
    let is_organizer = my_response == ResponseType::Organizer
        || organizer
            .as_ref()
            .is_some_and(|o| o.email.eq_ignore_ascii_case(mailbox.as_str()));
    Ok(CalendarEvent {
        item: item_ref(info),
        key,
        kind,
        series_id: match kind {
            EventKind::Single => None,
            _ => series_id,
        },
        stamp: info.crm_id().map(CrmStamp::from_raw),
        fields: EventFields {
            subject: short_text(data.subject.as_deref()),
            location: short_text(data.location.as_deref()),
            body: normalize_text(data.body.as_deref()),
            time: event_time(data)?,
            reminder_minutes: (data.reminder_is_set == Some(true))
                .then(|| data.reminder_minutes.unwrap_or(DEFAULT_REMINDER_MINUTES)),
            show_as: show_as(data.free_busy.as_deref()),
            is_call: data
                .categories
                .iter()
                .any(|c| c.eq_ignore_ascii_case(CALL_CATEGORY)),
        },
        time_zone: data
            .start_time_zone
            .as_deref()
            .and_then(tz::windows_to_iana)
            .map(str::to_owned),
        organizer,
        is_organizer,
        is_meeting: data.is_meeting.unwrap_or(!attendees.is_empty()),
        my_response,
        attendees,
        sensitivity: sensitivity(data.sensitivity.as_deref()),
        is_cancelled: data.is_cancelled.unwrap_or(false),
        // Without LastModifiedTime the conflict policy (R28) sees the Exchange side as oldest,
        // which resolves ties towards LN as it does anyway.
        last_modified: data.last_modified.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    })
}

/// Whether an event overlaps the window as R15 defines it (end at or after the start, start
/// before the end). All-day events are compared by their instants, which is what Exchange keeps.
fn in_window(info: &ItemInfo, window: &Window) -> bool {
    match info.calendar.as_deref() {
        Some(CalendarData {
            start: Some(start),
            end: Some(end),
            ..
        }) => *end >= window.start && *start < window.end,
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// core → Exchange
// ---------------------------------------------------------------------------------------------

fn attendee_lists(attendees: &[EventAttendee]) -> AttendeeLists {
    let mut lists = AttendeeLists::default();
    for a in attendees {
        let email = a.email.trim();
        if email.is_empty() {
            continue;
        }
        let r = Recipient {
            name: short_text(a.name.as_deref()),
            email: Some(email.to_owned()),
        };
        match a.role {
            AttendeeRole::Required => lists.required.push(r),
            AttendeeRole::Optional => lists.optional.push(r),
            AttendeeRole::Resource => lists.resources.push(r),
        }
    }
    lists
}

/// Resolves the mapped fields to wire values in `time_zone` (IANA).
pub(super) fn to_write(
    fields: &EventFields,
    time_zone: &str,
    categories: Vec<String>,
) -> Result<CalendarWrite, ItemError> {
    let zone = tz::parse_iana(time_zone).map_err(|e| failed("InvalidTimeZone", e.to_string()))?;
    let windows = tz::iana_to_windows(time_zone);
    let (start, end, all_day) = match fields.time {
        EventTime::Timed { start, end } => (
            codec::calendar::utc_text(start),
            codec::calendar::utc_text(end),
            false,
        ),
        EventTime::AllDay { start, end } => {
            // Local midnight with its offset only works with a zone Exchange knows, which then
            // also decides which days the event covers in Outlook.
            if let Err(e) = &windows {
                return Err(failed("InvalidTimeZone", e.to_string()));
            }
            let midnight = |d| tz::start_of_day(d, zone).to_rfc3339_opts(SecondsFormat::Secs, true);
            (midnight(start), midnight(end), true)
        }
    };
    Ok(CalendarWrite {
        stamp: None,
        subject: short_text(fields.subject.as_deref()),
        body: fields.body.clone().filter(|b| !b.trim().is_empty()),
        categories,
        reminder_minutes: fields.reminder_minutes,
        start,
        end,
        all_day,
        free_busy: free_busy(fields.show_as),
        location: short_text(fields.location.as_deref()),
        attendees: None,
        // A timed event in a zone without a Windows twin keeps its instants; Exchange then
        // files it under its default zone, which only changes how Outlook labels it.
        time_zone: windows.ok().map(str::to_owned),
    })
}

fn new_event_write(event: &NewEvent) -> Result<CalendarWrite, ItemError> {
    let categories = merged_categories(&[], event.fields.is_call);
    let mut write = to_write(&event.fields, &event.time_zone, categories)?;
    write.stamp = Some(event.stamp.as_str().to_owned());
    write.attendees = Some(attendee_lists(&event.attendees));
    Ok(write)
}

fn item_error_to_mailbox(mailbox: &MailboxAddress, e: ItemError) -> MailboxError {
    match e {
        ItemError::Throttled(retry_after) => MailboxError::Throttled {
            mailbox: mailbox.clone(),
            retry_after,
        },
        ItemError::FolderNotFound => MailboxError::FolderNotFound {
            mailbox: mailbox.clone(),
        },
        ItemError::Failed {
            code,
            message,
            transient,
        } => MailboxError::Server {
            code,
            message,
            transient,
        },
        ItemError::NotFound(id) | ItemError::Conflict(id) => MailboxError::Server {
            code: "ErrorItemNotFound".to_owned(),
            message: format!("calendar item {id} vanished while it was read"),
            transient: true,
        },
    }
}

/// Splits indexed inputs by the `MeetingMessages` their request needs: the setting is per
/// request, so meetings and silent writes go in separate calls.
fn by_send<T>(
    inputs: Vec<(usize, MeetingMessages, T)>,
) -> Vec<(MeetingMessages, Vec<usize>, Vec<T>)> {
    let mut groups = vec![
        (
            MeetingMessages::SendToAllAndSaveCopy,
            Vec::new(),
            Vec::new(),
        ),
        (MeetingMessages::SendToNone, Vec::new(), Vec::new()),
    ];
    for (i, send, t) in inputs {
        if let Some((_, idx, items)) = groups.iter_mut().find(|(s, _, _)| *s == send) {
            idx.push(i);
            items.push(t);
        }
    }
    groups.retain(|(_, idx, _)| !idx.is_empty());
    groups
}

/// Every slot was filled by the loop that built it; a gap would be a bug here, reported as such
/// rather than panicking in production.
fn filled<R>(results: Vec<Option<ItemOutcome<R>>>) -> Vec<ItemOutcome<R>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(failed("InternalError", "no outcome was recorded"))))
        .collect()
}

fn codec_id(id: &ExchangeItemId, change_key: Option<&str>) -> codec::ItemId {
    codec::ItemId::new(id.as_str(), change_key.map(str::to_owned))
}

// ---------------------------------------------------------------------------------------------
// The calendar methods
// ---------------------------------------------------------------------------------------------

impl EwsMailbox {
    /// Every item a CalendarView shows in `[start, end)`, without duplicates: the span is cut
    /// into views of at most two years, and each view is paged by moving its start to the last
    /// start seen (CalendarView has no offset; its items come sorted by start).
    async fn view(
        &self,
        mailbox: &MailboxAddress,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<ItemInfo>, MailboxError> {
        let folder = calendar_folder();
        let page = self.config().find_page_size.max(1);
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        let mut chunk_start = start;
        while chunk_start < end {
            let chunk_end = (chunk_start + Duration::days(MAX_CALENDAR_VIEW_DAYS)).min(end);
            let mut view_start = chunk_start;
            let mut max_entries = page;
            loop {
                let op = FindCalendarView {
                    folder: &folder,
                    start: view_start,
                    end: chunk_end,
                    max_entries,
                };
                let message = self.call_ok(mailbox, &op).await?;
                let last = message.paging.is_none_or(|p| p.includes_last_item_in_range);
                let latest_start = message
                    .items
                    .iter()
                    .filter_map(|i| i.calendar.as_ref().and_then(|c| c.start))
                    .max();
                let returned = message.items.len();
                for item in message.items {
                    if seen.insert(item.id.id.clone()) {
                        items.push(item);
                    }
                }
                if last || returned == 0 {
                    break;
                }
                match latest_start {
                    Some(next) if next > view_start => {
                        view_start = next;
                        max_entries = page;
                    }
                    // A full page of events that all start at `view_start`: moving the start
                    // cannot get past them, a bigger page can.
                    _ if max_entries < page.saturating_mul(MAX_VIEW_PAGE_GROWTH) => {
                        max_entries = max_entries.saturating_mul(2);
                    }
                    _ => {
                        return Err(MailboxError::Protocol {
                            message: format!(
                                "CalendarView cannot page past {view_start}: more than \
                                 {max_entries} events start there"
                            ),
                            source: None,
                        });
                    }
                }
            }
            chunk_start = chunk_end;
        }
        Ok(items)
    }

    /// GetItem with the full calendar shape, batched; one outcome per id in order.
    async fn read_items(
        &self,
        mailbox: &MailboxAddress,
        ids: &[codec::ItemId],
    ) -> Result<Vec<ItemOutcome<ItemInfo>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "GetItem",
            ids,
            self.config().read_batch,
            |batch| envelope.build(&GetCalendarItems { ids: batch }),
            |id, message| {
                let id = ExchangeItemId::new(id.id.clone());
                self.item_outcome(message, Some(&id), |m| {
                    m.items
                        .first()
                        .cloned()
                        .ok_or_else(|| failed("NoItemInResponse", "GetItem returned no item"))
                })
            },
        )
        .await
    }

    /// Like [`Self::read_items`] for items a listing just named: one that vanished since is
    /// skipped, any other failure fails the call (a partial listing must not look complete).
    async fn read_listed(
        &self,
        mailbox: &MailboxAddress,
        ids: &[codec::ItemId],
    ) -> Result<Vec<ItemInfo>, MailboxError> {
        let mut infos = Vec::with_capacity(ids.len());
        for outcome in self.read_items(mailbox, ids).await? {
            match outcome {
                Ok(info) => infos.push(info),
                Err(ItemError::NotFound(_)) => {}
                Err(e) => return Err(item_error_to_mailbox(mailbox, e)),
            }
        }
        Ok(infos)
    }

    /// The recurring master of each series that `items` have occurrences or exceptions of, by
    /// UID, unless `known` already has it. One GetItem per batch of series, by
    /// `RecurringMasterItemId`.
    async fn series_ids(
        &self,
        mailbox: &MailboxAddress,
        items: &[ItemInfo],
        known: &mut HashMap<String, ExchangeItemId>,
    ) -> Result<(), MailboxError> {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for info in items {
            let Some(data) = info.calendar.as_deref() else {
                continue;
            };
            let is_instance = matches!(data.item_type.as_deref(), Some("Occurrence" | "Exception"));
            if let (true, Some(uid)) = (is_instance, data.uid.as_deref())
                && !known.contains_key(uid)
                && !wanted.iter().any(|(u, _)| u == uid)
            {
                wanted.push((uid.to_owned(), info.id.id.clone()));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let envelope = Envelope::new(mailbox.as_str());
        let outcomes = self
            .batched(
                mailbox,
                "GetItem",
                &wanted,
                self.config().read_batch,
                |batch| {
                    let ids: Vec<String> = batch.iter().map(|(_, id)| id.clone()).collect();
                    envelope.build(&GetRecurringMasters {
                        occurrence_ids: &ids,
                    })
                },
                |(_, id), message| {
                    let id = ExchangeItemId::new(id.clone());
                    self.item_outcome(message, Some(&id), returned_item)
                },
            )
            .await?;
        for ((uid, _), outcome) in wanted.into_iter().zip(outcomes) {
            match outcome {
                Ok(master) => {
                    known.insert(uid, master.id);
                }
                // The series is left without an id rather than failing the read: the id only
                // serves to find the links of a master that is deleted later.
                Err(e) => tracing::warn!(%mailbox, %uid, error = %e, "recurring master not found"),
            }
        }
        Ok(())
    }

    fn events_of(
        &self,
        mailbox: &MailboxAddress,
        infos: &[ItemInfo],
        series: &HashMap<String, ExchangeItemId>,
    ) -> Vec<CalendarEvent> {
        infos
            .iter()
            .filter_map(|info| {
                let series_id = uid_of(info).and_then(|u| series.get(u)).cloned();
                match to_event(info, mailbox, series_id) {
                    Ok(event) => Some(event),
                    // An item Exchange keeps but we cannot read the same way next time either;
                    // skipping it keeps the rest of the calendar in sync.
                    Err(e) => {
                        tracing::warn!(%mailbox, item = %info.id.id, error = %e, "calendar item skipped");
                        None
                    }
                }
            })
            .collect()
    }

    /// [`Mailbox::calendar_view`](lnsync_core::ports::Mailbox::calendar_view).
    pub(super) async fn calendar_view_impl(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<CalendarEvent>, MailboxError> {
        // CalendarView shows items ending after its start; R15 also wants those ending exactly
        // at the window's start, so look one second earlier and filter precisely below.
        let listed = self
            .view(mailbox, window.start - Duration::seconds(1), window.end)
            .await?;
        let ids: Vec<codec::ItemId> = listed
            .iter()
            .filter(|i| !is_master(i) && in_window(i, &window))
            .map(|i| codec::ItemId::new(i.id.id.clone(), None))
            .collect();
        let infos = self.read_listed(mailbox, &ids).await?;
        let infos: Vec<ItemInfo> = infos
            .into_iter()
            .filter(|i| !is_master(i) && in_window(i, &window))
            .collect();
        let mut series = HashMap::new();
        self.series_ids(mailbox, &infos, &mut series).await?;
        Ok(self.events_of(mailbox, &infos, &series))
    }

    /// [`Mailbox::get_events`](lnsync_core::ports::Mailbox::get_events): items by id; each
    /// recurring master comes back with its occurrences and exceptions inside the window, found
    /// with one CalendarView for all masters of the call.
    pub(super) async fn get_events_impl(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<EventRead>>, MailboxError> {
        let request: Vec<codec::ItemId> = ids.iter().map(|id| codec_id(id, None)).collect();
        let outcomes = self.read_items(mailbox, &request).await?;

        let mut series: HashMap<String, ExchangeItemId> = HashMap::new();
        for info in outcomes.iter().flatten().filter(|i| is_master(i)) {
            if let Some(uid) = uid_of(info) {
                series.insert(uid.to_owned(), ExchangeItemId::new(info.id.id.clone()));
            }
        }
        let mut instances: HashMap<String, Vec<ItemInfo>> = HashMap::new();
        if !series.is_empty() {
            let listed = self
                .view(mailbox, window.start - Duration::seconds(1), window.end)
                .await?;
            let ids: Vec<codec::ItemId> = listed
                .iter()
                .filter(|i| {
                    !is_master(i)
                        && in_window(i, &window)
                        && uid_of(i).is_some_and(|u| series.contains_key(u))
                })
                .map(|i| codec::ItemId::new(i.id.id.clone(), None))
                .collect();
            for info in self.read_listed(mailbox, &ids).await? {
                if let Some(uid) = uid_of(&info).map(str::to_owned) {
                    instances.entry(uid).or_default().push(info);
                }
            }
        }
        let singles: Vec<ItemInfo> = outcomes
            .iter()
            .flatten()
            .filter(|i| !is_master(i))
            .cloned()
            .collect();
        self.series_ids(mailbox, &singles, &mut series).await?;

        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                let info = outcome?;
                if !is_master(&info) {
                    let series_id = uid_of(&info).and_then(|u| series.get(u)).cloned();
                    return to_event(&info, mailbox, series_id)
                        .map(|e| EventRead::Event(Box::new(e)));
                }
                let uid = uid_of(&info)
                    .ok_or_else(|| {
                        failed("IncompleteCalendarItem", "recurring master without UID")
                    })?
                    .to_owned();
                let occurrences = instances
                    .get(&uid)
                    .map(|infos| self.events_of(mailbox, infos, &series))
                    .unwrap_or_default();
                Ok(EventRead::Series {
                    master: item_ref(&info),
                    uid: IcalUid::new(uid),
                    occurrences,
                })
            })
            .collect())
    }

    /// [`Mailbox::find_stamped_events`](lnsync_core::ports::Mailbox::find_stamped_events): a
    /// restriction per group of stamps on the calendar folder (singles and masters). Never a
    /// listing: a calendar is not a folder we own, and can be large.
    pub(super) async fn find_stamped_events_impl(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut values: Vec<&str> = stamps.iter().map(CrmStamp::as_str).collect();
        values.sort_unstable();
        values.dedup();
        let folder = calendar_folder();
        let mut found = Vec::new();
        for group in values.chunks(self.config().restriction_max_stamps.max(1)) {
            let wanted: HashSet<&str> = group.iter().copied().collect();
            found.extend(
                self.list_stamped(mailbox, &folder, Restriction::crm_id_in(group), &wanted)
                    .await?,
            );
        }
        Ok(found)
    }

    /// [`Mailbox::create_events`](lnsync_core::ports::Mailbox::create_events): meetings with
    /// attendees are created with invitations, plain appointments silently; then one GetItem
    /// reads the UIDs Exchange assigned and the versions after the invitations went out.
    pub(super) async fn create_events_impl(
        &self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Result<Vec<ItemOutcome<CreatedEvent>>, MailboxError> {
        let mut results: Vec<Option<ItemOutcome<CreatedEvent>>> =
            (0..events.len()).map(|_| None).collect();
        let mut writes = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match new_event_write(event) {
                Ok(write) => {
                    let send = if event.attendees.is_empty() {
                        MeetingMessages::SendToNone
                    } else {
                        MeetingMessages::SendToAllAndSaveCopy
                    };
                    writes.push((i, send, write));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let folder = calendar_folder();
        let envelope = Envelope::new(mailbox.as_str());
        let mut created: Vec<(usize, ItemRef)> = Vec::new();
        for (send, indices, items) in by_send(writes) {
            let outcomes = self
                .batched(
                    mailbox,
                    "CreateItem",
                    &items,
                    self.config().write_batch,
                    |batch| {
                        envelope.build(&CreateCalendarItems {
                            folder: &folder,
                            items: batch,
                            send,
                        })
                    },
                    |_, message| self.item_outcome(message, None, returned_item),
                )
                .await?;
            for (i, outcome) in indices.into_iter().zip(outcomes) {
                match outcome {
                    Ok(item) => created.push((i, item)),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
        }
        if !created.is_empty() {
            let ids: Vec<codec::ItemId> = created
                .iter()
                .map(|(_, item)| codec_id(&item.id, None))
                .collect();
            let uid_shape = [PropertyPath::Field("calendar:UID")];
            let outcomes = self
                .batched(
                    mailbox,
                    "GetItem",
                    &ids,
                    self.config().read_batch,
                    |batch| {
                        envelope.build(&GetItems {
                            ids: batch,
                            properties: &uid_shape,
                        })
                    },
                    |id, message| {
                        let id = ExchangeItemId::new(id.id.clone());
                        self.item_outcome(message, Some(&id), |m| {
                            let info = m.items.first().ok_or_else(|| {
                                failed("NoItemInResponse", "GetItem returned no item")
                            })?;
                            let uid = uid_of(info).ok_or_else(|| {
                                failed("IncompleteCalendarItem", "created item has no UID")
                            })?;
                            Ok(CreatedEvent {
                                item: item_ref(info),
                                uid: IcalUid::new(uid),
                            })
                        })
                    },
                )
                .await?;
            for ((i, item), outcome) in created.into_iter().zip(outcomes) {
                // The item exists even when its UID could not be read back; the failure is
                // transient so the core retries, and its stamp lookup finds the item again.
                results[i] = Some(outcome.map_err(|e| ItemError::Failed {
                    code: "CreatedButUnread".to_owned(),
                    message: format!("created as {} but not read back: {e}", item.id),
                    transient: true,
                }));
            }
        }
        Ok(filled(results))
    }

    /// [`Mailbox::update_events`](lnsync_core::ports::Mailbox::update_events): a full overwrite of
    /// the mapped fields at the caller's version. The items are read first (ids, ChangeKeys and
    /// categories): a moved ChangeKey is a conflict right away, and the user's own categories
    /// survive the write.
    pub(super) async fn update_events_impl(
        &self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        let ids: Vec<codec::ItemId> = updates.iter().map(|u| codec_id(&u.item.id, None)).collect();
        let categories_shape = [PropertyPath::Field("item:Categories")];
        let current = self
            .batched(
                mailbox,
                "GetItem",
                &ids,
                self.config().read_batch,
                |batch| {
                    envelope.build(&GetItems {
                        ids: batch,
                        properties: &categories_shape,
                    })
                },
                |id, message| {
                    let id = ExchangeItemId::new(id.id.clone());
                    self.item_outcome(message, Some(&id), |m| {
                        m.items
                            .first()
                            .cloned()
                            .ok_or_else(|| failed("NoItemInResponse", "GetItem returned no item"))
                    })
                },
            )
            .await?;

        let mut results: Vec<Option<ItemOutcome<ItemRef>>> =
            (0..updates.len()).map(|_| None).collect();
        let mut changes = Vec::new();
        for (i, (update, info)) in updates.iter().zip(current).enumerate() {
            let info = match info {
                Ok(info) => info,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            if info.id.change_key.as_deref() != Some(update.item.version.as_str()) {
                results[i] = Some(Err(ItemError::Conflict(update.item.id.clone())));
                continue;
            }
            let existing = info
                .calendar
                .as_ref()
                .map(|c| c.categories.clone())
                .unwrap_or_default();
            let categories = merged_categories(&existing, update.fields.is_call);
            match to_write(&update.fields, &update.time_zone, categories) {
                Ok(mut write) => {
                    write.attendees = update.attendees.as_deref().map(attendee_lists);
                    let send = if update.notify_attendees {
                        MeetingMessages::SendToAllAndSaveCopy
                    } else {
                        MeetingMessages::SendToNone
                    };
                    let change = CalendarChange {
                        id: codec_id(&update.item.id, Some(update.item.version.as_str())),
                        write,
                    };
                    changes.push((i, send, change));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for (send, indices, group) in by_send(changes) {
            let outcomes = self
                .batched(
                    mailbox,
                    "UpdateItem",
                    &group,
                    self.config().write_batch,
                    |batch| {
                        envelope.build(&UpdateCalendarItems {
                            changes: batch,
                            send,
                        })
                    },
                    |change, message| {
                        let id = ExchangeItemId::new(change.id.id.clone());
                        self.item_outcome(message, Some(&id), returned_item)
                    },
                )
                .await?;
            for (i, outcome) in indices.into_iter().zip(outcomes) {
                results[i] = Some(outcome);
            }
        }
        Ok(filled(results))
    }

    /// [`Mailbox::cancel_events`](lnsync_core::ports::Mailbox::cancel_events). Always with
    /// SendToAllAndSaveCopy: Exchange sends cancellations only from an organizer's meeting with
    /// attendees, so a plain appointment is simply deleted, and no read is needed to tell them
    /// apart.
    pub(super) async fn cancel_events_impl(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let envelope = Envelope::new(mailbox.as_str());
        self.batched(
            mailbox,
            "DeleteItem",
            ids,
            self.config().write_batch,
            |batch| {
                let ids: Vec<codec::ItemId> = batch.iter().map(|id| codec_id(id, None)).collect();
                envelope.build(&CancelCalendarItems {
                    ids: &ids,
                    send: MeetingMessages::SendToAllAndSaveCopy,
                })
            },
            |id, message| self.item_outcome(message, Some(id), |_| Ok(())),
        )
        .await
    }

    /// [`Mailbox::sync_calendar`](lnsync_core::ports::Mailbox::sync_calendar).
    pub(super) async fn sync_calendar_impl(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&lnsync_core::ports::FolderCursor>,
    ) -> Result<lnsync_core::ports::FolderChanges, MailboxError> {
        self.sync_folder(mailbox, &calendar_folder(), cursor).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ews::codec::{ItemId, parse_response};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid instant")
    }

    fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn alice() -> MailboxAddress {
        MailboxAddress::new("alice@corp.example")
    }

    fn info(data: CalendarData) -> ItemInfo {
        ItemInfo {
            kind: "CalendarItem".into(),
            id: ItemId::new("AAMkEv", Some("CK".into())),
            extended: vec![],
            calendar: Some(Box::new(data)),
        }
    }

    fn all_day(zone: Option<&str>, start: DateTime<Utc>, end: DateTime<Utc>) -> EventTime {
        let data = CalendarData {
            start: Some(start),
            end: Some(end),
            is_all_day: Some(true),
            start_time_zone: zone.map(str::to_owned),
            ..CalendarData::default()
        };
        to_event(&info(data), &alice(), None)
            .expect("maps")
            .fields
            .time
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
    fn a_full_meeting_maps_to_the_core_event() {
        let xml = format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:m="m" xmlns:t="t"><m:GetItemResponse><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>{}</m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>"#,
            crate::ews::codec::calendar_tests::FULL_MEETING
        );
        let msgs = parse_response(xml.as_bytes()).expect("parses");
        let event = to_event(&msgs[0].items[0], &alice(), None).expect("maps");
        assert_eq!(event.item.id.as_str(), "AAMkEv1");
        assert_eq!(event.item.version.as_str(), "DwAAABYA");
        assert_eq!(
            event.key,
            EventKey::single(IcalUid::new("040000008200E00074C5B7101A82E0080000000000"))
        );
        assert_eq!(event.kind, EventKind::Single);
        assert_eq!(event.series_id, None);
        assert_eq!(event.stamp, Some(CrmStamp::from_raw("ln:prod:activity:A1")));
        assert_eq!(
            event.fields,
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
        assert_eq!(event.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(
            event.organizer,
            Some(EventParty {
                email: "alice@corp.example".into(),
                name: Some("Alice".into())
            })
        );
        assert!(event.is_organizer);
        assert!(event.is_meeting);
        assert_eq!(event.my_response, ResponseType::Organizer);
        let summary: Vec<(&str, AttendeeRole, ResponseType)> = event
            .attendees
            .iter()
            .map(|a| (a.email.as_str(), a.role, a.response))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "bob@corp.example",
                    AttendeeRole::Required,
                    ResponseType::Accept
                ),
                (
                    "dan@partner.example",
                    AttendeeRole::Required,
                    ResponseType::None
                ),
                (
                    "carol@corp.example",
                    AttendeeRole::Optional,
                    ResponseType::Tentative
                ),
                (
                    "room1@corp.example",
                    AttendeeRole::Resource,
                    ResponseType::Decline
                ),
            ]
        );
        assert_eq!(event.sensitivity, Sensitivity::Private);
        assert!(!event.is_cancelled);
        assert_eq!(event.last_modified, at(2026, 2, 1, 10, 0));
    }

    #[test]
    fn all_day_events_are_dates_in_their_own_zone() {
        // Tokyo (UTC+9) midnights are the previous day in UTC.
        assert_eq!(
            all_day(
                Some("Tokyo Standard Time"),
                at(2026, 2, 9, 15, 0),
                at(2026, 2, 10, 15, 0)
            ),
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 11)
            }
        );
        // Los Angeles (UTC-8) midnights are 08:00 UTC the same day.
        assert_eq!(
            all_day(
                Some("Pacific Standard Time"),
                at(2026, 2, 10, 8, 0),
                at(2026, 2, 12, 8, 0)
            ),
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 12)
            }
        );
        // Berlin across the spring switch: starts at 23:00 UTC, ends at 22:00 UTC.
        assert_eq!(
            all_day(
                Some("W. Europe Standard Time"),
                at(2026, 3, 28, 23, 0),
                at(2026, 3, 29, 22, 0)
            ),
            EventTime::AllDay {
                start: date(2026, 3, 29),
                end: date(2026, 3, 30)
            }
        );
        // A custom zone: the nearest midnight.
        assert_eq!(
            all_day(
                Some("tzone://Microsoft/Custom"),
                at(2026, 2, 9, 15, 0),
                at(2026, 2, 10, 8, 0)
            ),
            EventTime::AllDay {
                start: date(2026, 2, 10),
                end: date(2026, 2, 10)
            }
        );
    }

    #[test]
    fn occurrences_are_keyed_by_original_start_and_masters_are_refused() {
        let occurrence = CalendarData {
            uid: Some("U1".into()),
            item_type: Some("Occurrence".into()),
            start: Some(at(2026, 2, 10, 8, 0)),
            end: Some(at(2026, 2, 10, 9, 0)),
            ..CalendarData::default()
        };
        let series = ExchangeItemId::new("Master");
        let event =
            to_event(&info(occurrence.clone()), &alice(), Some(series.clone())).expect("maps");
        assert_eq!(event.kind, EventKind::Occurrence);
        assert_eq!(event.key.original_start, Some(at(2026, 2, 10, 8, 0)));
        assert_eq!(event.series_id, Some(series.clone()));
        assert_eq!(event.key.external_reference(), "U1/2026-02-10T08:00:00Z");

        let exception = CalendarData {
            item_type: Some("Exception".into()),
            start: Some(at(2026, 2, 10, 10, 0)),
            original_start: Some(at(2026, 2, 10, 8, 0)),
            ..occurrence.clone()
        };
        let event = to_event(&info(exception.clone()), &alice(), Some(series)).expect("maps");
        assert_eq!(event.kind, EventKind::Exception);
        assert_eq!(event.key.original_start, Some(at(2026, 2, 10, 8, 0)));
        let lost = CalendarData {
            original_start: None,
            ..exception
        };
        assert!(to_event(&info(lost), &alice(), None).is_err());

        let master = CalendarData {
            item_type: Some("RecurringMaster".into()),
            ..occurrence
        };
        assert!(matches!(
            to_event(&info(master), &alice(), None),
            Err(ItemError::Failed { code, .. }) if code == "RecurringMaster"
        ));
    }

    #[test]
    fn exchange_text_is_normalised_so_a_read_equals_what_was_written() {
        assert_eq!(
            normalize_text(Some("a\r\nb\r\n\r\n")),
            Some("a\nb".to_owned())
        );
        assert_eq!(normalize_text(Some(" \r\n")), None);
        assert_eq!(normalize_text(None), None);
        assert_eq!(short_text(Some("  Room 1 ")), Some("Room 1".to_owned()));
        assert_eq!(show_as(Some("WorkingElsewhere")), ShowTimeAs::Busy);
        assert_eq!(response_type(Some("Unknown")), ResponseType::None);
    }

    #[test]
    fn writes_resolve_zones_and_all_day_midnights() {
        let timed = EventTime::Timed {
            start: at(2026, 2, 10, 8, 0),
            end: at(2026, 2, 10, 9, 0),
        };
        let w = to_write(&fields(timed), "Europe/Berlin", vec!["Call".into()]).expect("ok");
        assert_eq!(w.start, "2026-02-10T08:00:00Z");
        assert_eq!(w.end, "2026-02-10T09:00:00Z");
        assert!(!w.all_day);
        assert_eq!(w.time_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(w.free_busy, "OOF");
        assert_eq!(w.reminder_minutes, Some(15));

        let day = EventTime::AllDay {
            start: date(2026, 3, 29),
            end: date(2026, 3, 30),
        };
        let w = to_write(&fields(day), "Europe/Berlin", vec![]).expect("ok");
        assert_eq!(w.start, "2026-03-29T00:00:00+01:00");
        assert_eq!(w.end, "2026-03-30T00:00:00+02:00");
        assert!(w.all_day);
        let w = to_write(&fields(day), "UTC", vec![]).expect("ok");
        assert_eq!(w.start, "2026-03-29T00:00:00Z");
        assert_eq!(w.time_zone.as_deref(), Some("UTC"));
        let w = to_write(&fields(day), "Asia/Tokyo", vec![]).expect("ok");
        assert_eq!(w.start, "2026-03-29T00:00:00+09:00");
        assert_eq!(w.time_zone.as_deref(), Some("Tokyo Standard Time"));

        assert!(matches!(
            to_write(&fields(day), "Mars/Olympus", vec![]),
            Err(ItemError::Failed { code, .. }) if code == "InvalidTimeZone"
        ));
    }

    #[test]
    fn the_call_category_is_added_or_removed_and_user_categories_stay() {
        let user = vec!["Blue".to_owned(), "call".to_owned()];
        assert_eq!(merged_categories(&user, false), vec!["Blue".to_owned()]);
        assert_eq!(
            merged_categories(&user, true),
            vec!["Blue".to_owned(), "Call".to_owned()]
        );
        assert!(merged_categories(&[], false).is_empty());
    }

    #[test]
    fn new_events_carry_stamp_and_attendees_by_role() {
        let event = NewEvent {
            stamp: CrmStamp::from_raw("ln:prod:activity:A1"),
            fields: fields(EventTime::Timed {
                start: at(2026, 2, 10, 8, 0),
                end: at(2026, 2, 10, 9, 0),
            }),
            time_zone: "Europe/Berlin".into(),
            attendees: vec![
                EventAttendee {
                    email: "bob@corp.example".into(),
                    name: Some("Bob".into()),
                    role: AttendeeRole::Required,
                    response: ResponseType::None,
                },
                EventAttendee {
                    email: " ".into(),
                    name: None,
                    role: AttendeeRole::Optional,
                    response: ResponseType::None,
                },
                EventAttendee {
                    email: "room@corp.example".into(),
                    name: None,
                    role: AttendeeRole::Resource,
                    response: ResponseType::None,
                },
            ],
        };
        let w = new_event_write(&event).expect("ok");
        assert_eq!(w.stamp.as_deref(), Some("ln:prod:activity:A1"));
        assert_eq!(w.categories, vec!["Call".to_owned()]);
        let lists = w.attendees.expect("attendees");
        assert_eq!(lists.required.len(), 1);
        assert!(lists.optional.is_empty());
        assert_eq!(
            lists.resources[0].email.as_deref(),
            Some("room@corp.example")
        );
    }
}
