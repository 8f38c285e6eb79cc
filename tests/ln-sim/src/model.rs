//! The LN business objects exposed by the `lnsync` OData service, with the JSON names of
//! `ln-api.md`.
//!
//! These structs hold what a client can read and write. Server-maintained metadata (`@odata.etag`,
//! `lastModified`) lives in [`crate::store`] next to them, because clients must never be able to
//! set it and the seed format only optionally supplies `lastModified`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Which Exchange API the environment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ExchangeBackend {
    #[default]
    #[serde(rename = "EWS")]
    Ews,
    Graph,
}

/// Unit of a pull interval or reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimeUnit {
    #[default]
    Minutes,
    Hours,
    Days,
    Weeks,
}

/// A number plus a unit, e.g. 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    pub value: u32,
    pub unit: TimeUnit,
}

impl Interval {
    pub fn new(value: u32, unit: TimeUnit) -> Self {
        Self { value, unit }
    }
}

/// The `Settings` singleton (ttaad2140m000 + tccom0000s000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub exchange_backend: ExchangeBackend,
    #[serde(default)]
    pub exchange_url: Option<String>,
    #[serde(default)]
    pub azure_tenant: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_contact_interval")]
    pub contact_pull_interval: Interval,
    #[serde(default = "default_calendar_interval")]
    pub calendar_pull_interval: Interval,
    #[serde(default)]
    pub push_enabled: bool,
    #[serde(default = "yes")]
    pub synchronize_contacts: bool,
    #[serde(default = "yes")]
    pub synchronize_activities: bool,
}

fn default_contact_interval() -> Interval {
    Interval::new(1, TimeUnit::Hours)
}

fn default_calendar_interval() -> Interval {
    Interval::new(15, TimeUnit::Minutes)
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exchange_backend: ExchangeBackend::Ews,
            exchange_url: Some("https://mail.demo.example/EWS/Exchange.asmx".into()),
            azure_tenant: None,
            client_id: None,
            contact_pull_interval: default_contact_interval(),
            calendar_pull_interval: default_calendar_interval(),
            push_enabled: false,
            synchronize_contacts: true,
            synchronize_activities: true,
        }
    }
}

/// A `SyncUsers` row (ttaad2141m000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncUser {
    pub user: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub email: Option<String>,
}

/// An `Employees` row (tccom0101m000 + bpmdm0101m000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Employee {
    pub employee: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// Postal address of a contact (a complex property, serialised as a nested object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    #[serde(default)]
    pub line1: Option<String>,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub line3: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 3166 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
}

/// A `Contacts` row (tccom1640m000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contact {
    /// Key. Optional on POST: the server assigns `CON000001`… when empty.
    #[serde(default)]
    pub contact: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub middle_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub initials: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub assistant: Option<String>,
    #[serde(default)]
    pub birthday: Option<NaiveDate>,
    #[serde(default)]
    pub business_partner: Option<String>,
    #[serde(default)]
    pub business_partner_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub primary_phone: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub fax: Option<String>,
    #[serde(default)]
    pub address: Address,
    /// ISO 639-1.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub synchronize: bool,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub opted_out: bool,
}

/// Activity type (tccom6100m000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ActivityType {
    #[default]
    Appointment,
    Call,
    Task,
    Mailing,
}

/// How the activity shows in a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ShowTimeAs {
    Free,
    #[default]
    Busy,
    Tentative,
    OutOfOffice,
}

/// Activity status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ActivityStatus {
    #[default]
    Planned,
    Held,
    NotHeld,
}

/// Where an activity was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Origin {
    #[default]
    #[serde(rename = "LN")]
    Ln,
    Exchange,
}

/// An `Activities` row (tccom6100m000 / tccom6600m100), without its attendees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Activity {
    /// Key, assigned by the server on POST (`ACT000001`…).
    #[serde(default)]
    pub activity: String,
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub information: Option<String>,
    #[serde(default)]
    pub all_day: bool,
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reminder_set: bool,
    #[serde(default)]
    pub reminder_value: Option<u32>,
    #[serde(default)]
    pub reminder_unit: Option<TimeUnit>,
    #[serde(default)]
    pub show_time_as: ShowTimeAs,
    #[serde(default)]
    pub status: ActivityStatus,
    #[serde(default)]
    pub synchronize: bool,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub business_partner: Option<String>,
    /// The Exchange iCalendar UID for activities created from Exchange; unique per company.
    #[serde(default)]
    pub external_reference: Option<String>,
    #[serde(default)]
    pub origin: Origin,
}

/// Role of an attendee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Attendance {
    #[default]
    Required,
    Optional,
    Resource,
    MeetingOrganizer,
}

/// What the attendee code refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AttendeeType {
    Employee,
    Contact,
    #[default]
    Other,
}

/// An attendee's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AttendanceStatus {
    Accepted,
    Tentative,
    Declined,
    /// No response yet (`"None"` on the wire).
    #[default]
    #[serde(rename = "None")]
    NoResponse,
}

/// An `Attendees` row (tccom6105m000); key (`activity`, `line`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attendee {
    /// Parent activity; filled in by the server on deep insert.
    #[serde(default)]
    pub activity: String,
    /// Line number, assigned by the server when 0/absent.
    #[serde(default)]
    pub line: u32,
    #[serde(default)]
    pub attendance: Attendance,
    #[serde(default)]
    pub attendee_type: AttendeeType,
    /// Employee or contact code (empty for `Other`).
    #[serde(default)]
    pub attendee: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub attendance_status: AttendanceStatus,
    #[serde(default)]
    pub invite: bool,
    #[serde(default)]
    pub sent_to_synchronizer: bool,
    #[serde(default)]
    pub synchronized: bool,
}

/// Kind of object recorded in `DeletedObjects` (and in change events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityKind {
    Contact,
    Activity,
    Attendee,
}

/// A `DeletedObjects` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedObject {
    pub entity: EntityKind,
    /// Contact or activity code; for attendees `"{activity}/{line}"`.
    pub key: String,
    pub deleted_at: DateTime<Utc>,
}

/// Key used for an attendee in `DeletedObjects` and change events.
pub fn attendee_key(activity: &str, line: u32) -> String {
    format!("{activity}/{line}")
}
