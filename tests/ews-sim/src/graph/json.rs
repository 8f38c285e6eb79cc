//! Store items as Graph JSON and back: `event` and `contact` entities per the v1.0 CSDL
//! (`/work/shared/schemas/graph/graph-v1.0-subset.csdl.xml`), over the same `Item` fields
//! EWS reads and writes, so either protocol sees what the other wrote.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::calendar::{
    Attendee, CalendarItem, DAY_INDEXES, Pattern, Range, Recurrence, day_set, local_to_utc,
    parse_weekday, utc_to_local, zone,
};
use crate::graph::error::GraphError;
use crate::graph::filter::{Expand, parse_property_id, render_property_id, single_values};
use crate::graph::ids::{graph_folder_id, graph_item_id};
use crate::model::{
    Body, Contact, ExtendedPropertyKey, ExtendedValue, Folder, Item, PhysicalAddress, PropertyRef,
    StoredItem,
};

/// Graph's "no value" date-time (`0001-01-01T00:00:00Z`).
pub const NO_TIME: &str = "0001-01-01T00:00:00Z";

// ---------------------------------------------------------------- time zones

/// A zone as a request names it (Windows id or IANA name), resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedZone {
    /// As given (echoed in `timeZone`).
    pub name: String,
    /// The Windows id the store keeps (EWS reports Windows ids only).
    pub windows: String,
    pub tz: Tz,
}

impl NamedZone {
    pub fn utc() -> Self {
        NamedZone {
            name: "UTC".into(),
            windows: "UTC".into(),
            tz: Tz::UTC,
        }
    }
}

/// Resolves a Windows id or an IANA name; `None` for unknown zones.
pub fn resolve_zone(name: &str) -> Option<NamedZone> {
    let n = name.trim();
    if let Some(tz) = zone(n) {
        return Some(NamedZone {
            name: n.to_string(),
            windows: n.to_string(),
            tz,
        });
    }
    let tz: Tz = n.parse().ok()?;
    let windows = if tz == Tz::UTC || n.eq_ignore_ascii_case("Etc/UTC") {
        "UTC".to_string()
    } else {
        windows_timezones::WindowsTimezone::try_from(tz)
            .map(|w| w.name().to_string())
            // No Windows equivalent: keep instants right, expand series in UTC.
            .unwrap_or_else(|_| "UTC".to_string())
    };
    Some(NamedZone {
        name: n.to_string(),
        windows,
        tz,
    })
}

/// `2026-02-10T09:00:00.0000000`: Graph's `dateTime` (no offset; read with `timeZone`).
pub fn fmt_local(t: NaiveDateTime) -> String {
    format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// `2026-02-10T08:00:00Z` (DateTimeOffset properties).
pub fn fmt_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn date_time_zone(t: NaiveDateTime, zone_name: &str) -> Value {
    json!({ "dateTime": fmt_local(t), "timeZone": zone_name })
}

/// Reads a `dateTimeTimeZone`: un-offset times are wall-clock in `timeZone`.
fn parse_dtz(v: &Value, what: &str) -> Result<(DateTime<Utc>, NamedZone), GraphError> {
    let obj = v
        .as_object()
        .ok_or_else(|| GraphError::invalid(format!("'{what}' must be a dateTimeTimeZone")))?;
    let zone_name = obj.get("timeZone").and_then(Value::as_str).unwrap_or("UTC");
    let z = resolve_zone(zone_name).ok_or_else(|| {
        GraphError::bad_request(
            "TimeZoneNotSupportedException",
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'."
            ),
        )
    })?;
    let text = obj
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid(format!("'{what}.dateTime' is required")))?
        .trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok((dt.with_timezone(&Utc), z));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .map_err(|_| {
            GraphError::invalid(format!(
                "Cannot convert the literal '{text}' to the expected type 'Edm.DateTime'."
            ))
        })?;
    Ok((local_to_utc(z.tz, naive), z))
}

/// A query-string instant (`startDateTime`): with an offset it is literal, else UTC.
pub fn parse_query_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M"))
        .ok()
        .map(|n| n.and_utc())
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        })
}

// ---------------------------------------------------------------- enums

fn show_as(free_busy: &str) -> &'static str {
    match free_busy {
        "Free" => "free",
        "Tentative" => "tentative",
        "Busy" => "busy",
        "OOF" => "oof",
        "WorkingElsewhere" => "workingElsewhere",
        _ => "unknown",
    }
}

fn free_busy(show_as: &str) -> Option<&'static str> {
    Some(match show_as {
        "free" => "Free",
        "tentative" => "Tentative",
        "busy" => "Busy",
        "oof" => "OOF",
        "workingElsewhere" => "WorkingElsewhere",
        "unknown" => "NoData",
        _ => return None,
    })
}

/// EWS ResponseTypeType → Graph responseType.
pub fn response(r: &str) -> &'static str {
    match r {
        "Organizer" => "organizer",
        "Tentative" => "tentativelyAccepted",
        "Accept" => "accepted",
        "Decline" => "declined",
        "NoResponseReceived" => "notResponded",
        _ => "none",
    }
}

fn sensitivity_out(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn sensitivity_in(s: &str) -> Option<&'static str> {
    Some(match s {
        "normal" => "Normal",
        "personal" => "Personal",
        "private" => "Private",
        "confidential" => "Confidential",
        _ => return None,
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn weekday_name(w: chrono::Weekday) -> &'static str {
    match w {
        chrono::Weekday::Sun => "sunday",
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
    }
}

// ---------------------------------------------------------------- events

/// How to render: the zone asked for (`Prefer: outlook.timezone`), the extended properties
/// to expand, and the event's `transactionId` (kept by the Graph front-end).
pub struct EventView<'a> {
    pub zone: &'a NamedZone,
    pub expand: &'a Expand,
    pub transaction_id: Option<&'a str>,
}

/// Per-occurrence iCalUId: Exchange puts the instance date into bytes 16–19 of the Global
/// Object Id (zero in the series' own id), so each occurrence gets its own value.
pub fn occurrence_uid(uid: &str, date: NaiveDate) -> String {
    const GOID_PREFIX: &str = "040000008200E00074C5B7101A82E008";
    let stamp = format!("{:04X}{:02X}{:02X}", date.year(), date.month(), date.day());
    if uid.len() >= 40 && uid.starts_with(GOID_PREFIX) && uid.is_char_boundary(40) {
        format!("{GOID_PREFIX}{stamp}{}", &uid[40..])
    } else {
        format!("{uid}-{stamp}")
    }
}

fn recipient(name: Option<&str>, email: &str) -> Value {
    json!({ "emailAddress": { "name": name.unwrap_or(email), "address": email } })
}

fn attendee_json(a: &Attendee, kind: &str) -> Value {
    json!({
        "type": kind,
        "status": {
            "response": response(&a.response_type),
            "time": a.last_response_time.map(fmt_instant).unwrap_or_else(|| NO_TIME.into()),
        },
        "emailAddress": { "name": a.name.clone().unwrap_or_else(|| a.email.clone()), "address": a.email },
    })
}

fn recurrence_json(rec: &Recurrence, zone_id: &str) -> Value {
    let mut pattern = json!({
        "type": "daily", "interval": 1, "month": 0, "dayOfMonth": 0,
        "firstDayOfWeek": "sunday", "index": "first", "daysOfWeek": [],
    });
    let days = |list: &[String]| -> Vec<&'static str> {
        list.iter()
            .filter_map(|d| day_set(d))
            .flatten()
            .map(weekday_name)
            .collect()
    };
    match &rec.pattern {
        Pattern::Daily { interval } => {
            pattern["interval"] = json!(interval);
        }
        Pattern::Weekly {
            interval,
            days_of_week,
            first_day_of_week,
        } => {
            pattern["type"] = json!("weekly");
            pattern["interval"] = json!(interval);
            pattern["daysOfWeek"] = json!(days(days_of_week));
            if let Some(f) = first_day_of_week.as_deref().and_then(parse_weekday) {
                pattern["firstDayOfWeek"] = json!(weekday_name(f));
            }
        }
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            pattern["type"] = json!("absoluteMonthly");
            pattern["interval"] = json!(interval);
            pattern["dayOfMonth"] = json!(day_of_month);
        }
        Pattern::RelativeMonthly {
            interval,
            days_of_week,
            day_of_week_index,
        } => {
            pattern["type"] = json!("relativeMonthly");
            pattern["interval"] = json!(interval);
            pattern["daysOfWeek"] = json!(days(std::slice::from_ref(days_of_week)));
            pattern["index"] = json!(day_of_week_index.to_ascii_lowercase());
        }
    }
    let (kind, end, count) = match &rec.range {
        Range::NoEnd { .. } => ("noEnd", "0001-01-01".to_string(), 0),
        Range::EndDate { end_date, .. } => ("endDate", end_date.to_string(), 0),
        Range::Numbered {
            number_of_occurrences,
            ..
        } => ("numbered", "0001-01-01".to_string(), *number_of_occurrences),
    };
    json!({
        "pattern": pattern,
        "range": {
            "type": kind,
            "startDate": rec.range.start_date().to_string(),
            "endDate": end,
            "recurrenceTimeZone": zone_id,
            "numberOfOccurrences": count,
        }
    })
}

fn int_field(o: &Map<String, Value>, k: &str) -> Result<Option<u32>, GraphError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| GraphError::invalid(format!("'{k}' must be a non-negative integer"))),
    }
}

fn parse_date_field(o: &Map<String, Value>, k: &str) -> Result<Option<NaiveDate>, GraphError> {
    match o.get(k).and_then(Value::as_str) {
        None => Ok(None),
        Some("0001-01-01") => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| GraphError::invalid(format!("'{k}': '{s}' is not an Edm.Date"))),
    }
}

/// Graph `patternedRecurrence` → the store's recurrence (yearly patterns are not modelled).
pub fn parse_recurrence(v: &Value) -> Result<Recurrence, GraphError> {
    let bad = |m: &str| GraphError::bad_request("ErrorInvalidRecurrence", m.to_string());
    let p = v
        .get("pattern")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("recurrence.pattern is required"))?;
    let r = v
        .get("range")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("recurrence.range is required"))?;
    let interval = int_field(p, "interval")?.unwrap_or(1);
    let days: Vec<String> = p
        .get("daysOfWeek")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(capitalize).collect())
        .unwrap_or_default();
    if days.iter().any(|d| parse_weekday(d).is_none()) {
        return Err(bad("daysOfWeek holds an unknown day"));
    }
    let pattern = match p.get("type").and_then(Value::as_str).unwrap_or_default() {
        "daily" => Pattern::Daily { interval },
        "weekly" => Pattern::Weekly {
            interval,
            days_of_week: days,
            first_day_of_week: p
                .get("firstDayOfWeek")
                .and_then(Value::as_str)
                .map(capitalize),
        },
        "absoluteMonthly" => Pattern::AbsoluteMonthly {
            interval,
            day_of_month: int_field(p, "dayOfMonth")?.unwrap_or(0),
        },
        "relativeMonthly" => {
            let mut set: Vec<chrono::Weekday> =
                days.iter().filter_map(|d| parse_weekday(d)).collect();
            set.sort_by_key(chrono::Weekday::num_days_from_sunday);
            set.dedup();
            // EWS holds one DayOfWeekType: a day, or the Day/Weekday/WeekendDay groups.
            let one = match set.len() {
                1 => weekday_name(set[0]).to_string(),
                2 if set
                    .iter()
                    .all(|d| matches!(d, chrono::Weekday::Sat | chrono::Weekday::Sun)) =>
                {
                    "weekendDay".into()
                }
                5 if !set
                    .iter()
                    .any(|d| matches!(d, chrono::Weekday::Sat | chrono::Weekday::Sun)) =>
                {
                    "weekday".into()
                }
                7 => "day".into(),
                _ => {
                    return Err(bad(
                        "relativeMonthly needs one day (or all weekdays/weekend days)",
                    ));
                }
            };
            let index = p
                .get("index")
                .and_then(Value::as_str)
                .map(capitalize)
                .unwrap_or_else(|| "First".into());
            if !DAY_INDEXES.contains(&index.as_str()) {
                return Err(bad("unknown recurrence index"));
            }
            Pattern::RelativeMonthly {
                interval,
                days_of_week: capitalize(&one),
                day_of_week_index: index,
            }
        }
        other => {
            return Err(bad(&format!(
                "recurrence pattern type '{other}' is not supported by the simulator"
            )));
        }
    };
    let start_date = parse_date_field(r, "startDate")?
        .ok_or_else(|| bad("recurrence.range.startDate is required"))?;
    let range = match r.get("type").and_then(Value::as_str).unwrap_or_default() {
        "noEnd" => Range::NoEnd { start_date },
        "endDate" => Range::EndDate {
            start_date,
            end_date: parse_date_field(r, "endDate")?
                .ok_or_else(|| bad("recurrence.range.endDate is required"))?,
        },
        "numbered" => Range::Numbered {
            start_date,
            number_of_occurrences: int_field(r, "numberOfOccurrences")?.unwrap_or(0),
        },
        other => return Err(bad(&format!("unknown recurrence range type '{other}'"))),
    };
    let rec = Recurrence { pattern, range };
    rec.validate().map_err(|m| bad(&m))?;
    Ok(rec)
}

fn body_preview(b: Option<&Body>) -> String {
    let Some(b) = b else {
        return String::new();
    };
    let text = if b.body_type.eq_ignore_ascii_case("HTML") {
        // Tags out, whitespace folded: enough for a preview.
        let mut out = String::new();
        let mut in_tag = false;
        for c in b.text.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    } else {
        b.text.clone()
    };
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect()
}

fn body_json(b: Option<&Body>) -> Value {
    match b {
        Some(b) => json!({
            "contentType": if b.body_type.eq_ignore_ascii_case("HTML") { "html" } else { "text" },
            "content": b.text,
        }),
        None => json!({ "contentType": "text", "content": "" }),
    }
}

fn extended_json(item: &Item, expand: &Expand) -> Option<Value> {
    if *expand == Expand::None {
        return None;
    }
    let list: Vec<Value> = single_values(&item.extended_properties)
        .filter(|(k, _)| expand.includes(k))
        .map(|(k, v)| json!({ "id": render_property_id(k), "value": v }))
        .collect();
    // Graph leaves the navigation property out when no property matched.
    (!list.is_empty()).then_some(Value::Array(list))
}

/// An event (single, series master, occurrence or exception) as Graph returns it.
pub fn event_json(st: &StoredItem, view: &EventView<'_>) -> Value {
    let Some(cal) = st.item.as_calendar() else {
        return Value::Null;
    };
    let own_tz = cal.tz();
    let (start, end) = if cal.is_all_day {
        // All-day events float: their midnights are shown as they are, labelled with the
        // zone asked for (what Graph answers for all-day events).
        (
            date_time_zone(utc_to_local(own_tz, cal.start), &view.zone.name),
            date_time_zone(utc_to_local(own_tz, cal.end), &view.zone.name),
        )
    } else {
        (
            date_time_zone(utc_to_local(view.zone.tz, cal.start), &view.zone.name),
            date_time_zone(utc_to_local(view.zone.tz, cal.end), &view.zone.name),
        )
    };
    let (kind, series_master, original_start, ical) = match &cal.instance {
        Some(i) => (
            if i.exception {
                "exception"
            } else {
                "occurrence"
            },
            Value::String(graph_item_id(&i.master_id)),
            Value::String(fmt_instant(i.original_start)),
            occurrence_uid(&cal.uid, utc_to_local(own_tz, i.original_start).date()),
        ),
        None if cal.recurrence.is_some() => {
            ("seriesMaster", Value::Null, Value::Null, cal.uid.clone())
        }
        None => ("singleInstance", Value::Null, Value::Null, cal.uid.clone()),
    };
    let mut attendees = Vec::new();
    for (list, kind) in [
        (&cal.required_attendees, "required"),
        (&cal.optional_attendees, "optional"),
        (&cal.resources, "resource"),
    ] {
        attendees.extend(list.iter().map(|a| attendee_json(a, kind)));
    }
    let organizer = match &cal.organizer {
        Some(o) => recipient(o.name.as_deref(), &o.email),
        None => Value::Null,
    };
    let response_status = json!({
        "response": if cal.is_organizer { "organizer" } else { response(&cal.my_response_type) },
        "time": cal.appointment_reply_time.map(fmt_instant).unwrap_or_else(|| NO_TIME.into()),
    });
    let mut o = Map::new();
    o.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", st.change_key)),
    );
    o.insert("id".into(), json!(graph_item_id(&st.id)));
    o.insert("createdDateTime".into(), json!(fmt_instant(st.created)));
    o.insert(
        "lastModifiedDateTime".into(),
        json!(fmt_instant(st.modified)),
    );
    o.insert("changeKey".into(), json!(st.change_key.as_str()));
    o.insert("categories".into(), json!(cal.categories));
    o.insert("transactionId".into(), json!(view.transaction_id));
    o.insert("originalStartTimeZone".into(), json!(cal.start_time_zone));
    o.insert("originalEndTimeZone".into(), json!(cal.end_time_zone));
    o.insert("iCalUId".into(), json!(ical));
    o.insert(
        "reminderMinutesBeforeStart".into(),
        json!(cal.reminder_minutes_before_start),
    );
    o.insert("isReminderOn".into(), json!(cal.reminder_is_set));
    o.insert("hasAttachments".into(), json!(false));
    o.insert(
        "subject".into(),
        json!(st.item.subject.clone().unwrap_or_default()),
    );
    o.insert(
        "bodyPreview".into(),
        json!(body_preview(st.item.body.as_ref())),
    );
    o.insert("importance".into(), json!("normal"));
    o.insert(
        "sensitivity".into(),
        json!(sensitivity_out(&cal.sensitivity)),
    );
    o.insert("isAllDay".into(), json!(cal.is_all_day));
    o.insert("isCancelled".into(), json!(cal.is_cancelled));
    o.insert("isOrganizer".into(), json!(cal.is_organizer));
    o.insert("responseRequested".into(), json!(true));
    o.insert("seriesMasterId".into(), series_master);
    o.insert("showAs".into(), json!(show_as(&cal.legacy_free_busy)));
    o.insert("type".into(), json!(kind));
    o.insert("isDraft".into(), json!(false));
    o.insert("isOnlineMeeting".into(), json!(false));
    o.insert("onlineMeetingProvider".into(), json!("unknown"));
    o.insert("allowNewTimeProposals".into(), json!(true));
    o.insert("hideAttendees".into(), json!(false));
    o.insert("responseStatus".into(), response_status);
    o.insert("body".into(), body_json(st.item.body.as_ref()));
    o.insert("start".into(), start);
    o.insert("end".into(), end);
    if cal.instance.is_some() {
        o.insert("originalStart".into(), original_start);
    }
    o.insert(
        "location".into(),
        json!({
            "displayName": cal.location.clone().unwrap_or_default(),
            "locationType": "default",
            "uniqueIdType": "unknown",
        }),
    );
    o.insert(
        "locations".into(),
        match cal.location.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => {
                json!([{ "displayName": l, "locationType": "default", "uniqueIdType": "unknown" }])
            }
            None => json!([]),
        },
    );
    o.insert(
        "recurrence".into(),
        match (&cal.recurrence, &cal.instance) {
            (Some(r), None) => recurrence_json(r, &cal.start_time_zone),
            _ => Value::Null,
        },
    );
    o.insert("attendees".into(), Value::Array(attendees));
    o.insert("organizer".into(), organizer);
    if let Some(x) = extended_json(&st.item, view.expand) {
        o.insert("singleValueExtendedProperties".into(), x);
    }
    Value::Object(o)
}

/// Every property `microsoft.graph.event` (with outlookItem and entity) declares, plus the
/// navigation properties a create may carry. A body naming anything else is a `400`, as on
/// Graph.
const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "attachments",
    "extensions",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "assistantName",
    "birthday",
    "businessAddress",
    "businessHomePage",
    "businessPhones",
    "children",
    "companyName",
    "department",
    "displayName",
    "emailAddresses",
    "fileAs",
    "generation",
    "givenName",
    "homeAddress",
    "homePhones",
    "imAddresses",
    "initials",
    "jobTitle",
    "manager",
    "middleName",
    "mobilePhone",
    "nickName",
    "officeLocation",
    "otherAddress",
    "parentFolderId",
    "personalNotes",
    "primaryEmailAddress",
    "profession",
    "secondaryEmailAddress",
    "spouseName",
    "surname",
    "tertiaryEmailAddress",
    "title",
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
    "extensions",
    "multiValueExtendedProperties",
    "photo",
    "singleValueExtendedProperties",
];

fn check_properties(o: &Map<String, Value>, known: &[&str], ty: &str) -> Result<(), GraphError> {
    for k in o.keys() {
        if k.starts_with('@') || k.contains("@odata.") {
            continue;
        }
        if !known.contains(&k.as_str()) {
            return Err(GraphError::invalid(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.{ty}'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        }
    }
    Ok(())
}

fn opt_str(o: &Map<String, Value>, k: &str) -> Result<Option<Option<String>>, GraphError> {
    match o.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(GraphError::invalid(format!("'{k}' must be a string"))),
    }
}

fn opt_bool(o: &Map<String, Value>, k: &str) -> Result<Option<bool>, GraphError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(GraphError::invalid(format!("'{k}' must be a boolean"))),
    }
}

fn string_list(o: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>, GraphError> {
    match o.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| GraphError::invalid(format!("'{k}' must hold strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(GraphError::invalid(format!("'{k}' must be an array"))),
    }
}

fn parse_body(v: &Value) -> Result<Option<Body>, GraphError> {
    if v.is_null() {
        return Ok(None);
    }
    let o = v
        .as_object()
        .ok_or_else(|| GraphError::invalid("'body' must be an itemBody"))?;
    let ty = match o.get("contentType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("html") => "HTML",
        Some(t) if t.eq_ignore_ascii_case("text") => "Text",
        None => "Text",
        Some(other) => {
            return Err(GraphError::invalid(format!(
                "'{other}' is not a valid bodyType"
            )));
        }
    };
    Ok(Some(Body {
        body_type: ty.into(),
        text: o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }))
}

/// Applies `singleValueExtendedProperties: [{id, value}]` (upsert; `null` value removes).
fn apply_extended(item: &mut Item, v: &Value) -> Result<(), GraphError> {
    let list = v
        .as_array()
        .ok_or_else(|| GraphError::invalid("'singleValueExtendedProperties' must be an array"))?;
    for p in list {
        let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
        let key = parse_property_id(id).ok_or_else(|| {
            GraphError::bad_request(
                "ErrorInvalidProperty",
                format!("The extended property id '{id}' is not valid."),
            )
        })?;
        if key.is_array() {
            return Err(GraphError::bad_request(
                "ErrorInvalidProperty",
                format!("'{id}' is a multi-value property type."),
            ));
        }
        match p.get("value") {
            Some(Value::String(s)) => {
                item.extended_properties
                    .insert(key, ExtendedValue::Single(s.clone()));
            }
            Some(Value::Null) | None => {
                item.extended_properties.remove(&key);
            }
            Some(other) => {
                item.extended_properties
                    .insert(key, ExtendedValue::Single(other.to_string()));
            }
        }
    }
    Ok(())
}

fn parse_attendees(v: &Value, before: &CalendarItem) -> Result<[Vec<Attendee>; 3], GraphError> {
    let list = match v {
        Value::Null => return Ok([Vec::new(), Vec::new(), Vec::new()]),
        Value::Array(a) => a,
        _ => return Err(GraphError::invalid("'attendees' must be an array")),
    };
    let mut out: [Vec<Attendee>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for a in list {
        let email = a
            .pointer("/emailAddress/address")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                GraphError::bad_request(
                    "ErrorInvalidRecipients",
                    "At least one recipient is not valid.",
                )
            })?;
        let slot = match a.get("type").and_then(Value::as_str).unwrap_or("required") {
            "required" => 0,
            "optional" => 1,
            "resource" => 2,
            other => {
                return Err(GraphError::invalid(format!(
                    "'{other}' is not a valid attendeeType"
                )));
            }
        };
        // A kept attendee keeps the answer they gave.
        let mut att = before
            .all_attendees()
            .find(|x| x.email.eq_ignore_ascii_case(email))
            .cloned()
            .unwrap_or_else(|| Attendee::new(email));
        if let Some(n) = a.pointer("/emailAddress/name").and_then(Value::as_str) {
            att.name = Some(n.to_string());
        }
        out[slot].push(att);
    }
    Ok(out)
}

fn is_midnight(t: DateTime<Utc>, tz: Tz) -> bool {
    utc_to_local(tz, t).time() == NaiveTime::MIN
}

/// Applies an event body (create: `creating`; PATCH: only the properties present) to
/// `item`. Server-set properties (id, changeKey, organizer, responses…) are ignored, as on
/// Graph. Returns the `transactionId` of a create, if any.
pub fn apply_event(
    item: &mut Item,
    body: &Value,
    creating: bool,
) -> Result<Option<String>, GraphError> {
    let o = body
        .as_object()
        .ok_or_else(|| GraphError::invalid("The request body must be a JSON object."))?;
    check_properties(o, EVENT_PROPERTIES, "event")?;
    if creating && (o.get("start").is_none() || o.get("end").is_none()) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. An event needs a start and an end.",
        ));
    }
    if let Some(s) = opt_str(o, "subject")? {
        item.subject = s;
    }
    if let Some(b) = o.get("body") {
        item.body = parse_body(b)?;
    }
    if let Some(x) = o.get("singleValueExtendedProperties") {
        apply_extended(item, x)?;
    }
    let cal = item
        .as_calendar_mut()
        .ok_or_else(GraphError::item_not_found)?;
    let before = cal.clone();
    if let Some(v) = o.get("start") {
        let (t, z) = parse_dtz(v, "start")?;
        cal.start = t;
        cal.start_time_zone = z.windows;
    }
    if let Some(v) = o.get("end") {
        let (t, z) = parse_dtz(v, "end")?;
        cal.end = t;
        cal.end_time_zone = z.windows;
    }
    if let Some(b) = opt_bool(o, "isAllDay")? {
        cal.is_all_day = b;
    }
    if let Some(s) = opt_str(o, "showAs")? {
        let s = s.unwrap_or_else(|| "busy".into());
        cal.legacy_free_busy = free_busy(&s)
            .ok_or_else(|| GraphError::invalid(format!("'{s}' is not a valid freeBusyStatus")))?
            .into();
    }
    if let Some(l) = o.get("location") {
        cal.location = l
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    if let Some(b) = opt_bool(o, "isReminderOn")? {
        cal.reminder_is_set = b;
    }
    if let Some(v) = o.get("reminderMinutesBeforeStart").filter(|v| !v.is_null()) {
        cal.reminder_minutes_before_start = v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| GraphError::invalid("'reminderMinutesBeforeStart' must be an Int32"))?;
    }
    if let Some(s) = opt_str(o, "sensitivity")? {
        let s = s.unwrap_or_else(|| "normal".into());
        cal.sensitivity = sensitivity_in(&s)
            .ok_or_else(|| GraphError::invalid(format!("'{s}' is not a valid sensitivity")))?
            .into();
    }
    if let Some(c) = string_list(o, "categories")? {
        cal.categories = c;
    }
    if let Some(a) = o.get("attendees") {
        let [req, opt, res] = parse_attendees(a, &before)?;
        cal.required_attendees = req;
        cal.optional_attendees = opt;
        cal.resources = res;
    }
    if let Some(r) = o.get("recurrence") {
        cal.recurrence = match r {
            Value::Null => None,
            r => Some(parse_recurrence(r)?),
        };
        if cal.recurrence.is_none() {
            cal.modified_occurrences.clear();
            cal.deleted_occurrences.clear();
        }
    }
    if cal.end < cal.start {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. The end of the event is before its start.",
        ));
    }
    if cal.is_all_day && !(is_midnight(cal.start, cal.tz()) && is_midnight(cal.end, cal.tz())) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. Start and end of an all-day event must be at midnight.",
        ));
    }
    let transaction = match opt_str(o, "transactionId")? {
        Some(Some(t)) if creating => Some(t),
        _ => None,
    };
    Ok(transaction)
}

// ---------------------------------------------------------------- contacts

/// Graph contact property → EWS element name, for the plain string fields both share.
const CONTACT_STRINGS: &[(&str, &str)] = &[
    ("givenName", "GivenName"),
    ("surname", "Surname"),
    ("middleName", "MiddleName"),
    ("displayName", "DisplayName"),
    ("companyName", "CompanyName"),
    ("jobTitle", "JobTitle"),
    ("department", "Department"),
    ("initials", "Initials"),
    ("fileAs", "FileAs"),
    ("generation", "Generation"),
    ("assistantName", "AssistantName"),
    ("nickName", "Nickname"),
    ("manager", "Manager"),
    ("officeLocation", "OfficeLocation"),
    ("profession", "Profession"),
    ("spouseName", "SpouseName"),
    ("businessHomePage", "BusinessHomePage"),
    ("birthday", "Birthday"),
];

const PHONE_LISTS: &[(&str, &[&str])] = &[
    ("businessPhones", &["BusinessPhone", "BusinessPhone2"]),
    ("homePhones", &["HomePhone", "HomePhone2"]),
];

const ADDRESSES: &[(&str, &str)] = &[
    ("businessAddress", "Business"),
    ("homeAddress", "Home"),
    ("otherAddress", "Other"),
];

fn address_json(a: Option<&PhysicalAddress>) -> Value {
    let mut o = Map::new();
    if let Some(a) = a {
        for (k, v) in [
            ("street", &a.street),
            ("city", &a.city),
            ("state", &a.state),
            ("countryOrRegion", &a.country_or_region),
            ("postalCode", &a.postal_code),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
    }
    Value::Object(o)
}

fn parse_address(v: &Value) -> Result<PhysicalAddress, GraphError> {
    if v.is_null() {
        return Ok(PhysicalAddress::default());
    }
    let o = v
        .as_object()
        .ok_or_else(|| GraphError::invalid("an address must be a physicalAddress"))?;
    let get = |k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(PhysicalAddress {
        street: get("street"),
        city: get("city"),
        state: get("state"),
        country_or_region: get("countryOrRegion"),
        postal_code: get("postalCode"),
    })
}

/// A contact as Graph returns it.
pub fn contact_json(st: &StoredItem, expand: &Expand) -> Value {
    let Some(c) = st.item.as_contact() else {
        return Value::Null;
    };
    let mut o = Map::new();
    o.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", st.change_key)),
    );
    o.insert("id".into(), json!(graph_item_id(&st.id)));
    o.insert("createdDateTime".into(), json!(fmt_instant(st.created)));
    o.insert(
        "lastModifiedDateTime".into(),
        json!(fmt_instant(st.modified)),
    );
    o.insert("changeKey".into(), json!(st.change_key.as_str()));
    o.insert("categories".into(), json!([]));
    o.insert("parentFolderId".into(), json!(graph_folder_id(&st.folder)));
    for (g, e) in CONTACT_STRINGS {
        o.insert((*g).into(), json!(c.get(e)));
    }
    let title = match st.item.extended_properties.get(&display_name_prefix()) {
        Some(ExtendedValue::Single(v)) => Some(v.clone()),
        _ => None,
    };
    o.insert("title".into(), json!(title));
    let emails: Vec<Value> = ["EmailAddress1", "EmailAddress2", "EmailAddress3"]
        .iter()
        .filter_map(|k| c.email_addresses.get(*k))
        .map(|a| json!({ "name": a, "address": a }))
        .collect();
    o.insert("emailAddresses".into(), Value::Array(emails));
    for (g, keys) in PHONE_LISTS {
        let list: Vec<&String> = keys
            .iter()
            .filter_map(|k| c.phone_numbers.get(*k))
            .collect();
        o.insert((*g).into(), json!(list));
    }
    o.insert(
        "mobilePhone".into(),
        json!(c.phone_numbers.get("MobilePhone")),
    );
    for (g, k) in ADDRESSES {
        o.insert((*g).into(), address_json(c.physical_addresses.get(*k)));
    }
    o.insert(
        "personalNotes".into(),
        json!(
            st.item
                .body
                .as_ref()
                .map(|b| b.text.clone())
                .unwrap_or_default()
        ),
    );
    o.insert("imAddresses".into(), json!([]));
    o.insert("children".into(), json!([]));
    if let Some(x) = extended_json(&st.item, expand) {
        o.insert("singleValueExtendedProperties".into(), x);
    }
    Value::Object(o)
}

/// PidTagBusinessFaxNumber: EWS shows it as the `BusinessFax` phone number, Graph (whose contact
/// has no fax) only as the extended property `String 0x3A24`. It is one MAPI property, so a
/// value written through Graph lands in the phone number EWS reads; an empty one clears it.
const BUSINESS_FAX_TAG: u16 = 0x3a24;

/// PidTagDisplayNamePrefix (`String 0x3A45`): Graph's contact `title`.
fn display_name_prefix() -> ExtendedPropertyKey {
    ExtendedPropertyKey {
        property_set: None,
        property: PropertyRef::Tag(0x3a45),
        property_type: "String".into(),
    }
}

fn fold_business_fax(item: &mut Item) {
    let key = item
        .extended_properties
        .keys()
        .find(|k| k.property_set.is_none() && k.property == PropertyRef::Tag(BUSINESS_FAX_TAG))
        .cloned();
    let Some(key) = key else { return };
    let value = item.extended_properties.remove(&key);
    if let Some(c) = item.as_contact_mut() {
        match value {
            Some(ExtendedValue::Single(v)) if !v.is_empty() => {
                c.phone_numbers.insert("BusinessFax".into(), v);
            }
            _ => {
                c.phone_numbers.remove("BusinessFax");
            }
        }
    }
}

/// Applies a contact body (create or PATCH) onto the same `Contact` fields EWS uses.
pub fn apply_contact(item: &mut Item, body: &Value, creating: bool) -> Result<(), GraphError> {
    let o = body
        .as_object()
        .ok_or_else(|| GraphError::invalid("The request body must be a JSON object."))?;
    check_properties(o, CONTACT_PROPERTIES, "contact")?;
    if let Some(x) = o.get("singleValueExtendedProperties") {
        apply_extended(item, x)?;
        fold_business_fax(item);
    }
    if let Some(n) = opt_str(o, "personalNotes")? {
        item.body = n.filter(|s| !s.is_empty()).map(|text| Body {
            body_type: "Text".into(),
            text,
        });
    }
    if let Some(v) = opt_str(o, "title")? {
        // Graph's `title` is PidTagDisplayNamePrefix, which EWS reaches only as an extended
        // property: one MAPI property, so both protocols see the same value.
        match v.filter(|s| !s.is_empty()) {
            Some(v) => {
                item.extended_properties
                    .insert(display_name_prefix(), ExtendedValue::Single(v));
            }
            None => {
                item.extended_properties.remove(&display_name_prefix());
            }
        }
    }
    let c: &mut Contact = item
        .as_contact_mut()
        .ok_or_else(GraphError::item_not_found)?;
    for (g, e) in CONTACT_STRINGS {
        if let Some(v) = opt_str(o, g)? {
            c.set(e, v.filter(|s| !s.is_empty()));
        }
    }
    if let Some(v) = o.get("emailAddresses") {
        let list = match v {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => return Err(GraphError::invalid("'emailAddresses' must be an array")),
        };
        if list.len() > 3 {
            return Err(GraphError::bad_request(
                "ErrorInvalidArgument",
                "A contact holds at most three email addresses.",
            ));
        }
        c.email_addresses.clear();
        for (i, e) in list.iter().enumerate() {
            if let Some(a) = e
                .get("address")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                c.email_addresses
                    .insert(format!("EmailAddress{}", i + 1), a.to_string());
            }
        }
    }
    for (g, keys) in PHONE_LISTS {
        if let Some(list) = string_list(o, g)? {
            if list.len() > keys.len() {
                return Err(GraphError::bad_request(
                    "ErrorInvalidArgument",
                    format!("'{g}' holds at most {} numbers.", keys.len()),
                ));
            }
            for k in *keys {
                c.phone_numbers.remove(*k);
            }
            for (k, n) in keys.iter().zip(list) {
                if !n.is_empty() {
                    c.phone_numbers.insert((*k).to_string(), n);
                }
            }
        }
    }
    if let Some(m) = opt_str(o, "mobilePhone")? {
        match m.filter(|s| !s.is_empty()) {
            Some(m) => c.phone_numbers.insert("MobilePhone".into(), m),
            None => c.phone_numbers.remove("MobilePhone"),
        };
    }
    for (g, k) in ADDRESSES {
        if let Some(v) = o.get(*g) {
            let a = parse_address(v)?;
            if a.is_empty() {
                c.physical_addresses.remove(*k);
            } else {
                c.physical_addresses.insert((*k).to_string(), a);
            }
        }
    }
    // Exchange composes a display name when none is given.
    if creating && c.display_name.is_none() {
        let parts: Vec<&str> = [&c.given_name, &c.middle_name, &c.surname]
            .iter()
            .filter_map(|p| p.as_deref())
            .collect();
        if !parts.is_empty() {
            c.display_name = Some(parts.join(" "));
        }
    }
    Ok(())
}

/// A contact folder as Graph returns it.
pub fn folder_json(f: &Folder) -> Value {
    json!({
        "id": graph_folder_id(&f.id),
        "displayName": f.display_name,
        "parentFolderId": f.parent.as_ref().map(graph_folder_id),
    })
}

/// Keeps only `$select`ed properties (plus `id` and annotations, which Graph always sends).
pub fn select(v: Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Value::Object(o)) = (fields, &v) else {
        return v;
    };
    let kept: Map<String, Value> = o
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "id"
                || k.starts_with('@')
                || k.as_str() == "singleValueExtendedProperties"
                || fields.iter().any(|f| f == *k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrence_uids_carry_the_date() {
        let uid = "040000008200E00074C5B7101A82E00800000000ABCDEF";
        let d = NaiveDate::from_ymd_opt(2026, 3, 16).unwrap_or_default();
        assert_eq!(
            occurrence_uid(uid, d),
            "040000008200E00074C5B7101A82E00807EA0310ABCDEF"
        );
        assert_eq!(occurrence_uid("x", d), "x-07EA0310");
    }

    #[test]
    fn zones_resolve_windows_and_iana() -> Result<(), Box<dyn std::error::Error>> {
        let w = resolve_zone("W. Europe Standard Time").ok_or("windows")?;
        assert_eq!(w.tz, chrono_tz::Europe::Berlin);
        let i = resolve_zone("Europe/Berlin").ok_or("iana")?;
        assert_eq!(i.windows, "W. Europe Standard Time");
        assert_eq!(resolve_zone("UTC").ok_or("utc")?.windows, "UTC");
        assert!(resolve_zone("Mars/Olympus").is_none());
        Ok(())
    }

    #[test]
    fn recurrence_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let v = json!({
            "pattern": { "type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"] },
            "range": { "type": "numbered", "startDate": "2026-03-16", "numberOfOccurrences": 6 }
        });
        let r = parse_recurrence(&v)?;
        let back = recurrence_json(&r, "UTC");
        assert_eq!(
            back["pattern"]["daysOfWeek"],
            json!(["monday", "wednesday"])
        );
        assert_eq!(back["range"]["numberOfOccurrences"], json!(6));
        // Graph always states firstDayOfWeek; reading it back is stable from then on.
        let again = parse_recurrence(&back)?;
        assert_eq!(again.range, r.range);
        assert_eq!(parse_recurrence(&recurrence_json(&again, "UTC"))?, again);
        let yearly = json!({
            "pattern": { "type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 1 },
            "range": { "type": "noEnd", "startDate": "2026-03-01" }
        });
        assert!(parse_recurrence(&yearly).is_err());
        Ok(())
    }
}
