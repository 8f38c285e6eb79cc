//! Fixtures the EWS and Graph adapters' simulator tests share, so both backends are exercised
//! with the same contacts and events.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use lnsync_core::calendar::{AttendeeRole, EventAttendee, EventFields, EventTime, ResponseType};
use lnsync_core::ids::CrmStamp;
use lnsync_core::model::ShowTimeAs;
use lnsync_core::normalize::{ContactFields, PostalAddress};
use lnsync_core::ports::Window;

pub(crate) fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid instant")
}

pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The calendar window of the tests: 2026.
pub(crate) fn window() -> Window {
    Window {
        start: at(2026, 1, 1, 0, 0),
        end: at(2027, 1, 1, 0, 0),
    }
}

pub(crate) fn activity_stamp(key: &str) -> CrmStamp {
    CrmStamp::from_raw(format!("ln:prod:activity:{key}"))
}

pub(crate) fn contact_stamp(i: usize) -> CrmStamp {
    CrmStamp::from_raw(format!("ln:prod:contact:C{i:04}"))
}

pub(crate) fn meeting_fields() -> EventFields {
    EventFields {
        subject: Some("Quarterly review".into()),
        location: Some("Room 1".into()),
        body: Some("Agenda\nline 2".into()),
        time: EventTime::Timed {
            start: at(2026, 2, 10, 8, 0),
            end: at(2026, 2, 10, 9, 0),
        },
        reminder_minutes: Some(15),
        show_as: ShowTimeAs::Busy,
        is_call: false,
    }
}

pub(crate) fn all_day_fields() -> EventFields {
    EventFields {
        subject: Some("Offsite".into()),
        location: None,
        body: None,
        time: EventTime::AllDay {
            start: date(2026, 3, 29),
            end: date(2026, 3, 30),
        },
        reminder_minutes: None,
        show_as: ShowTimeAs::OutOfOffice,
        is_call: true,
    }
}

/// `email` as a required attendee named Bob, no answer yet.
pub(crate) fn required_bob(email: &str) -> EventAttendee {
    EventAttendee {
        email: email.into(),
        name: Some("Bob".into()),
        role: AttendeeRole::Required,
        response: ResponseType::None,
    }
}

/// A contact with every mapped field set, markup characters included.
pub(crate) fn full_contact_fields() -> ContactFields {
    ContactFields {
        display_name: Some("Dr. Jane Doe".into()),
        file_as: Some("Doe, Jane".into()),
        given_name: Some("Jane".into()),
        surname: Some("Doe".into()),
        title: Some("Dr.".into()),
        job_title: Some("CTO".into()),
        company_name: Some("Acme & Co".into()),
        department: Some("R&D <core>".into()),
        birthday: NaiveDate::from_ymd_opt(1980, 5, 17),
        email: Some("jane@acme.example".into()),
        business_phone: Some("+49 30 1234".into()),
        mobile_phone: Some("+49 170 1".into()),
        business_fax: Some("+49 30 1235".into()),
        business_address: Some(PostalAddress {
            street: Some("Main St 1".into()),
            city: Some("Berlin".into()),
            postal_code: Some("10115".into()),
            country: Some("DE".into()),
            ..PostalAddress::default()
        }),
        language: Some("de".into()),
        ..ContactFields::default()
    }
}
