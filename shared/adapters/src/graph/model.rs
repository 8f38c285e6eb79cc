//! Typed serde models of the Graph v1.0 resources lnsync reads and writes: event, contact,
//! contactFolder, subscription and the complex types inside them. Property names follow the
//! CSDL (`graph-v1.0-subset.csdl.xml`); `csdl_tests` serializes a full sample of every model and
//! checks each property against the CSDL type it stands for, so a misspelt name or a wrong shape
//! fails a test rather than being silently ignored by Graph.
//!
//! Read models keep every property optional: Graph omits what a `$select` left out, and a missing
//! property must not make a whole page unreadable. Write models say exactly what is sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `CrmId` stamp (R10): the same MAPI named property (PS_PUBLIC_STRINGS) that EWS writes,
/// so a mailbox that moves from the EWS backend to Graph keeps its links.
pub(crate) const CRM_ID_PROPERTY: &str = "String {00020329-0000-0000-C000-000000000046} Name CrmId";
/// PidTagLanguage: R13 puts the contact's language ISO code here (as the EWS adapter does).
pub(crate) const LANGUAGE_PROPERTY: &str = "String 0x3A0C";
/// PidTagBusinessFaxNumber: Graph's contact has no fax property; EWS's `BusinessFax` is this.
pub(crate) const BUSINESS_FAX_PROPERTY: &str = "String 0x3A24";

/// `$expand` that returns our stamp with an item.
pub(crate) fn expand_stamp() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {})",
        super::client::literal(CRM_ID_PROPERTY)
    )
}

/// `singleValueLegacyExtendedProperty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExtendedProperty {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
}

impl ExtendedProperty {
    pub(crate) fn new(id: &str, value: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// The value of extended property `id` among `properties`. Graph may spell the property set's
/// GUID in lower case, so ids compare case-insensitively.
pub(crate) fn extended_value<'a>(
    properties: Option<&'a [ExtendedProperty]>,
    id: &str,
) -> Option<&'a str> {
    properties?
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id))
        .and_then(|p| p.value.as_deref())
        .filter(|v| !v.trim().is_empty())
}

/// `@removed` on a delta entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Removed {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `dateTimeTimeZone`. With `Prefer: outlook.timezone="UTC"` reads are in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// `emailAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `recipient` (an organizer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
}

/// `responseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ResponseType {
    None,
    Organizer,
    TentativelyAccepted,
    Accepted,
    Declined,
    NotResponded,
    /// A value newer than this model.
    #[serde(other)]
    Unknown,
}

impl ResponseType {
    #[cfg(test)]
    pub(crate) const KNOWN: [Self; 6] = [
        Self::None,
        Self::Organizer,
        Self::TentativelyAccepted,
        Self::Accepted,
        Self::Declined,
        Self::NotResponded,
    ];
}

/// `responseStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResponseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// `attendeeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AttendeeType {
    Required,
    Optional,
    Resource,
    #[serde(other)]
    Unknown,
}

impl AttendeeType {
    #[cfg(test)]
    pub(crate) const KNOWN: [Self; 3] = [Self::Required, Self::Optional, Self::Resource];
}

/// `attendee`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attendee {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub attendee_type: Option<AttendeeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
}

/// `bodyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum BodyType {
    Text,
    Html,
    #[serde(other)]
    Unknown,
}

/// `itemBody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<BodyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `location` (only its display name is mapped, R20).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `freeBusyStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum FreeBusyStatus {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    #[serde(other)]
    Unknown,
}

impl FreeBusyStatus {
    #[cfg(test)]
    pub(crate) const KNOWN: [Self; 6] = [
        Self::Free,
        Self::Tentative,
        Self::Busy,
        Self::Oof,
        Self::WorkingElsewhere,
        Self::Unknown,
    ];
}

/// `sensitivity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
    #[serde(other)]
    Unknown,
}

impl Sensitivity {
    #[cfg(test)]
    pub(crate) const KNOWN: [Self; 4] = [
        Self::Normal,
        Self::Personal,
        Self::Private,
        Self::Confidential,
    ];
}

/// `eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum EventType {
    SingleInstance,
    Occurrence,
    Exception,
    SeriesMaster,
    #[serde(other)]
    Unknown,
}

impl EventType {
    #[cfg(test)]
    pub(crate) const KNOWN: [Self; 4] = [
        Self::SingleInstance,
        Self::Occurrence,
        Self::Exception,
        Self::SeriesMaster,
    ];
}

/// An `event` as read (calendarView, delta, by id, instances).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    #[serde(default)]
    pub id: String,
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    #[serde(rename = "iCalUId", default, skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimeTimeZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimeTimeZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_start_time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_end_time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_all_day: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_reminder_on: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_minutes_before_start: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<FreeBusyStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organizer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
    /// Delta only: the event left the view (deleted, or moved out of the window).
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

/// An `event` as written: create (with `transactionId` and the stamp) or a full overwrite of
/// the mapped fields (R20).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventWrite {
    pub subject: String,
    pub body: ItemBody,
    pub start: DateTimeTimeZone,
    pub end: DateTimeTimeZone,
    pub is_all_day: bool,
    pub show_as: FreeBusyStatus,
    pub location: Location,
    pub is_reminder_on: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_minutes_before_start: Option<i32>,
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
}

/// `physicalAddress`. Every part is sent, `null` clearing it (R13).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// A `contact` as read: lnsync only needs its id, version and stamp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Contact {
    #[serde(default)]
    pub id: String,
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

/// A `contact` as written: every mapped field, `null` or empty clearing it (R12, R13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContactWrite {
    pub display_name: Option<String>,
    pub file_as: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub surname: Option<String>,
    /// The person title ("Dr."), Outlook's PidTagDisplayNamePrefix (what EWS writes as 0x3A45).
    pub title: Option<String>,
    pub generation: Option<String>,
    pub initials: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub company_name: Option<String>,
    pub assistant_name: Option<String>,
    pub birthday: Option<String>,
    pub email_addresses: Vec<EmailAddress>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub business_address: PhysicalAddress,
    pub single_value_extended_properties: Vec<ExtendedProperty>,
}

/// `contactFolder`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContactFolder {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
}

/// `subscription`, as created and as answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_supported_tls_version: Option<String>,
}
