//! `t:CalendarItem` on the wire: parsing created items (XSD order checked), rendering the
//! calendar part of an item in schema order, and applying `calendar:*` updates.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::calendar::{
    Attendee, CalendarItem, DAY_INDEXES, ModifiedOccurrence, Pattern, Range, Recurrence, day_set,
    fmt_utc, parse_request_time, parse_weekday, utc_to_local, zone, zone_display_name,
};
use crate::model::{Body, Item, ItemId, make_occurrence_id};
use crate::ops::{UpdateError, parse_extended_property};
use crate::render::{Shape, item_id_el};
use crate::schema_order::{CALENDAR_ORDER, ITEM_ORDER};
use crate::xml::{Element, esc, text_el};

/// Why a `t:CalendarItem` could not be taken.
#[derive(Debug)]
pub enum CalError {
    /// Request-level schema violation (SOAP fault).
    Schema(String),
    /// Per-item error with its ResponseCode.
    Item(&'static str, String),
}

pub const FREE_BUSY: [&str; 6] = [
    "Free",
    "Tentative",
    "Busy",
    "OOF",
    "WorkingElsewhere",
    "NoData",
];
pub const SENSITIVITY: [&str; 4] = ["Normal", "Personal", "Private", "Confidential"];

fn parse_bool(el: &Element) -> Result<bool, String> {
    match el.text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!(
            "'{other}' is not a valid xs:boolean in {}",
            el.name
        )),
    }
}

fn parse_int(el: &Element) -> Result<i64, String> {
    el.text
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not a valid xs:int in {}", el.text.trim(), el.name))
}

fn enum_value(el: &Element, allowed: &[&str]) -> Result<String, String> {
    let v = el.text.trim();
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(format!("'{v}' is not a valid value for {}", el.name))
    }
}

/// `xs:date`, possibly with a zone suffix (`2026-03-02+01:00`, `2026-03-02Z`).
fn parse_date(el: &Element) -> Result<NaiveDate, String> {
    let t = el.text.trim();
    t.get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("'{t}' is not a valid xs:date in {}", el.name))
}

fn zone_of(el: &Element) -> Result<(String, Tz), CalError> {
    let id = el.attr("Id").ok_or_else(|| {
        CalError::Item(
            "ErrorCalendarInvalidTimeZone",
            format!("{} needs an Id.", el.name),
        )
    })?;
    let tz = zone(id).ok_or_else(|| {
        CalError::Item(
            "ErrorCalendarInvalidTimeZone",
            format!("The time zone '{id}' is not a valid Windows time zone id."),
        )
    })?;
    Ok((id.to_string(), tz))
}

pub fn parse_attendees(el: &Element) -> Result<Vec<Attendee>, String> {
    let mut out = Vec::new();
    for a in &el.children {
        if a.name != "Attendee" {
            return Err(format!("unexpected '{}' in {}", a.name, el.name));
        }
        let mb = a
            .child("Mailbox")
            .ok_or_else(|| format!("{}/Attendee requires Mailbox", el.name))?;
        let email = mb
            .child_text("EmailAddress")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| format!("{}/Attendee/Mailbox requires EmailAddress", el.name))?;
        let mut att = Attendee::new(email);
        att.name = mb.child_text("Name").map(str::to_string);
        out.push(att);
    }
    if out.is_empty() {
        return Err(format!("{} must contain at least one Attendee", el.name));
    }
    Ok(out)
}

fn interval(p: &Element) -> Result<u32, String> {
    let el = p
        .child("Interval")
        .ok_or_else(|| format!("{} requires Interval", p.name))?;
    u32::try_from(parse_int(el)?).map_err(|_| "Interval must not be negative".to_string())
}

pub fn parse_recurrence(el: &Element) -> Result<Recurrence, CalError> {
    let schema = CalError::Schema;
    let (p, r) = match el.children.as_slice() {
        [p, r] => (p, r),
        _ => return Err(schema("Recurrence needs a pattern and a range".into())),
    };
    let pattern = match p.name.as_str() {
        "DailyRecurrence" => Pattern::Daily {
            interval: interval(p).map_err(schema)?,
        },
        "WeeklyRecurrence" => {
            let days = p
                .child_text("DaysOfWeek")
                .ok_or_else(|| schema("WeeklyRecurrence requires DaysOfWeek".into()))?;
            let days_of_week: Vec<String> = days.split_whitespace().map(str::to_string).collect();
            if days_of_week.iter().any(|d| day_set(d).is_none()) {
                return Err(schema(format!("'{days}' is not a valid DaysOfWeek list")));
            }
            let first_day_of_week = p.child_text("FirstDayOfWeek").map(|s| s.trim().to_string());
            if let Some(f) = &first_day_of_week
                && parse_weekday(f).is_none()
            {
                return Err(schema(format!("'{f}' is not a valid FirstDayOfWeek")));
            }
            Pattern::Weekly {
                interval: interval(p).map_err(schema)?,
                days_of_week,
                first_day_of_week,
            }
        }
        "AbsoluteMonthlyRecurrence" => Pattern::AbsoluteMonthly {
            interval: interval(p).map_err(schema)?,
            day_of_month: p
                .child("DayOfMonth")
                .ok_or_else(|| schema("AbsoluteMonthlyRecurrence requires DayOfMonth".into()))
                .and_then(|d| parse_int(d).map_err(schema))
                .map(|d| u32::try_from(d).unwrap_or(0))?,
        },
        "RelativeMonthlyRecurrence" => {
            let dow = p
                .child_text("DaysOfWeek")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| schema("RelativeMonthlyRecurrence requires DaysOfWeek".into()))?;
            let idx = p
                .child_text("DayOfWeekIndex")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| {
                    schema("RelativeMonthlyRecurrence requires DayOfWeekIndex".into())
                })?;
            if day_set(&dow).is_none() || !DAY_INDEXES.contains(&idx.as_str()) {
                return Err(schema(format!(
                    "invalid DaysOfWeek '{dow}' or DayOfWeekIndex '{idx}'"
                )));
            }
            Pattern::RelativeMonthly {
                interval: interval(p).map_err(schema)?,
                days_of_week: dow,
                day_of_week_index: idx,
            }
        }
        "RelativeYearlyRecurrence"
        | "AbsoluteYearlyRecurrence"
        | "DailyRegeneration"
        | "WeeklyRegeneration"
        | "MonthlyRegeneration"
        | "YearlyRegeneration" => {
            return Err(CalError::Item(
                "ErrorCalendarInvalidRecurrence",
                format!("The simulator does not support {} patterns.", p.name),
            ));
        }
        other => return Err(schema(format!("unexpected recurrence pattern '{other}'"))),
    };
    let start_date = r
        .child("StartDate")
        .ok_or_else(|| schema(format!("{} requires StartDate", r.name)))
        .and_then(|d| parse_date(d).map_err(schema))?;
    let range = match r.name.as_str() {
        "NoEndRecurrence" => Range::NoEnd { start_date },
        "EndDateRecurrence" => Range::EndDate {
            start_date,
            end_date: r
                .child("EndDate")
                .ok_or_else(|| schema("EndDateRecurrence requires EndDate".into()))
                .and_then(|d| parse_date(d).map_err(schema))?,
        },
        "NumberedRecurrence" => Range::Numbered {
            start_date,
            number_of_occurrences: r
                .child("NumberOfOccurrences")
                .ok_or_else(|| schema("NumberedRecurrence requires NumberOfOccurrences".into()))
                .and_then(|d| parse_int(d).map_err(schema))
                .map(|n| u32::try_from(n).unwrap_or(0))?,
        },
        other => return Err(schema(format!("unexpected recurrence range '{other}'"))),
    };
    let rec = Recurrence { pattern, range };
    rec.validate()
        .map_err(|m| CalError::Item("ErrorCalendarInvalidRecurrence", m))?;
    Ok(rec)
}

/// Parses a created `t:CalendarItem`. Un-offset times are read in `StartTimeZone` (Start) /
/// `EndTimeZone` (End), else the request's `TimeZoneContext`, else UTC; the start's zone
/// becomes the creation zone. Organizer, responses and other server-set fields are ignored.
pub fn parse_calendar_item(el: &Element, tz_context: Option<&str>) -> Result<Item, CalError> {
    let order: Vec<&str> = ITEM_ORDER
        .iter()
        .chain(CALENDAR_ORDER.iter())
        .copied()
        .collect();
    let mut last: Option<usize> = None;
    for c in &el.children {
        let pos = order.iter().position(|n| *n == c.name).ok_or_else(|| {
            CalError::Schema(format!(
                "line {}: The element '{}' is not allowed in CalendarItem.",
                c.line, c.name
            ))
        })?;
        if let Some(prev) = last
            && (pos < prev || (pos == prev && c.name != "ExtendedProperty"))
        {
            return Err(CalError::Schema(format!(
                "line {}: The element '{}' is out of order in CalendarItem (after '{}').",
                c.line, c.name, order[prev]
            )));
        }
        last = Some(pos);
    }
    let context = match tz_context {
        Some(id) => (id.to_string(), zone(id).unwrap_or(Tz::UTC)),
        None => ("UTC".to_string(), Tz::UTC),
    };
    let start_zone = match el.child("StartTimeZone") {
        Some(z) => zone_of(z)?,
        None => context.clone(),
    };
    let end_zone = match el.child("EndTimeZone") {
        Some(z) => zone_of(z)?,
        None => start_zone.clone(),
    };
    let invalid = |m: String| CalError::Item("ErrorCalendarInvalidPropertyValue", m);
    let start = el
        .child("Start")
        .ok_or_else(|| invalid("A calendar item needs a Start.".into()))
        .and_then(|s| parse_request_time(&s.text, start_zone.1).map_err(CalError::Schema))?;
    let end = el
        .child("End")
        .ok_or_else(|| invalid("A calendar item needs an End.".into()))
        .and_then(|s| parse_request_time(&s.text, end_zone.1).map_err(CalError::Schema))?;
    let mut cal = CalendarItem::new(start, end, &start_zone.0);
    cal.end_time_zone = end_zone.0.clone();
    let mut item = Item::calendar(CalendarItem::default());
    let schema = CalError::Schema;
    for c in &el.children {
        match c.name.as_str() {
            "Subject" => item.subject = Some(c.text.clone()),
            "Body" => {
                item.body = Some(Body {
                    body_type: c.attr("BodyType").unwrap_or("Text").to_string(),
                    text: c.text.clone(),
                })
            }
            "Sensitivity" => cal.sensitivity = enum_value(c, &SENSITIVITY).map_err(schema)?,
            "Categories" => {
                cal.categories = c.children_named("String").map(|s| s.text.clone()).collect()
            }
            "ReminderIsSet" => cal.reminder_is_set = parse_bool(c).map_err(schema)?,
            "ReminderMinutesBeforeStart" => {
                cal.reminder_minutes_before_start =
                    i32::try_from(parse_int(c).map_err(schema)?).unwrap_or(15)
            }
            "ExtendedProperty" => {
                let (k, v) = parse_extended_property(c).map_err(schema)?;
                item.extended_properties.insert(k, v);
            }
            "UID" => cal.uid = c.text.trim().to_string(),
            "IsAllDayEvent" => cal.is_all_day = parse_bool(c).map_err(schema)?,
            "LegacyFreeBusyStatus" => {
                cal.legacy_free_busy = enum_value(c, &FREE_BUSY).map_err(schema)?
            }
            "Location" => cal.location = Some(c.text.clone()),
            "RequiredAttendees" => cal.required_attendees = parse_attendees(c).map_err(schema)?,
            "OptionalAttendees" => cal.optional_attendees = parse_attendees(c).map_err(schema)?,
            "Resources" => cal.resources = parse_attendees(c).map_err(schema)?,
            "Recurrence" => cal.recurrence = Some(parse_recurrence(c)?),
            // Read-only or unmodelled properties are accepted and dropped.
            _ => {}
        }
    }
    if cal.end < cal.start {
        return Err(CalError::Item(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate".into(),
        ));
    }
    cal.widen_all_day();
    if cal.recurrence.is_some() {
        if cal.first_original().is_none() {
            return Err(CalError::Item(
                "ErrorRecurrenceHasNoOccurrence",
                "The recurrence pattern has no occurrence.".into(),
            ));
        }
        cal.align_to_pattern();
    }
    item.kind = crate::model::ItemKind::Calendar(Box::new(cal));
    Ok(item)
}

// ---------------------------------------------------------------- rendering

fn recipient_el(out: &mut String, name: Option<&str>, email: &str) {
    out.push_str("<t:Mailbox>");
    text_el(out, "t:Name", name.unwrap_or(email));
    text_el(out, "t:EmailAddress", email);
    text_el(out, "t:RoutingType", "SMTP");
    out.push_str("</t:Mailbox>");
}

fn attendees_el(out: &mut String, tag: &str, list: &[Attendee]) {
    if list.is_empty() {
        return;
    }
    out.push_str(&format!("<t:{tag}>"));
    for a in list {
        out.push_str("<t:Attendee>");
        recipient_el(out, a.name.as_deref(), &a.email);
        text_el(out, "t:ResponseType", &a.response_type);
        if let Some(t) = a.last_response_time {
            text_el(out, "t:LastResponseTime", &fmt_utc(t));
        }
        out.push_str("</t:Attendee>");
    }
    out.push_str(&format!("</t:{tag}>"));
}

/// `xs:date` with the zone's offset on that day, as Exchange writes recurrence dates.
fn date_with_offset(d: NaiveDate, tz: Tz) -> String {
    use chrono::{Offset, TimeZone};
    let noon = d.and_hms_opt(12, 0, 0).unwrap_or_default();
    let secs = tz.offset_from_utc_datetime(&noon).fix().local_minus_utc();
    if secs == 0 {
        return format!("{d}Z");
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    format!("{d}{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

pub fn render_recurrence(out: &mut String, rec: &Recurrence, tz: Tz) {
    out.push_str("<t:Recurrence>");
    let interval = |out: &mut String, i: u32| text_el(out, "t:Interval", &i.to_string());
    match &rec.pattern {
        Pattern::Daily { interval: i } => {
            out.push_str("<t:DailyRecurrence>");
            interval(out, *i);
            out.push_str("</t:DailyRecurrence>");
        }
        Pattern::Weekly {
            interval: i,
            days_of_week,
            first_day_of_week,
        } => {
            out.push_str("<t:WeeklyRecurrence>");
            interval(out, *i);
            text_el(out, "t:DaysOfWeek", &days_of_week.join(" "));
            text_el(
                out,
                "t:FirstDayOfWeek",
                first_day_of_week.as_deref().unwrap_or("Sunday"),
            );
            out.push_str("</t:WeeklyRecurrence>");
        }
        Pattern::AbsoluteMonthly {
            interval: i,
            day_of_month,
        } => {
            out.push_str("<t:AbsoluteMonthlyRecurrence>");
            interval(out, *i);
            text_el(out, "t:DayOfMonth", &day_of_month.to_string());
            out.push_str("</t:AbsoluteMonthlyRecurrence>");
        }
        Pattern::RelativeMonthly {
            interval: i,
            days_of_week,
            day_of_week_index,
        } => {
            out.push_str("<t:RelativeMonthlyRecurrence>");
            interval(out, *i);
            text_el(out, "t:DaysOfWeek", days_of_week);
            text_el(out, "t:DayOfWeekIndex", day_of_week_index);
            out.push_str("</t:RelativeMonthlyRecurrence>");
        }
    }
    let start = date_with_offset(rec.range.start_date(), tz);
    match &rec.range {
        Range::NoEnd { .. } => {
            out.push_str("<t:NoEndRecurrence>");
            text_el(out, "t:StartDate", &start);
            out.push_str("</t:NoEndRecurrence>");
        }
        Range::EndDate { end_date, .. } => {
            out.push_str("<t:EndDateRecurrence>");
            text_el(out, "t:StartDate", &start);
            text_el(out, "t:EndDate", &date_with_offset(*end_date, tz));
            out.push_str("</t:EndDateRecurrence>");
        }
        Range::Numbered {
            number_of_occurrences,
            ..
        } => {
            out.push_str("<t:NumberedRecurrence>");
            text_el(out, "t:StartDate", &start);
            text_el(
                out,
                "t:NumberOfOccurrences",
                &number_of_occurrences.to_string(),
            );
            out.push_str("</t:NumberedRecurrence>");
        }
    }
    out.push_str("</t:Recurrence>");
}

fn occurrence_info(
    out: &mut String,
    tag: &str,
    master: &ItemId,
    original: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    out.push_str(&format!("<t:{tag}>"));
    item_id_el(
        out,
        "ItemId",
        make_occurrence_id(master, original).as_str(),
        None,
    );
    text_el(out, "t:Start", &fmt_utc(start));
    text_el(out, "t:End", &fmt_utc(end));
    text_el(out, "t:OriginalStart", &fmt_utc(original));
    out.push_str(&format!("</t:{tag}>"));
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn zone_el(out: &mut String, tag: &str, id: &str) {
    let name = zone_display_name(id).unwrap_or(id);
    out.push_str(&format!(
        "<t:{tag} Id=\"{}\" Name=\"{}\"/>",
        esc(id),
        esc(name)
    ));
}

/// The `CalendarItemType` part, in schema order. `master` is the stored item's id (for
/// occurrence ids in FirstOccurrence/ModifiedOccurrences…).
pub fn render_calendar_fields(
    out: &mut String,
    master: &ItemId,
    cal: &CalendarItem,
    shape: &Shape,
) {
    let c = |n: &str| format!("calendar:{n}");
    if shape.all_or(&c("UID")) && !cal.uid.is_empty() {
        text_el(out, "t:UID", &cal.uid);
    }
    if shape.default_or(&c("Start")) {
        text_el(out, "t:Start", &fmt_utc(cal.start));
    }
    if shape.default_or(&c("End")) {
        text_el(out, "t:End", &fmt_utc(cal.end));
    }
    if let Some(inst) = &cal.instance
        && shape.default_or(&c("OriginalStart"))
    {
        text_el(out, "t:OriginalStart", &fmt_utc(inst.original_start));
    }
    if shape.default_or(&c("IsAllDayEvent")) {
        text_el(out, "t:IsAllDayEvent", bool_str(cal.is_all_day));
    }
    if shape.default_or(&c("LegacyFreeBusyStatus")) {
        text_el(out, "t:LegacyFreeBusyStatus", &cal.legacy_free_busy);
    }
    if shape.default_or(&c("Location"))
        && let Some(l) = &cal.location
    {
        text_el(out, "t:Location", l);
    }
    if shape.default_or(&c("IsMeeting")) {
        text_el(out, "t:IsMeeting", bool_str(cal.is_meeting()));
    }
    if shape.default_or(&c("IsCancelled")) {
        text_el(out, "t:IsCancelled", bool_str(cal.is_cancelled));
    }
    if shape.default_or(&c("IsRecurring")) {
        // Exchange sets IsRecurring on occurrences and exceptions, not on the master.
        text_el(out, "t:IsRecurring", bool_str(cal.instance.is_some()));
    }
    if shape.all_or(&c("MeetingRequestWasSent")) {
        text_el(
            out,
            "t:MeetingRequestWasSent",
            bool_str(cal.meeting_request_was_sent),
        );
    }
    if shape.default_or(&c("CalendarItemType")) {
        text_el(out, "t:CalendarItemType", cal.item_type());
    }
    if shape.default_or(&c("MyResponseType")) {
        text_el(out, "t:MyResponseType", &cal.my_response_type);
    }
    if shape.default_or(&c("Organizer"))
        && let Some(o) = &cal.organizer
    {
        out.push_str("<t:Organizer>");
        recipient_el(out, o.name.as_deref(), &o.email);
        out.push_str("</t:Organizer>");
    }
    if shape.all_or(&c("RequiredAttendees")) {
        attendees_el(out, "RequiredAttendees", &cal.required_attendees);
    }
    if shape.all_or(&c("OptionalAttendees")) {
        attendees_el(out, "OptionalAttendees", &cal.optional_attendees);
    }
    if shape.all_or(&c("Resources")) {
        attendees_el(out, "Resources", &cal.resources);
    }
    if shape.all_or(&c("AppointmentReplyTime"))
        && let Some(t) = cal.appointment_reply_time
    {
        text_el(out, "t:AppointmentReplyTime", &fmt_utc(t));
    }
    if shape.all_or(&c("AppointmentSequenceNumber")) {
        text_el(
            out,
            "t:AppointmentSequenceNumber",
            &cal.appointment_sequence_number.to_string(),
        );
    }
    // Series data only on the master.
    if cal.instance.is_none()
        && let Some(rec) = &cal.recurrence
    {
        let tz = cal.tz();
        if shape.all_or(&c("Recurrence")) {
            render_recurrence(out, rec, tz);
        }
        let dur = cal.duration();
        if shape.all_or(&c("FirstOccurrence"))
            && let Some(first) = cal.first_original()
        {
            let (s, e) = cal
                .exception_at(first)
                .map_or((first, first + dur), |m| (m.start, m.end));
            occurrence_info(out, "FirstOccurrence", master, first, s, e);
        }
        if shape.all_or(&c("LastOccurrence"))
            && let Some((_, last)) = cal.last_original()
        {
            let (s, e) = cal
                .exception_at(last)
                .map_or((last, last + dur), |m| (m.start, m.end));
            occurrence_info(out, "LastOccurrence", master, last, s, e);
        }
        if shape.all_or(&c("ModifiedOccurrences")) && !cal.modified_occurrences.is_empty() {
            out.push_str("<t:ModifiedOccurrences>");
            let mut mods: Vec<&ModifiedOccurrence> = cal.modified_occurrences.iter().collect();
            mods.sort_by_key(|m| m.original_start);
            for m in mods {
                occurrence_info(out, "Occurrence", master, m.original_start, m.start, m.end);
            }
            out.push_str("</t:ModifiedOccurrences>");
        }
        if shape.all_or(&c("DeletedOccurrences")) && !cal.deleted_occurrences.is_empty() {
            out.push_str("<t:DeletedOccurrences>");
            let mut del = cal.deleted_occurrences.clone();
            del.sort();
            for d in del {
                out.push_str("<t:DeletedOccurrence>");
                text_el(out, "t:Start", &fmt_utc(d));
                out.push_str("</t:DeletedOccurrence>");
            }
            out.push_str("</t:DeletedOccurrences>");
        }
    }
    if shape.all_or(&c("StartTimeZone")) {
        zone_el(out, "StartTimeZone", &cal.start_time_zone);
    }
    if shape.all_or(&c("EndTimeZone")) {
        zone_el(out, "EndTimeZone", &cal.end_time_zone);
    }
    if shape.exchange2013 && shape.all_or(&c("IsOrganizer")) {
        text_el(out, "t:IsOrganizer", bool_str(cal.is_organizer));
    }
}

/// Values of a `calendar:*` path, for restrictions and sorting.
pub fn calendar_values(cal: &CalendarItem, name: &str) -> Vec<String> {
    let one = |s: String| vec![s];
    match name {
        "Start" => one(fmt_utc(cal.start)),
        "End" => one(fmt_utc(cal.end)),
        "UID" => one(cal.uid.clone()),
        "Location" => cal.location.iter().cloned().collect(),
        "CalendarItemType" => one(cal.item_type().to_string()),
        "IsAllDayEvent" => one(bool_str(cal.is_all_day).into()),
        "IsCancelled" => one(bool_str(cal.is_cancelled).into()),
        "IsMeeting" => one(bool_str(cal.is_meeting()).into()),
        "IsOrganizer" => one(bool_str(cal.is_organizer).into()),
        "LegacyFreeBusyStatus" => one(cal.legacy_free_busy.clone()),
        "MyResponseType" => one(cal.my_response_type.clone()),
        "Organizer" => cal.organizer.iter().map(|o| o.email.clone()).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- updates

fn bad_value(m: String) -> UpdateError {
    ("ErrorInvalidPropertySet", m)
}

/// Applies a Set (`value` = the single property element) or Delete (`None`) of a calendar
/// property. `tz` reads un-offset Start/End values.
pub fn apply_calendar_field(
    item: &mut Item,
    name: &str,
    value: Option<&Element>,
    tz: Tz,
) -> Result<(), UpdateError> {
    let occurrence = item.as_calendar().is_some_and(|c| c.instance.is_some());
    let Some(cal) = item.as_calendar_mut() else {
        return Err((
            "ErrorInvalidPropertySet",
            format!("calendar:{name} is not a property of this item."),
        ));
    };
    if occurrence
        && !matches!(
            name,
            "Start" | "End" | "Location" | "LegacyFreeBusyStatus" | "IsAllDayEvent"
        )
    {
        return Err((
            "ErrorInvalidPropertySet",
            format!("The simulator cannot change calendar:{name} on a single occurrence."),
        ));
    }
    let time = |v: &Element| parse_request_time(&v.text, tz).map_err(bad_value);
    let delete_not_allowed = || -> UpdateError {
        (
            "ErrorInvalidPropertyDelete",
            format!("calendar:{name} cannot be deleted."),
        )
    };
    match (name, value) {
        ("Start", Some(v)) => cal.start = time(v)?,
        ("End", Some(v)) => cal.end = time(v)?,
        ("IsAllDayEvent", Some(v)) => cal.is_all_day = parse_bool(v).map_err(bad_value)?,
        ("LegacyFreeBusyStatus", Some(v)) => {
            cal.legacy_free_busy = enum_value(v, &FREE_BUSY).map_err(bad_value)?
        }
        ("Location", v) => cal.location = v.map(|e| e.text.clone()),
        ("RequiredAttendees" | "OptionalAttendees" | "Resources", v) => {
            let new = match v {
                Some(e) => parse_attendees(e).map_err(bad_value)?,
                None => Vec::new(),
            };
            // Attendees who stay keep their response.
            let old: Vec<Attendee> = cal.all_attendees().cloned().collect();
            let merged: Vec<Attendee> = new
                .into_iter()
                .map(|mut a| {
                    if let Some(o) = old.iter().find(|o| o.email.eq_ignore_ascii_case(&a.email)) {
                        a.response_type = o.response_type.clone();
                        a.last_response_time = o.last_response_time;
                    }
                    a
                })
                .collect();
            match name {
                "RequiredAttendees" => cal.required_attendees = merged,
                "OptionalAttendees" => cal.optional_attendees = merged,
                _ => cal.resources = merged,
            }
        }
        ("Recurrence", Some(v)) => {
            cal.recurrence = Some(parse_recurrence(v).map_err(|e| match e {
                CalError::Schema(m) => ("ErrorCalendarInvalidRecurrence", m),
                CalError::Item(c, m) => (c, m),
            })?)
        }
        ("Recurrence", None) => cal.recurrence = None,
        ("StartTimeZone" | "EndTimeZone", Some(v)) => {
            let id = v.attr("Id").unwrap_or_default();
            if zone(id).is_none() {
                return Err((
                    "ErrorCalendarInvalidTimeZone",
                    format!("The time zone '{id}' is not a valid Windows time zone id."),
                ));
            }
            if name == "StartTimeZone" {
                cal.start_time_zone = id.to_string();
            } else {
                cal.end_time_zone = id.to_string();
            }
        }
        ("UID", Some(v)) => cal.uid = v.text.trim().to_string(),
        // Accepted and ignored, as they do not change what the sim models.
        ("IsResponseRequested" | "MeetingTimeZone" | "AllowNewTimeProposal", _) => {}
        (_, None) => return Err(delete_not_allowed()),
        (other, Some(_)) => {
            return Err((
                "ErrorInvalidPropertySet",
                format!("calendar:{other} is read-only or not supported by the simulator."),
            ));
        }
    }
    Ok(())
}

/// `item:Sensitivity|Categories|ReminderIsSet|ReminderMinutesBeforeStart` on a calendar item.
pub fn apply_item_field_on_calendar(
    cal: &mut CalendarItem,
    name: &str,
    value: Option<&Element>,
) -> Result<bool, UpdateError> {
    match (name, value) {
        ("Sensitivity", Some(v)) => {
            cal.sensitivity = enum_value(v, &SENSITIVITY).map_err(bad_value)?
        }
        ("Sensitivity", None) => cal.sensitivity = "Normal".into(),
        ("Categories", v) => {
            cal.categories = v
                .map(|e| e.children_named("String").map(|s| s.text.clone()).collect())
                .unwrap_or_default()
        }
        ("ReminderIsSet", Some(v)) => cal.reminder_is_set = parse_bool(v).map_err(bad_value)?,
        ("ReminderIsSet", None) => cal.reminder_is_set = false,
        ("ReminderMinutesBeforeStart", Some(v)) => {
            cal.reminder_minutes_before_start =
                i32::try_from(parse_int(v).map_err(bad_value)?).unwrap_or(15)
        }
        ("ReminderMinutesBeforeStart", None) => cal.reminder_minutes_before_start = 0,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Normalises a calendar item after updates: all-day widening, pattern alignment, and (as
/// Exchange does) dropping a series' exceptions when its pattern or time of day changed.
pub fn finish_calendar_update(
    before: &CalendarItem,
    cal: &mut CalendarItem,
) -> Result<(), UpdateError> {
    if cal.end < cal.start {
        return Err((
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate".into(),
        ));
    }
    cal.widen_all_day();
    if cal.instance.is_some() {
        return Ok(());
    }
    if cal.recurrence.is_some() {
        // A new start date moves the series' range start with it.
        if before.recurrence == cal.recurrence && before.start != cal.start {
            let d = utc_to_local(cal.tz(), cal.start).date();
            if let Some(rec) = &mut cal.recurrence {
                rec.range.set_start_date(d);
            }
        }
        if cal.first_original().is_none() {
            return Err((
                "ErrorRecurrenceHasNoOccurrence",
                "The recurrence pattern has no occurrence.".into(),
            ));
        }
        cal.align_to_pattern();
    }
    let tz = cal.tz();
    let shape_changed = before.recurrence != cal.recurrence
        || utc_to_local(before.tz(), before.start).time() != utc_to_local(tz, cal.start).time()
        || before.duration() != cal.duration()
        || before.start_time_zone != cal.start_time_zone;
    if shape_changed {
        cal.modified_occurrences.clear();
        cal.deleted_occurrences.clear();
    }
    Ok(())
}

/// The exception an updated occurrence becomes.
pub fn exception_from(item: &Item, original_start: DateTime<Utc>) -> Option<ModifiedOccurrence> {
    let cal = item.as_calendar()?;
    Some(ModifiedOccurrence {
        original_start,
        start: cal.start,
        end: cal.end,
        subject: item.subject.clone(),
        body: item.body.clone(),
        location: cal.location.clone(),
        legacy_free_busy: cal.legacy_free_busy.clone(),
        is_all_day: cal.is_all_day,
        reminder_is_set: cal.reminder_is_set,
        reminder_minutes_before_start: cal.reminder_minutes_before_start,
        is_cancelled: cal.is_cancelled,
    })
}
