//! Calendar items: the `CalendarItem` model, time zones (Windows ids → IANA via CLDR), and
//! recurrence expansion into occurrences and exceptions.
//!
//! Instants are stored in UTC; a series keeps its creation zone (`start_time_zone`) and is
//! expanded in that zone, so a weekly 09:00 meeting in "W. Europe Standard Time" stays at 09:00
//! local on both sides of a DST switch (and its UTC time moves by an hour), as in Exchange.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::{Body, ItemId};

/// Resolves a Windows zone id (what EWS carries in `StartTimeZone/@Id`) to its IANA zone.
/// `None` for an id Exchange would not know (it answers `ErrorCalendarInvalidTimeZone`).
pub fn zone(windows_id: &str) -> Option<Tz> {
    let id = windows_id.trim();
    if id.eq_ignore_ascii_case("UTC") || id == "Greenwich Mean Time UTC" {
        return Some(Tz::UTC);
    }
    id.parse::<windows_timezones::WindowsTimezone>()
        .ok()
        .map(Into::into)
}

/// The display name Exchange pairs with a Windows zone id (`StartTimeZone/@Name`).
pub fn zone_display_name(windows_id: &str) -> Option<&'static str> {
    windows_id
        .trim()
        .parse::<windows_timezones::WindowsTimezone>()
        .ok()
        .map(|z| z.description())
}

/// A local wall-clock time in `tz` as a UTC instant. Ambiguous times (the repeated hour when
/// DST ends) take the earlier instant; times in the skipped hour move forward by the gap, as
/// Outlook does.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            let later = local + Duration::hours(1);
            match tz.from_local_datetime(&later) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                // No zone has two consecutive gaps; fall back to reading it as UTC.
                LocalResult::None => Utc.from_utc_datetime(&local),
            }
        }
    }
}

pub fn utc_to_local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// An `xs:dateTime` from a request: with `Z` or an offset it is literal, otherwise it is read
/// as wall-clock time in `tz` (EWS 2010+ rules, exchange.md §2.5).
pub fn parse_request_time(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| local_to_utc(tz, n))
        .map_err(|_| format!("'{t}' is not a valid xs:dateTime"))
}

/// `2026-03-02T08:00:00Z`: EWS answers in UTC.
pub fn fmt_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A recipient (`t:Mailbox` of EmailAddressType).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipient {
    pub name: Option<String>,
    pub email: String,
}

/// `t:Attendee`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attendee {
    pub name: Option<String>,
    pub email: String,
    /// ResponseTypeType: `Unknown|Organizer|Tentative|Accept|Decline|NoResponseReceived`.
    pub response_type: String,
    pub last_response_time: Option<DateTime<Utc>>,
}

impl Attendee {
    pub fn new(email: &str) -> Self {
        Attendee {
            name: None,
            email: email.to_string(),
            response_type: "Unknown".into(),
            last_response_time: None,
        }
    }
}

/// The recurrence patterns lnsync meets (types.xsd `RecurrencePatternTypes`, without yearly
/// and regenerating patterns). Day names are EWS `DayOfWeekType` values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pattern {
    Daily {
        interval: u32,
    },
    Weekly {
        interval: u32,
        days_of_week: Vec<String>,
        #[serde(default)]
        first_day_of_week: Option<String>,
    },
    AbsoluteMonthly {
        interval: u32,
        day_of_month: u32,
    },
    RelativeMonthly {
        interval: u32,
        /// One `DayOfWeekType` (incl. `Day`, `Weekday`, `WeekendDay`).
        days_of_week: String,
        /// `First|Second|Third|Fourth|Last`.
        day_of_week_index: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Range {
    NoEnd {
        start_date: NaiveDate,
    },
    EndDate {
        start_date: NaiveDate,
        end_date: NaiveDate,
    },
    Numbered {
        start_date: NaiveDate,
        number_of_occurrences: u32,
    },
}

impl Range {
    pub fn start_date(&self) -> NaiveDate {
        match self {
            Range::NoEnd { start_date }
            | Range::EndDate { start_date, .. }
            | Range::Numbered { start_date, .. } => *start_date,
        }
    }

    pub fn set_start_date(&mut self, d: NaiveDate) {
        match self {
            Range::NoEnd { start_date }
            | Range::EndDate { start_date, .. }
            | Range::Numbered { start_date, .. } => *start_date = d,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub range: Range,
}

pub fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "Sunday" => Weekday::Sun,
        "Monday" => Weekday::Mon,
        "Tuesday" => Weekday::Tue,
        "Wednesday" => Weekday::Wed,
        "Thursday" => Weekday::Thu,
        "Friday" => Weekday::Fri,
        "Saturday" => Weekday::Sat,
        _ => return None,
    })
}

/// The weekdays a `DayOfWeekType` value stands for (`Weekday` = Mon–Fri, …).
pub fn day_set(s: &str) -> Option<Vec<Weekday>> {
    use Weekday::*;
    Some(match s {
        "Day" => vec![Sun, Mon, Tue, Wed, Thu, Fri, Sat],
        "Weekday" => vec![Mon, Tue, Wed, Thu, Fri],
        "WeekendDay" => vec![Sun, Sat],
        other => vec![parse_weekday(other)?],
    })
}

pub const DAY_INDEXES: [&str; 5] = ["First", "Second", "Third", "Fourth", "Last"];

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn add_months(y: i32, m: u32, n: u32) -> (i32, u32) {
    let total = y * 12 + (m as i32 - 1) + n as i32;
    (total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

/// The `index`-th day of month matching `days` (index `Last` = the last one).
fn relative_day(y: i32, m: u32, days: &[Weekday], index: &str) -> Option<NaiveDate> {
    let matching: Vec<NaiveDate> = (1..=days_in_month(y, m))
        .filter_map(|d| NaiveDate::from_ymd_opt(y, m, d))
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    match index {
        "Last" => matching.last().copied(),
        other => {
            let i = DAY_INDEXES.iter().position(|x| *x == other)?;
            matching.get(i).copied()
        }
    }
}

/// Safety net against patterns that never produce a date (no infinite loops on bad input).
const MAX_STEPS: usize = 200_000;

impl Recurrence {
    /// Checks what Exchange checks on create (`ErrorCalendarInvalidRecurrence`).
    pub fn validate(&self) -> Result<(), String> {
        let interval = match &self.pattern {
            Pattern::Daily { interval }
            | Pattern::Weekly { interval, .. }
            | Pattern::AbsoluteMonthly { interval, .. }
            | Pattern::RelativeMonthly { interval, .. } => *interval,
        };
        if interval == 0 || interval > 999 {
            return Err("The recurrence interval must be between 1 and 999.".into());
        }
        match &self.pattern {
            Pattern::Weekly {
                days_of_week,
                first_day_of_week,
                ..
            } => {
                if days_of_week.is_empty() || days_of_week.iter().any(|d| day_set(d).is_none()) {
                    return Err("Weekly recurrence needs valid DaysOfWeek.".into());
                }
                if let Some(f) = first_day_of_week
                    && parse_weekday(f).is_none()
                {
                    return Err(format!("'{f}' is not a valid FirstDayOfWeek."));
                }
            }
            Pattern::AbsoluteMonthly { day_of_month, .. } => {
                if !(1..=31).contains(day_of_month) {
                    return Err("DayOfMonth must be between 1 and 31.".into());
                }
            }
            Pattern::RelativeMonthly {
                days_of_week,
                day_of_week_index,
                ..
            } => {
                if day_set(days_of_week).is_none()
                    || !DAY_INDEXES.contains(&day_of_week_index.as_str())
                {
                    return Err(
                        "RelativeMonthly needs a valid DaysOfWeek and DayOfWeekIndex.".into(),
                    );
                }
            }
            Pattern::Daily { .. } => {}
        }
        match &self.range {
            Range::EndDate {
                start_date,
                end_date,
            } if end_date < start_date => {
                Err("The recurrence EndDate is earlier than its StartDate.".into())
            }
            Range::Numbered {
                number_of_occurrences: 0,
                ..
            } => Err("NumberOfOccurrences must be at least 1.".into()),
            _ => Ok(()),
        }
    }

    /// Occurrence dates (local to the series' zone) from the range start up to `until`
    /// (inclusive), honouring the range's end and count.
    pub fn dates(&self, until: NaiveDate) -> Vec<NaiveDate> {
        let start = self.range.start_date();
        let limit = match &self.range {
            Range::EndDate { end_date, .. } => (*end_date).min(until),
            _ => until,
        };
        let count = match &self.range {
            Range::Numbered {
                number_of_occurrences,
                ..
            } => Some(*number_of_occurrences as usize),
            _ => None,
        };
        let mut out: Vec<NaiveDate> = Vec::new();
        let full = |out: &Vec<NaiveDate>| count.is_some_and(|c| out.len() >= c);
        let mut steps = 0usize;
        match &self.pattern {
            Pattern::Daily { interval } => {
                let mut d = start;
                while d <= limit && !full(&out) && steps < MAX_STEPS {
                    out.push(d);
                    d += Duration::days(i64::from(*interval));
                    steps += 1;
                }
            }
            Pattern::Weekly {
                interval,
                days_of_week,
                first_day_of_week,
            } => {
                let first = first_day_of_week
                    .as_deref()
                    .and_then(parse_weekday)
                    .unwrap_or(Weekday::Sun);
                let mut offsets: Vec<i64> = days_of_week
                    .iter()
                    .filter_map(|d| day_set(d))
                    .flatten()
                    .map(|w| {
                        i64::from((w.num_days_from_sunday() + 7 - first.num_days_from_sunday()) % 7)
                    })
                    .collect();
                offsets.sort_unstable();
                offsets.dedup();
                let back = i64::from(
                    (start.weekday().num_days_from_sunday() + 7 - first.num_days_from_sunday()) % 7,
                );
                let mut week = start - Duration::days(back);
                'weeks: while week <= limit && steps < MAX_STEPS && !offsets.is_empty() {
                    for off in &offsets {
                        let d = week + Duration::days(*off);
                        if d < start {
                            continue;
                        }
                        if d > limit || full(&out) {
                            break 'weeks;
                        }
                        out.push(d);
                    }
                    week += Duration::days(7 * i64::from(*interval));
                    steps += 1;
                }
            }
            Pattern::AbsoluteMonthly {
                interval,
                day_of_month,
            } => {
                let (mut y, mut m) = (start.year(), start.month());
                while steps < MAX_STEPS && !full(&out) {
                    // Day 31 in a 30-day month falls on its last day, as in Outlook.
                    let day = (*day_of_month).min(days_in_month(y, m));
                    let Some(d) = NaiveDate::from_ymd_opt(y, m, day) else {
                        break;
                    };
                    if d > limit {
                        break;
                    }
                    if d >= start {
                        out.push(d);
                    }
                    (y, m) = add_months(y, m, *interval);
                    steps += 1;
                }
            }
            Pattern::RelativeMonthly {
                interval,
                days_of_week,
                day_of_week_index,
            } => {
                let days = day_set(days_of_week).unwrap_or_default();
                let (mut y, mut m) = (start.year(), start.month());
                while steps < MAX_STEPS && !full(&out) {
                    if NaiveDate::from_ymd_opt(y, m, 1).is_none_or(|d| d > limit) {
                        break;
                    }
                    if let Some(d) = relative_day(y, m, &days, day_of_week_index)
                        && d >= start
                    {
                        if d > limit {
                            break;
                        }
                        out.push(d);
                    }
                    (y, m) = add_months(y, m, *interval);
                    steps += 1;
                }
            }
        }
        out
    }
}

/// An occurrence that differs from its series (`ModifiedOccurrences`), keyed by the original
/// start. Holds the full values of the fields an occurrence can change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifiedOccurrence {
    pub original_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub subject: Option<String>,
    pub body: Option<Body>,
    pub location: Option<String>,
    pub legacy_free_busy: String,
    pub is_all_day: bool,
    pub reminder_is_set: bool,
    pub reminder_minutes_before_start: i32,
    pub is_cancelled: bool,
}

/// Set on a calendar item synthesised for one occurrence or exception of a series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOf {
    pub master_id: ItemId,
    pub original_start: DateTime<Utc>,
    /// 1-based position in the series (`OccurrenceItemId/@InstanceIndex`).
    pub index: u32,
    pub exception: bool,
}

/// `t:CalendarItem` (CalendarItemType). Item-level fields that only calendar items use here
/// (sensitivity, categories, reminder) live in this struct too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalendarItem {
    pub uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub is_all_day: bool,
    /// LegacyFreeBusyType: `Free|Tentative|Busy|OOF|WorkingElsewhere|NoData`.
    pub legacy_free_busy: String,
    pub location: Option<String>,
    /// `Normal|Personal|Private|Confidential`.
    pub sensitivity: String,
    pub categories: Vec<String>,
    pub reminder_is_set: bool,
    pub reminder_minutes_before_start: i32,
    pub is_cancelled: bool,
    /// True in the organizer's copy (and for appointments without attendees).
    pub is_organizer: bool,
    pub organizer: Option<Recipient>,
    /// `Organizer` in the organizer's copy, the attendee's own answer in theirs.
    pub my_response_type: String,
    pub required_attendees: Vec<Attendee>,
    pub optional_attendees: Vec<Attendee>,
    pub resources: Vec<Attendee>,
    pub recurrence: Option<Recurrence>,
    pub modified_occurrences: Vec<ModifiedOccurrence>,
    /// Original starts of deleted occurrences.
    pub deleted_occurrences: Vec<DateTime<Utc>>,
    /// Windows zone id of the creation zone (EWS always reports one).
    pub start_time_zone: String,
    pub end_time_zone: String,
    pub meeting_request_was_sent: bool,
    pub appointment_sequence_number: i32,
    pub appointment_reply_time: Option<DateTime<Utc>>,
    /// Only on items synthesised for an occurrence/exception, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceOf>,
}

/// One expanded instance of a calendar item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    pub original_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exception: bool,
}

impl CalendarItem {
    /// A fresh appointment in `zone` (Windows id) with Exchange's defaults.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, zone: &str) -> Self {
        CalendarItem {
            start,
            end,
            legacy_free_busy: "Busy".into(),
            sensitivity: "Normal".into(),
            reminder_is_set: true,
            reminder_minutes_before_start: 15,
            is_organizer: true,
            my_response_type: "Organizer".into(),
            start_time_zone: zone.into(),
            end_time_zone: zone.into(),
            ..Default::default()
        }
    }

    pub fn tz(&self) -> Tz {
        zone(&self.start_time_zone).unwrap_or(Tz::UTC)
    }

    pub fn item_type(&self) -> &'static str {
        match (&self.instance, &self.recurrence) {
            (Some(i), _) if i.exception => "Exception",
            (Some(_), _) => "Occurrence",
            (None, Some(_)) => "RecurringMaster",
            (None, None) => "Single",
        }
    }

    pub fn is_meeting(&self) -> bool {
        !self.is_organizer || !self.attendee_emails().is_empty()
    }

    /// Every attendee address (required, optional, resources), in order.
    pub fn attendee_emails(&self) -> Vec<String> {
        self.all_attendees().map(|a| a.email.clone()).collect()
    }

    pub fn all_attendees(&self) -> impl Iterator<Item = &Attendee> {
        self.required_attendees
            .iter()
            .chain(self.optional_attendees.iter())
            .chain(self.resources.iter())
    }

    pub fn all_attendees_mut(&mut self) -> impl Iterator<Item = &mut Attendee> {
        self.required_attendees
            .iter_mut()
            .chain(self.optional_attendees.iter_mut())
            .chain(self.resources.iter_mut())
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Original starts of the series up to `until` (UTC), with their 1-based index; deleted
    /// occurrences included (they keep their index).
    pub fn originals(&self, until: DateTime<Utc>) -> Vec<(u32, DateTime<Utc>)> {
        let Some(rec) = &self.recurrence else {
            return Vec::new();
        };
        let tz = self.tz();
        let time: NaiveTime = utc_to_local(tz, self.start).time();
        // One extra day covers zones ahead of UTC.
        let until_local = utc_to_local(tz, until).date() + Duration::days(1);
        rec.dates(until_local)
            .into_iter()
            .map(|d| local_to_utc(tz, d.and_time(time)))
            .take_while(|t| *t <= until)
            .enumerate()
            .map(|(i, t)| (i as u32 + 1, t))
            .collect()
    }

    /// The first occurrence (recurring items only).
    pub fn first_original(&self) -> Option<DateTime<Utc>> {
        let rec = self.recurrence.as_ref()?;
        let tz = self.tz();
        let time = utc_to_local(tz, self.start).time();
        // A pattern that produces nothing within ten years has no occurrence.
        let d = rec
            .dates(rec.range.start_date() + Duration::days(3660))
            .into_iter()
            .next()?;
        Some(local_to_utc(tz, d.and_time(time)))
    }

    /// The last occurrence of a bounded series.
    pub fn last_original(&self) -> Option<(u32, DateTime<Utc>)> {
        let rec = self.recurrence.as_ref()?;
        let horizon = match &rec.range {
            Range::NoEnd { .. } => return None,
            Range::EndDate { end_date, .. } => *end_date + Duration::days(2),
            // Bounded by the count; 200 years is more than any pattern with ≤ 999 steps needs.
            Range::Numbered { .. } => rec.range.start_date() + Duration::days(366 * 200),
        };
        let until = local_to_utc(self.tz(), horizon.and_time(NaiveTime::MIN));
        self.originals(until).last().copied()
    }

    /// Index of an original start in the series.
    pub fn index_of(&self, original: DateTime<Utc>) -> Option<u32> {
        self.originals(original)
            .into_iter()
            .find(|(_, t)| *t == original)
            .map(|(i, _)| i)
    }

    /// Original start of the `index`-th occurrence (1-based).
    pub fn original_at(&self, index: u32) -> Option<DateTime<Utc>> {
        let rec = self.recurrence.as_ref()?;
        let tz = self.tz();
        let time = utc_to_local(tz, self.start).time();
        let mut until = rec.range.start_date() + Duration::days(400);
        // Widen until the series has that many dates (or cannot have).
        for _ in 0..12 {
            let dates = rec.dates(until);
            if let Some(d) = dates.get(index.checked_sub(1)? as usize) {
                return Some(local_to_utc(tz, d.and_time(time)));
            }
            if matches!(rec.range, Range::Numbered { number_of_occurrences, .. } if dates.len() >= number_of_occurrences as usize)
                || matches!(rec.range, Range::EndDate { end_date, .. } if end_date <= until)
            {
                return None;
            }
            until += Duration::days(3660);
        }
        None
    }

    pub fn exception_at(&self, original: DateTime<Utc>) -> Option<&ModifiedOccurrence> {
        self.modified_occurrences
            .iter()
            .find(|m| m.original_start == original)
    }

    pub fn is_deleted(&self, original: DateTime<Utc>) -> bool {
        self.deleted_occurrences.contains(&original)
    }

    /// Instances (occurrences and exceptions, not deleted ones) overlapping `[from, to)`.
    /// Exceptions are checked on their own, so one moved into the window from outside it
    /// is found too.
    pub fn instances(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        let dur = self.duration();
        let mut out: Vec<Slot> = self
            .originals(to)
            .into_iter()
            .filter(|(_, o)| !self.is_deleted(*o) && self.exception_at(*o).is_none())
            .map(|(index, o)| Slot {
                index,
                original_start: o,
                start: o,
                end: o + dur,
                exception: false,
            })
            .filter(|s| s.start < to && (s.end > from || (s.start == s.end && s.start >= from)))
            .collect();
        for m in &self.modified_occurrences {
            if m.start < to && (m.end > from || (m.start == m.end && m.start >= from)) {
                out.push(Slot {
                    index: self.index_of(m.original_start).unwrap_or(0),
                    original_start: m.original_start,
                    start: m.start,
                    end: m.end,
                    exception: true,
                });
            }
        }
        out.sort_by_key(|s| (s.start, s.original_start));
        out
    }

    /// Moves a recurring item's Start/End onto its first occurrence (Exchange does the same
    /// when the given start does not match the pattern), keeping the local time of day.
    pub fn align_to_pattern(&mut self) {
        if let Some(first) = self.first_original() {
            let dur = self.duration();
            self.start = first;
            self.end = first + dur;
        }
    }

    /// Widens an all-day event to local midnights, as Exchange does.
    pub fn widen_all_day(&mut self) {
        if !self.is_all_day {
            return;
        }
        let tz = self.tz();
        let s = utc_to_local(tz, self.start);
        let e = utc_to_local(tz, self.end);
        let start_day = s.date();
        let mut end_day = e.date();
        if e.time() != NaiveTime::MIN || end_day <= start_day {
            end_day = end_day.succ_opt().unwrap_or(end_day);
        }
        self.start = local_to_utc(tz, start_day.and_time(NaiveTime::MIN));
        self.end = local_to_utc(tz, end_day.and_time(NaiveTime::MIN));
    }
}

/// A fresh iCalendar UID in Exchange's shape (a hex Global Object Id).
pub fn new_uid() -> String {
    let u = uuid::Uuid::new_v4();
    format!(
        "040000008200E00074C5B7101A82E00800000000{}00000000000000001000000{}",
        hex::encode_upper(&u.as_bytes()[..8]),
        hex::encode_upper(u.as_bytes())
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn windows_zones_map_to_iana() {
        assert_eq!(
            zone("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(zone("UTC"), Some(Tz::UTC));
        assert_eq!(zone("Mars Standard Time"), None);
    }

    #[test]
    fn weekly_keeps_wall_clock_across_dst() {
        let tz = zone("W. Europe Standard Time").unwrap();
        let start = local_to_utc(tz, d(2026, 3, 16).and_hms_opt(9, 0, 0).unwrap());
        let mut cal =
            CalendarItem::new(start, start + Duration::hours(1), "W. Europe Standard Time");
        cal.recurrence = Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days_of_week: vec!["Monday".into()],
                first_day_of_week: None,
            },
            range: Range::Numbered {
                start_date: d(2026, 3, 16),
                number_of_occurrences: 4,
            },
        });
        let all = cal.originals(start + Duration::days(60));
        let utc_hours: Vec<u32> = all.iter().map(|(_, t)| t.time().hour()).collect();
        use chrono::Timelike;
        // 08:00Z before the switch on 29 March, 07:00Z after; always 09:00 local.
        assert_eq!(utc_hours, vec![8, 8, 7, 7]);
        assert!(
            all.iter()
                .all(|(_, t)| utc_to_local(tz, *t).time()
                    == NaiveTime::from_hms_opt(9, 0, 0).unwrap())
        );
        assert_eq!(cal.last_original().map(|(i, _)| i), Some(4));
        assert_eq!(cal.original_at(3), Some(all[2].1));
    }

    #[test]
    fn monthly_patterns() {
        let r = Recurrence {
            pattern: Pattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 31,
            },
            range: Range::NoEnd {
                start_date: d(2026, 1, 1),
            },
        };
        assert_eq!(
            r.dates(d(2026, 4, 30)),
            vec![
                d(2026, 1, 31),
                d(2026, 2, 28),
                d(2026, 3, 31),
                d(2026, 4, 30)
            ]
        );
        let r = Recurrence {
            pattern: Pattern::RelativeMonthly {
                interval: 2,
                days_of_week: "Tuesday".into(),
                day_of_week_index: "Last".into(),
            },
            range: Range::EndDate {
                start_date: d(2026, 1, 1),
                end_date: d(2026, 6, 1),
            },
        };
        assert_eq!(
            r.dates(d(2030, 1, 1)),
            vec![d(2026, 1, 27), d(2026, 3, 31), d(2026, 5, 26)]
        );
    }
}
