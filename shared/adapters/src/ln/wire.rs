//! The JSON shapes of the LN `lnsync` OData service (`docs/ln-api.md`) and their mapping to and
//! from the core model. Mapping lives here, inside the adapter, so the core never sees wire names.
//!
//! Enumerations use the core enums directly: their serde names are the LN member names by design
//! (`model.rs` mirrors the contract), and an unknown member is reported as a protocol error.

use chrono::{DateTime, NaiveDate, Utc};
use lnsync_core::ids::{ActivityKey, ContactCode, EmployeeCode, LnVersion, MailboxAddress, UserId};
use lnsync_core::model::{
    Activity, Attendee, Contact, DeletedObject, Employee, Settings, SyncUser,
};
use lnsync_core::model::{
    ActivityStatus, ActivityType, Address, Attendance, AttendanceStatus, AttendeeType,
    DeletedEntity, ExchangeBackend, IntervalUnit, Origin, PullInterval, ShowTimeAs,
};
use lnsync_core::ports::{ActivityPatch, AttendeePatch, NewActivity};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A collection page.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    pub value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// The OData error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: ErrorInner,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorInner {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// The `ExistingKey` detail of a 409 (idempotent create).
    pub fn existing_key(&self) -> Option<&str> {
        self.error
            .details
            .iter()
            .find(|d| d.code == "ExistingKey")
            .map(|d| d.message.as_str())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireInterval {
    pub value: u32,
    pub unit: IntervalUnit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSettings {
    pub exchange_backend: ExchangeBackend,
    #[serde(default)]
    pub exchange_url: Option<String>,
    #[serde(default)]
    pub azure_tenant: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub contact_pull_interval: WireInterval,
    pub calendar_pull_interval: WireInterval,
    #[serde(default)]
    pub push_enabled: bool,
    #[serde(default)]
    pub synchronize_contacts: bool,
    #[serde(default)]
    pub synchronize_activities: bool,
}

impl From<WireSettings> for Settings {
    fn from(w: WireSettings) -> Self {
        Settings {
            exchange_backend: w.exchange_backend,
            exchange_url: w.exchange_url,
            azure_tenant: w.azure_tenant,
            client_id: w.client_id,
            contact_pull_interval: PullInterval {
                value: w.contact_pull_interval.value,
                unit: w.contact_pull_interval.unit,
            },
            calendar_pull_interval: PullInterval {
                value: w.calendar_pull_interval.value,
                unit: w.calendar_pull_interval.unit,
            },
            push_enabled: w.push_enabled,
            synchronize_contacts: w.synchronize_contacts,
            synchronize_activities: w.synchronize_activities,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSyncUser {
    pub user: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub email: Option<String>,
}

impl From<WireSyncUser> for SyncUser {
    fn from(w: WireSyncUser) -> Self {
        // The core requires a name and an address. LN allows them empty; an empty address is
        // kept as "" so the core reports the user (R4/R40) instead of the whole read failing.
        SyncUser {
            user: UserId::new(w.user),
            name: w.name.unwrap_or_default(),
            active: w.active,
            email: MailboxAddress::new(w.email.unwrap_or_default()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEmployee {
    pub employee: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl From<WireEmployee> for Employee {
    fn from(w: WireEmployee) -> Self {
        Employee {
            employee: EmployeeCode::new(w.employee),
            name: w.name.unwrap_or_default(),
            user: w.user.filter(|u| !u.is_empty()).map(UserId::new),
            email: w.email.filter(|e| !e.is_empty()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAddress {
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
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireContact {
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
    pub address: Option<WireAddress>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub synchronize: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub opted_out: bool,
    pub last_modified: DateTime<Utc>,
    #[serde(rename = "@odata.etag")]
    pub etag: String,
}

/// LN sends empty strings and nulls interchangeably for unset text; the core sees `None` for both.
fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl From<WireContact> for Contact {
    fn from(w: WireContact) -> Self {
        let address = w.address.map(|a| Address {
            line1: text(a.line1),
            line2: text(a.line2),
            line3: text(a.line3),
            city: text(a.city),
            zip: text(a.zip),
            state: text(a.state),
            country: text(a.country),
        });
        // An address object with nothing in it is "no address".
        let address = address.filter(|a| *a != Address::default());
        Contact {
            contact: ContactCode::new(w.contact),
            first_name: text(w.first_name),
            middle_name: text(w.middle_name),
            last_name: text(w.last_name),
            full_name: text(w.full_name),
            title: text(w.title),
            suffix: text(w.suffix),
            initials: text(w.initials),
            job_title: text(w.job_title),
            department: text(w.department),
            assistant: text(w.assistant),
            birthday: w.birthday,
            business_partner: text(w.business_partner),
            business_partner_name: text(w.business_partner_name),
            email: text(w.email),
            primary_phone: text(w.primary_phone),
            mobile_phone: text(w.mobile_phone),
            fax: text(w.fax),
            address,
            language: text(w.language),
            synchronize: w.synchronize,
            active: w.active,
            opted_out: w.opted_out,
            last_modified: w.last_modified,
            version: LnVersion::new(w.etag),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireDeleted {
    pub entity: DeletedEntity,
    pub key: String,
    pub deleted_at: DateTime<Utc>,
}

impl From<WireDeleted> for DeletedObject {
    fn from(w: WireDeleted) -> Self {
        DeletedObject {
            entity: w.entity,
            key: w.key,
            deleted_at: w.deleted_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAttendee {
    pub activity: String,
    pub line: u32,
    pub attendance: Attendance,
    pub attendee_type: AttendeeType,
    #[serde(default)]
    pub attendee: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub attendance_status: AttendanceStatus,
    #[serde(default)]
    pub invite: bool,
    #[serde(default)]
    pub sent_to_synchronizer: bool,
    #[serde(default)]
    pub synchronized: bool,
    #[serde(rename = "@odata.etag", default)]
    pub etag: Option<String>,
}

impl From<WireAttendee> for Attendee {
    fn from(w: WireAttendee) -> Self {
        Attendee {
            activity: ActivityKey::new(w.activity),
            line: w.line,
            attendance: w.attendance,
            attendee_type: w.attendee_type,
            attendee: text(w.attendee),
            full_name: text(w.full_name),
            email: text(w.email),
            attendance_status: w.attendance_status,
            invite: w.invite,
            sent_to_synchronizer: w.sent_to_synchronizer,
            synchronized: w.synchronized,
            version: w.etag.map(LnVersion::new),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireActivity {
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
    pub reminder_unit: Option<IntervalUnit>,
    pub show_time_as: ShowTimeAs,
    pub status: ActivityStatus,
    #[serde(default)]
    pub synchronize: bool,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub business_partner: Option<String>,
    #[serde(default)]
    pub external_reference: Option<String>,
    pub origin: Origin,
    pub last_modified: DateTime<Utc>,
    #[serde(rename = "@odata.etag")]
    pub etag: String,
    #[serde(default)]
    pub attendees: Option<Vec<WireAttendee>>,
}

impl WireActivity {
    /// The core requires start and end; LN only guarantees them for appointments and calls, the
    /// only types lnsync reads (R15). Anything else is reported as unreadable.
    pub fn into_core(self) -> Result<Activity, String> {
        let (Some(start), Some(end)) = (self.start, self.end) else {
            return Err(format!("activity {} has no start or end", self.activity));
        };
        let mut attendees: Vec<Attendee> = self
            .attendees
            .unwrap_or_default()
            .into_iter()
            .map(Attendee::from)
            .collect();
        attendees.sort_by_key(|a| a.line);
        Ok(Activity {
            activity: ActivityKey::new(self.activity),
            activity_type: self.activity_type,
            subject: text(self.subject),
            location: text(self.location),
            information: text(self.information),
            all_day: self.all_day,
            start,
            end,
            reminder_set: self.reminder_set,
            reminder_value: self.reminder_value,
            reminder_unit: self.reminder_unit,
            show_time_as: self.show_time_as,
            status: self.status,
            synchronize: self.synchronize,
            contact: text(self.contact).map(ContactCode::new),
            business_partner: text(self.business_partner),
            external_reference: text(self.external_reference),
            origin: self.origin,
            last_modified: self.last_modified,
            version: LnVersion::new(self.etag),
            attendees,
        })
    }
}

/// Attendee as sent in a deep insert: key fields (`activity`, `line`) are assigned by LN.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AttendeeCreate<'a> {
    attendance: Attendance,
    attendee_type: AttendeeType,
    attendee: Option<&'a str>,
    full_name: Option<&'a str>,
    email: Option<&'a str>,
    attendance_status: AttendanceStatus,
    invite: bool,
    sent_to_synchronizer: bool,
    synchronized: bool,
}

/// Attendee as sent to `POST Attendees`: the parent named in the body, the line assigned by LN.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AttendeeAdd<'a> {
    activity: &'a str,
    #[serde(flatten)]
    attendee: AttendeeCreate<'a>,
}

/// Activity as sent in a deep insert: without its key, `lastModified` or etag.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivityCreate<'a> {
    #[serde(rename = "type")]
    activity_type: ActivityType,
    subject: Option<&'a str>,
    location: Option<&'a str>,
    information: Option<&'a str>,
    all_day: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    reminder_set: bool,
    reminder_value: Option<u32>,
    reminder_unit: Option<IntervalUnit>,
    show_time_as: ShowTimeAs,
    status: ActivityStatus,
    synchronize: bool,
    contact: Option<&'a str>,
    business_partner: Option<&'a str>,
    external_reference: Option<&'a str>,
    origin: Origin,
    attendees: Vec<AttendeeCreate<'a>>,
}

/// The deep-insert body for `POST Activities`.
pub(crate) fn create_body(new: &NewActivity) -> Result<Value, serde_json::Error> {
    let a = &new.activity;
    serde_json::to_value(ActivityCreate {
        activity_type: a.activity_type,
        subject: a.subject.as_deref(),
        location: a.location.as_deref(),
        information: a.information.as_deref(),
        all_day: a.all_day,
        start: a.start,
        end: a.end,
        reminder_set: a.reminder_set,
        reminder_value: a.reminder_value,
        reminder_unit: a.reminder_unit,
        show_time_as: a.show_time_as,
        status: a.status,
        synchronize: a.synchronize,
        contact: a.contact.as_ref().map(ContactCode::as_str),
        business_partner: a.business_partner.as_deref(),
        external_reference: a.external_reference.as_deref(),
        origin: a.origin,
        attendees: a.attendees.iter().map(attendee_create).collect(),
    })
}

fn attendee_create(t: &Attendee) -> AttendeeCreate<'_> {
    AttendeeCreate {
        attendance: t.attendance,
        attendee_type: t.attendee_type,
        attendee: t.attendee.as_deref(),
        full_name: t.full_name.as_deref(),
        email: t.email.as_deref(),
        attendance_status: t.attendance_status,
        invite: t.invite,
        sent_to_synchronizer: t.sent_to_synchronizer,
        synchronized: t.synchronized,
    }
}

/// The body for `POST Attendees`: the new line under `activity`.
pub(crate) fn attendee_create_body(
    activity: &ActivityKey,
    attendee: &Attendee,
) -> Result<Value, serde_json::Error> {
    serde_json::to_value(AttendeeAdd {
        activity: activity.as_str(),
        attendee: attendee_create(attendee),
    })
}

fn put<T: Serialize>(
    map: &mut Map<String, Value>,
    name: &str,
    value: Option<T>,
) -> Result<(), serde_json::Error> {
    if let Some(value) = value {
        map.insert(name.to_owned(), serde_json::to_value(value)?);
    }
    Ok(())
}

/// The PATCH body for an activity: only the fields the patch sets (`Some(None)` clears).
pub(crate) fn activity_patch_body(p: &ActivityPatch) -> Result<Value, serde_json::Error> {
    let mut map = Map::new();
    put(&mut map, "subject", p.subject.as_ref())?;
    put(&mut map, "location", p.location.as_ref())?;
    put(&mut map, "information", p.information.as_ref())?;
    put(&mut map, "allDay", p.all_day)?;
    put(&mut map, "start", p.start)?;
    put(&mut map, "end", p.end)?;
    put(&mut map, "reminderSet", p.reminder_set)?;
    put(&mut map, "reminderValue", p.reminder_value)?;
    put(&mut map, "reminderUnit", p.reminder_unit)?;
    put(&mut map, "showTimeAs", p.show_time_as)?;
    put(&mut map, "status", p.status)?;
    put(&mut map, "synchronize", p.synchronize)?;
    put(&mut map, "type", p.activity_type)?;
    Ok(Value::Object(map))
}

/// The PATCH body for an attendee line.
pub(crate) fn attendee_patch_body(p: &AttendeePatch) -> Result<Value, serde_json::Error> {
    let mut map = Map::new();
    put(&mut map, "attendanceStatus", p.attendance_status)?;
    put(&mut map, "sentToSynchronizer", p.sent_to_synchronizer)?;
    put(&mut map, "synchronized", p.synchronized)?;
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_bodies_carry_only_set_fields() -> Result<(), serde_json::Error> {
        let patch = ActivityPatch {
            subject: Some(Some("New".into())),
            location: Some(None),
            status: Some(ActivityStatus::NotHeld),
            ..ActivityPatch::default()
        };
        assert_eq!(
            activity_patch_body(&patch)?,
            json!({"subject": "New", "location": null, "status": "NotHeld"})
        );
        let patch = ActivityPatch {
            activity_type: Some(ActivityType::Call),
            ..ActivityPatch::default()
        };
        assert_eq!(activity_patch_body(&patch)?, json!({"type": "Call"}));
        assert_eq!(attendee_patch_body(&AttendeePatch::default())?, json!({}));
        let patch = AttendeePatch {
            attendance_status: Some(AttendanceStatus::None),
            synchronized: Some(true),
            ..AttendeePatch::default()
        };
        assert_eq!(
            attendee_patch_body(&patch)?,
            json!({"attendanceStatus": "None", "synchronized": true})
        );
        Ok(())
    }
}
