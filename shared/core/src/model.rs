//! The domain model for the whole product: what LN and Exchange hold, and what lnsync keeps
//! about them. LN-side types mirror the entity sets of the LN contract (`docs/ln-api.md`).

use crate::ids::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Environments, settings and users (R1–R5)
// ---------------------------------------------------------------------------------------------

/// Which Exchange protocol an environment uses (R2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeBackend {
    #[serde(rename = "EWS")]
    Ews,
    #[serde(rename = "Graph")]
    Graph,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntervalUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

/// A pull interval: a number and a unit, run on aligned boundaries (R6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PullInterval {
    pub value: u32,
    pub unit: IntervalUnit,
}

impl PullInterval {
    pub fn length(&self) -> Duration {
        let v = i64::from(self.value.max(1));
        match self.unit {
            IntervalUnit::Minutes => Duration::minutes(v),
            IntervalUnit::Hours => Duration::hours(v),
            IntervalUnit::Days => Duration::days(v),
            IntervalUnit::Weeks => Duration::weeks(v),
        }
    }

    /// Intervals under 15 minutes are allowed but warned about in the console (R6).
    pub fn is_short(&self) -> bool {
        self.length() < Duration::minutes(15)
    }

    /// The first boundary strictly after `after`. Boundaries are multiples of the interval
    /// counted from midnight UTC of 1970-01-05, a Monday, so that hours start on the hour,
    /// days at midnight UTC and weeks on Monday (R6), independent of when the setting was saved.
    pub fn next_boundary(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let epoch_monday = DateTime::<Utc>::from_timestamp(4 * 86_400, 0).unwrap_or_default();
        let step = self.length().num_seconds().max(60);
        let since = (after - epoch_monday).num_seconds();
        let k = since.div_euclid(step) + 1;
        epoch_monday + Duration::seconds(k * step)
    }

    /// The last boundary at or before `at`.
    pub fn boundary_at_or_before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let next = self.next_boundary(at);
        let prev = next - Duration::seconds(self.length().num_seconds().max(60));
        if prev <= at {
            prev
        } else {
            prev - self.length()
        }
    }
}

/// Per-environment synchronization settings (ttaad2140m000 + tccom0000s000), read from LN (R2, R3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub exchange_backend: ExchangeBackend,
    #[serde(default)]
    pub exchange_url: Option<String>,
    #[serde(default)]
    pub azure_tenant: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub contact_pull_interval: PullInterval,
    pub calendar_pull_interval: PullInterval,
    #[serde(default)]
    pub push_enabled: bool,
    #[serde(default)]
    pub synchronize_contacts: bool,
    #[serde(default)]
    pub synchronize_activities: bool,
}

/// A user enabled for synchronization (ttaad2141m000). Only `active` users are synchronized (R4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncUser {
    pub user: UserId,
    pub name: String,
    pub active: bool,
    /// The primary SMTP address of the user's mailbox.
    pub email: MailboxAddress,
}

/// An LN employee with their user and e-mail (tccom0101m000 + bpmdm0101m000), used to match
/// attendees to sync users (R5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub employee: EmployeeCode,
    pub name: String,
    pub user: Option<UserId>,
    pub email: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Contacts (R8–R14)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub line3: Option<String>,
    pub city: Option<String>,
    pub zip: Option<String>,
    pub state: Option<String>,
    /// ISO 3166 alpha-2.
    pub country: Option<String>,
}

/// An LN contact (tccom1640m000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub contact: ContactCode,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub title: Option<String>,
    pub suffix: Option<String>,
    pub initials: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub assistant: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub business_partner: Option<String>,
    pub business_partner_name: Option<String>,
    pub email: Option<String>,
    pub primary_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub fax: Option<String>,
    pub address: Option<Address>,
    /// ISO 639-1.
    pub language: Option<String>,
    pub synchronize: bool,
    pub active: bool,
    pub opted_out: bool,
    pub last_modified: DateTime<Utc>,
    /// `@odata.etag`.
    pub version: LnVersion,
}

impl Contact {
    /// Whether this contact belongs in the users' "CRM Contacts" folders (R8, R11).
    pub fn qualifies(&self) -> bool {
        self.synchronize && self.active
    }
}

/// LN entities that appear in the `DeletedObjects` audit feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeletedEntity {
    Contact,
    Activity,
    Attendee,
}

impl DeletedEntity {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeletedEntity::Contact => "Contact",
            DeletedEntity::Activity => "Activity",
            DeletedEntity::Attendee => "Attendee",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedObject {
    pub entity: DeletedEntity,
    pub key: String,
    pub deleted_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Activities and attendees (R15–R30)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActivityType {
    Appointment,
    Call,
    Task,
    Mailing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActivityStatus {
    Planned,
    Held,
    NotHeld,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShowTimeAs {
    Free,
    Busy,
    Tentative,
    OutOfOffice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    #[serde(rename = "LN")]
    Ln,
    Exchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Attendance {
    Required,
    Optional,
    Resource,
    MeetingOrganizer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttendeeType {
    Employee,
    Contact,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttendanceStatus {
    Accepted,
    Tentative,
    Declined,
    None,
}

/// An attendee line of an activity (tccom6105m000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    pub activity: ActivityKey,
    pub line: u32,
    pub attendance: Attendance,
    pub attendee_type: AttendeeType,
    /// Employee or contact code, per `attendee_type`.
    pub attendee: Option<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub attendance_status: AttendanceStatus,
    pub invite: bool,
    pub sent_to_synchronizer: bool,
    pub synchronized: bool,
    pub version: Option<LnVersion>,
}

/// An LN activity (tccom6100m000 / tccom6600m100). Only Appointment and Call take part in
/// calendar sync (R15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub activity: ActivityKey,
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub information: Option<String>,
    pub all_day: bool,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reminder_set: bool,
    pub reminder_value: Option<u32>,
    pub reminder_unit: Option<IntervalUnit>,
    pub show_time_as: ShowTimeAs,
    pub status: ActivityStatus,
    pub synchronize: bool,
    pub contact: Option<ContactCode>,
    pub business_partner: Option<String>,
    /// The Exchange iCalendar UID for activities created from Exchange (R34 idempotent create).
    pub external_reference: Option<String>,
    pub origin: Origin,
    pub last_modified: DateTime<Utc>,
    pub version: LnVersion,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
}

// ---------------------------------------------------------------------------------------------
// What lnsync keeps: links, cursors, jobs, runs, problems (R34–R40)
// ---------------------------------------------------------------------------------------------

/// What a link pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LinkKind {
    Contact,
    Event,
}

impl LinkKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkKind::Contact => "contact",
            LinkKind::Event => "event",
        }
    }
}

/// The LN side of a link: a contact code or an activity key (or, for occurrences of an
/// Exchange series, the series UID plus original start, R25).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LnKey(String);

impl LnKey {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&ContactCode> for LnKey {
    fn from(code: &ContactCode) -> Self {
        Self(code.as_str().to_owned())
    }
}

impl From<&ActivityKey> for LnKey {
    fn from(key: &ActivityKey) -> Self {
        Self(key.as_str().to_owned())
    }
}

impl Link {
    /// Whether this is a create intent rather than a link to an existing item.
    pub fn is_intent(&self) -> bool {
        self.exchange_id.as_str().is_empty()
    }
}

impl std::fmt::Display for LnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content hash of the mapped fields of one side (see `normalize`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(pub String);

impl ContentHash {
    /// "We don't know what this side holds": saved just before a write, so a run that dies
    /// after the write but before saving the result makes the next run write again rather than
    /// trust a stale hash.
    pub fn unknown() -> Self {
        Self(String::new())
    }
}

/// The status row of one synchronized pair (vdirsyncer's "status"): what both sides looked like
/// right after the last write or comparison, so the next run can tell who changed.
///
/// A link with an empty `exchange_id` is an *intent*: saved just before a create, so that a run
/// that dies between the Exchange write and saving the real link leaves a trace, and the next
/// run looks the stamp up instead of assuming nothing exists (exchange.md §2.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub env: EnvironmentId,
    pub user: UserId,
    pub kind: LinkKind,
    pub ln_key: LnKey,
    pub exchange_id: ExchangeItemId,
    pub exchange_version: ExchangeVersion,
    pub ln_version: Option<LnVersion>,
    /// LN's `lastModified` of that version: a deletion in the audit feed older than this is
    /// about an earlier incarnation of the key and must not remove the link.
    #[serde(default)]
    pub ln_modified: Option<DateTime<Utc>>,
    /// Hash of the mapped fields as last written/seen on LN's side.
    pub ln_hash: ContentHash,
    /// Hash of the mapped fields as last written/seen on Exchange's side.
    pub exchange_hash: ContentHash,
    pub ical_uid: Option<IcalUid>,
    pub origin: Origin,
    pub organizer: Option<MailboxAddress>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Calendar links only: where the event sits in its series and in time.
    #[serde(default)]
    pub event: Option<EventLink>,
}

/// What a calendar link knows about its event beyond the pair's versions and hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLink {
    /// Original start of an occurrence or exception (R25); `None` for a single event.
    pub original_start: Option<DateTime<Utc>>,
    /// The recurring master's id, for occurrences: a deleted master removes them all.
    pub series_id: Option<ExchangeItemId>,
    /// End of the event as last synced: once it is before the window's start the link is
    /// dropped quietly (R16).
    pub end: DateTime<Utc>,
}

/// The LN change-feed position of one user: the largest `lastModified` applied, and the largest
/// `deletedAt` applied. Kept per user so a user whose run failed re-reads from its own point,
/// while the feed itself is read once per environment from the oldest point (R14).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LnWatermark {
    pub changes: Option<DateTime<Utc>>,
    pub deletions: Option<DateTime<Utc>>,
}

impl LnWatermark {
    /// The older of two watermarks per component; `None` (never run) is the oldest.
    pub fn min(self, other: LnWatermark) -> LnWatermark {
        fn older(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            }
        }
        LnWatermark {
            changes: older(self.changes, other.changes),
            deletions: older(self.deletions, other.deletions),
        }
    }
}

/// Which cursor of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CursorKind {
    /// [`LnWatermark`] of the contact feed.
    LnContacts,
    /// [`LnWatermark`] of the activity feed.
    LnActivities,
    /// Exchange incremental state of the "CRM Contacts" folder (EWS SyncState / Graph deltaLink).
    ExchangeContacts,
    /// Exchange incremental state of the calendar.
    ExchangeCalendar,
}

impl CursorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CursorKind::LnContacts => "ln-contacts",
            CursorKind::LnActivities => "ln-activities",
            CursorKind::ExchangeContacts => "exchange-contacts",
            CursorKind::ExchangeCalendar => "exchange-calendar",
        }
    }
}

/// A persisted sync cursor. `revision` makes cursor writes conditional: a write names the
/// revision it read, and loses if another run moved the cursor meanwhile (R35, R36).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub env: EnvironmentId,
    pub user: UserId,
    pub kind: CursorKind,
    /// Opaque to the store: JSON of an [`LnWatermark`], or an Exchange sync state.
    pub value: String,
    pub revision: u64,
}

/// An environment as the store knows it (R1): started or stopped, independent of LN data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub env: EnvironmentId,
    pub started: bool,
    pub updated_at: DateTime<Utc>,
}

/// Per-user bookkeeping that is not a link or cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub env: EnvironmentId,
    pub user: UserId,
    pub mailbox: MailboxAddress,
    /// The "CRM Contacts" folder, once found or created (R9).
    pub contact_folder: Option<FolderId>,
    /// Set by an administrator to let the next run apply deletions the safety gate held (R30).
    pub release_held_deletions: bool,
    pub next_contact_run: Option<DateTime<Utc>>,
    pub next_calendar_run: Option<DateTime<Utc>>,
}

impl UserState {
    pub fn new(env: EnvironmentId, user: UserId, mailbox: MailboxAddress) -> Self {
        Self {
            env,
            user,
            mailbox,
            contact_folder: None,
            release_held_deletions: false,
            next_contact_run: None,
            next_calendar_run: None,
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobKind {
    ContactPull,
    CalendarPull,
    /// Sync one event after a push notification (R31). An Exchange notification names the
    /// item (the job's user is the subscription's); an LN webhook names the activity, and the
    /// job's user is [`UserId::ANY`] until the worker finds the activity's owner.
    SingleEvent {
        exchange_id: Option<ExchangeItemId>,
        activity: Option<ActivityKey>,
    },
    /// Create (or recreate) the user's calendar push subscription (R31, R33), from the last
    /// persisted watermark when there is one.
    Subscribe,
}

impl JobKind {
    pub fn label(&self) -> &'static str {
        match self {
            JobKind::ContactPull => "contacts",
            JobKind::CalendarPull => "calendar",
            JobKind::SingleEvent { .. } => "event",
            JobKind::Subscribe => "subscribe",
        }
    }
}

/// A unit of work for one user. Jobs of one (environment, user) are processed in order and
/// never concurrently (R36): that pair is the queue's message group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub env: EnvironmentId,
    pub user: UserId,
    #[serde(flatten)]
    pub kind: JobKind,
    pub enqueued_at: DateTime<Utc>,
}

impl Job {
    /// The ordering/serialization group of this job.
    pub fn group(&self) -> String {
        format!("{}/{}", self.env, self.user)
    }
}

/// A push subscription on one user's calendar (R31–R33). Notifications are only hints (R32):
/// losing one costs latency, never data, because the pull still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub env: EnvironmentId,
    pub user: UserId,
    pub id: SubscriptionId,
    pub mailbox: MailboxAddress,
    pub backend: ExchangeBackend,
    /// The latest watermark persisted (EWS): a resubscription starts from it so events that
    /// happened while the subscription was silent are delivered.
    pub watermark: Option<String>,
    /// EWS `StatusFrequency`: the server sends a status event after this many idle minutes.
    pub status_frequency_minutes: u32,
    pub created_at: DateTime<Utc>,
    /// The last notification of any kind (event or status); creation time before the first.
    pub last_seen: DateTime<Utc>,
    /// When the server drops the subscription (Graph); `None` for EWS push, which lives
    /// as long as it is answered.
    pub expires_at: Option<DateTime<Utc>>,
    /// False once replaced, or when push was turned off or the environment stopped: its next
    /// notification is answered `Unsubscribe` (EWS push has no unsubscribe call).
    pub active: bool,
}

impl PushSubscription {
    /// No event or status for 2 × StatusFrequency: the server stopped calling (R33).
    pub fn is_silent(&self, now: DateTime<Utc>) -> bool {
        now - self.last_seen
            > Duration::minutes(2 * i64::from(self.status_frequency_minutes.max(1)))
    }

    /// Expires within `margin` (Graph subscriptions must be renewed before they lapse).
    pub fn expires_within(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        self.expires_at.is_some_and(|e| e - now <= margin)
    }
}

/// Counts of one run for one user (R39).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub created: u32,
    pub updated: u32,
    pub deleted: u32,
    pub skipped: u32,
    pub errors: u32,
    pub held: u32,
}

impl RunCounts {
    pub fn writes(&self) -> u32 {
        self.created + self.updated + self.deleted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    Succeeded,
    /// Ran, but some items failed or deletions were held.
    Partial,
    Failed,
    /// Another run held the user's lease (R7, R36).
    Busy,
}

/// The record of one run, kept for the console (R39).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub env: EnvironmentId,
    pub user: UserId,
    pub kind: LinkKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: RunOutcome,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// Why an item needs an administrator's eye (R40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    Skipped,
    Conflict,
    HeldDeletion,
    MappingOverflow,
    WriteFailed,
}

/// An item-level problem, kept per user and shown in the console (R40).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemProblem {
    pub env: EnvironmentId,
    pub user: UserId,
    pub kind: LinkKind,
    pub ln_key: LnKey,
    pub problem: ProblemKind,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn hourly_interval_saved_at_15_20_runs_on_the_hour() {
        let hourly = PullInterval {
            value: 1,
            unit: IntervalUnit::Hours,
        };
        assert_eq!(hourly.next_boundary(at(15, 20)), at(16, 0));
        assert_eq!(hourly.next_boundary(at(16, 0)), at(17, 0));
    }

    #[test]
    fn quarter_hours_align_to_the_clock() {
        let q = PullInterval {
            value: 15,
            unit: IntervalUnit::Minutes,
        };
        assert_eq!(q.next_boundary(at(9, 1)), at(9, 15));
        assert_eq!(q.next_boundary(at(9, 44)), at(9, 45));
        assert_eq!(q.boundary_at_or_before(at(9, 44)), at(9, 30));
        assert!(!q.is_short());
        assert!(
            PullInterval {
                value: 5,
                unit: IntervalUnit::Minutes
            }
            .is_short()
        );
    }

    #[test]
    fn days_from_midnight_and_weeks_from_monday() {
        let day = PullInterval {
            value: 1,
            unit: IntervalUnit::Days,
        };
        assert_eq!(
            day.next_boundary(at(15, 20)),
            Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0)
                .single()
                .unwrap_or_default()
        );
        // 2026-11-25 is a Wednesday; the next week boundary is Monday 2026-11-30.
        let week = PullInterval {
            value: 1,
            unit: IntervalUnit::Weeks,
        };
        assert_eq!(
            week.next_boundary(at(15, 20)),
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0)
                .single()
                .unwrap_or_default()
        );
    }

    #[test]
    fn watermark_min_treats_never_as_oldest() {
        let a = LnWatermark {
            changes: Some(at(1, 0)),
            deletions: Some(at(2, 0)),
        };
        let b = LnWatermark {
            changes: Some(at(3, 0)),
            deletions: None,
        };
        let m = a.min(b);
        assert_eq!(m.changes, Some(at(1, 0)));
        assert_eq!(m.deletions, None);
    }
}
