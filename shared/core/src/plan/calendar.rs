//! The calendar planner (R15–R30): a pure decision over each pair of an LN activity and an
//! Exchange event, plus the mapping between the two (R20) and the ownership rule of
//! `docs/calendar.md`. No clock (the caller passes `now`), no I/O.
//!
//! Each side of a pair is *unreported* (the side's feed did not mention it this run), *present*,
//! *gone* (deleted, cancelled, lost *Synchronize*, *Not Held*) or *out of the window*. A present
//! side counts as **changed** only when its version moved **and** its mapped-content hash differs
//! from the link's (R27). Decision table (read-only = a meeting with an external organizer, R23):
//!
//! | link | LN        | Exchange   | rule                                                        |
//! |------|-----------|------------|-------------------------------------------------------------|
//! | yes  | out of window or — | — or out of window | unlink quietly (R16)                       |
//! | yes  | gone      | gone       | unlink                                                      |
//! | yes  | gone      | present/unreported | cancel in Exchange (read-only: unlink) (R29)        |
//! | yes  | present, changed, LN origin | gone | create again in Exchange, recorded (R29, sc. 10) |
//! | yes  | present/unreported | gone | LN origin → *Not Held*; Exchange origin → delete (R29)  |
//! | yes  | changed   | not changed | update Exchange (read-only: refresh link only)             |
//! | yes  | not changed | changed  | update LN                                                   |
//! | yes  | changed   | changed    | same content → relink; else conflict policy (R28), recorded |
//! | yes  | moved, same hash | …   | relink (refresh versions, no write)                         |
//! | no   | present   | present    | same content → link; else conflict policy (sc. 2)           |
//! | no   | present   | —          | create in Exchange (Exchange-origin activity: wait)         |
//! | no   | —         | present    | stamped by us → adopt; else create in LN (R22)              |
//! | intent | present | —          | create again after a stamp lookup (R34)                     |
//! | intent | —       | —          | look the stamp up and remove what a crashed create left     |
//!
//! Deletions beyond the [`DeletionGate`] are held (R30).

use crate::calendar::{
    AttendeeRole, EventAttendee, EventFields, EventKey, EventTime, ResponseType,
};
use crate::ids::*;
use crate::model::*;
use crate::normalize::{clean, content_hash};
use crate::plan::DeletionGate;
use crate::ports::{ItemRef, Window};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Policy and window
// ---------------------------------------------------------------------------------------------

/// Who wins when both sides changed a pair differently since the last sync (R28).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The side whose change is newer (LN `lastModified` vs Exchange `LastModifiedTime`);
    /// ties go to LN.
    #[default]
    NewestWins,
    LnWins,
    ExchangeWins,
}

/// The sync window of a run (R15, R16): from the start of the current UTC day to `horizon_days`
/// later.
pub fn window_at(now: DateTime<Utc>, horizon_days: u32) -> Window {
    let day = now.date_naive();
    let start = Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
    Window {
        start,
        end: start + Duration::days(i64::from(horizon_days.max(1))),
    }
}

/// Whether `[start, end)` overlaps the window the way R15 reads: end at or after the window's
/// start, start before its end.
pub fn in_window(window: &Window, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    end >= window.start && start < window.end
}

/// Midnight of `date` in `zone`, as an instant. A day that starts inside a DST gap starts at
/// the first instant that exists.
pub fn midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let naive = date.and_time(chrono::NaiveTime::MIN);
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => zone
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc)),
    }
}

/// Parses an IANA zone name; unknown names fall back to UTC (the configuration layer validates).
pub fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse::<Tz>().ok()).unwrap_or(Tz::UTC)
}

/// The instants an event occupies; all-day dates are days of `zone`.
pub fn time_bounds(time: &EventTime, zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    match *time {
        EventTime::Timed { start, end } => (start, end),
        EventTime::AllDay { start, end } => (midnight(start, zone), midnight(end, zone)),
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping (R20)
// ---------------------------------------------------------------------------------------------

/// Reminder value × unit → minutes (R20).
pub fn reminder_minutes(a: &Activity) -> Option<u32> {
    if !a.reminder_set {
        return None;
    }
    let value = a.reminder_value.unwrap_or(0);
    let per = match a.reminder_unit.unwrap_or(IntervalUnit::Minutes) {
        IntervalUnit::Minutes => 1,
        IntervalUnit::Hours => 60,
        IntervalUnit::Days => 24 * 60,
        IntervalUnit::Weeks => 7 * 24 * 60,
    };
    Some(value.saturating_mul(per))
}

/// Minutes → the largest LN unit that holds them exactly (so 1440 reads "1 day" in LN).
pub fn reminder_value_unit(minutes: u32) -> (u32, IntervalUnit) {
    const WEEK: u32 = 7 * 24 * 60;
    const DAY: u32 = 24 * 60;
    if minutes == 0 {
        (0, IntervalUnit::Minutes)
    } else if minutes.is_multiple_of(WEEK) {
        (minutes / WEEK, IntervalUnit::Weeks)
    } else if minutes.is_multiple_of(DAY) {
        (minutes / DAY, IntervalUnit::Days)
    } else if minutes.is_multiple_of(60) {
        (minutes / 60, IntervalUnit::Hours)
    } else {
        (minutes, IntervalUnit::Minutes)
    }
}

/// The mapped fields of an LN activity (R20). All-day activities are midnight-to-midnight in
/// `zone` (the environment's), read back as dates so no conversion shifts them by a day.
pub fn fields_from_activity(a: &Activity, zone: Tz) -> EventFields {
    let time = if a.all_day {
        let start = a.start.with_timezone(&zone).date_naive();
        let mut end = a.end.with_timezone(&zone).date_naive();
        if end <= start {
            end = start + Duration::days(1);
        }
        EventTime::AllDay { start, end }
    } else {
        EventTime::Timed {
            start: a.start,
            end: a.end,
        }
    };
    EventFields {
        subject: clean(&a.subject),
        location: clean(&a.location),
        body: clean(&a.information),
        time,
        reminder_minutes: reminder_minutes(a),
        show_as: a.show_time_as,
        is_call: a.activity_type == ActivityType::Call,
    }
}

/// Normalises fields read from Exchange the way [`fields_from_activity`] does for LN.
pub fn normalize_fields(f: &EventFields) -> EventFields {
    EventFields {
        subject: clean(&f.subject),
        location: clean(&f.location),
        body: clean(&f.body),
        ..f.clone()
    }
}

/// The activity patch that makes LN hold `f` (a full overwrite of the mapped fields).
pub fn patch_from_fields(f: &EventFields, zone: Tz) -> crate::ports::ActivityPatch {
    let (start, end) = time_bounds(&f.time, zone);
    let (value, unit) = reminder_value_unit(f.reminder_minutes.unwrap_or(0));
    crate::ports::ActivityPatch {
        subject: Some(clean(&f.subject)),
        location: Some(clean(&f.location)),
        information: Some(clean(&f.body)),
        all_day: Some(matches!(f.time, EventTime::AllDay { .. })),
        start: Some(start),
        end: Some(end),
        reminder_set: Some(f.reminder_minutes.is_some()),
        reminder_value: Some(f.reminder_minutes.map(|_| value)),
        reminder_unit: Some(f.reminder_minutes.map(|_| unit)),
        show_time_as: Some(f.show_as),
        status: None,
        synchronize: None,
        // The "Call" category (R20): only Appointment ↔ Call, never a Task or Mailing.
        activity_type: Some(if f.is_call {
            ActivityType::Call
        } else {
            ActivityType::Appointment
        }),
    }
}

/// LN role of an attendee line → Exchange role (R18); the organizer line is not an attendee.
pub fn role_of(attendance: Attendance) -> Option<AttendeeRole> {
    match attendance {
        Attendance::Required => Some(AttendeeRole::Required),
        Attendance::Optional => Some(AttendeeRole::Optional),
        Attendance::Resource => Some(AttendeeRole::Resource),
        Attendance::MeetingOrganizer => None,
    }
}

pub fn attendance_of(role: AttendeeRole) -> Attendance {
    match role {
        AttendeeRole::Required => Attendance::Required,
        AttendeeRole::Optional => Attendance::Optional,
        AttendeeRole::Resource => Attendance::Resource,
    }
}

/// An Exchange answer as LN *Attendance Status* (R20, R21); "no answer" and the organizer's own
/// entry carry nothing to copy.
pub fn status_of(response: ResponseType) -> Option<AttendanceStatus> {
    match response {
        ResponseType::Accept => Some(AttendanceStatus::Accepted),
        ResponseType::Tentative => Some(AttendanceStatus::Tentative),
        ResponseType::Decline => Some(AttendanceStatus::Declined),
        ResponseType::None | ResponseType::Organizer => None,
    }
}

/// What is compared and hashed on both sides (R27): the mapped fields and the set of invited
/// attendees (address and role). The owner's own address is left out on both sides: LN holds
/// them as the *Meeting Organizer* line, Exchange as the organizer (or, for an external
/// organizer, as an attendee).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContent {
    pub fields: EventFields,
    pub attendees: Vec<(String, AttendeeRole)>,
}

impl EventContent {
    pub fn new(fields: EventFields, attendees: &[EventAttendee], owner_email: &str) -> Self {
        let mut set: Vec<(String, AttendeeRole)> = attendees
            .iter()
            .filter(|a| a.email != owner_email)
            .map(|a| (a.email.clone(), a.role))
            .collect();
        set.sort();
        set.dedup();
        Self {
            fields: normalize_fields(&fields),
            attendees: set,
        }
    }

    pub fn hash(&self) -> ContentHash {
        content_hash(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Ownership (docs/calendar.md) and attendee matching (R5, R18, R23)
// ---------------------------------------------------------------------------------------------

/// Who is who: active sync users and LN employees, for ownership and attendee matching.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    users_by_email: HashMap<String, SyncUser>,
    employees: HashMap<EmployeeCode, Employee>,
    employee_by_email: HashMap<String, EmployeeCode>,
}

/// Why an LN activity is not sent to Exchange (R17, R18, R40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOwned {
    NoOrganizer,
    /// The organizer employee has no user or no e-mail in LN.
    OrganizerUnknown(String),
    /// The organizer's e-mail differs only in case from a sync user's (R5).
    CaseMismatch {
        employee: String,
        email: String,
    },
    OrganizerNotSyncUser(String),
}

impl std::fmt::Display for NotOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOwned::NoOrganizer => f.write_str("the activity has no Meeting Organizer attendee"),
            NotOwned::OrganizerUnknown(e) => write!(
                f,
                "the Meeting Organizer {e} is not an employee with a user and an e-mail"
            ),
            NotOwned::CaseMismatch { employee, email } => write!(
                f,
                "the e-mail of organizer {employee} ({email}) differs in case from the sync user's address (R5)"
            ),
            NotOwned::OrganizerNotSyncUser(e) => {
                write!(f, "the Meeting Organizer {e} is not an active sync user")
            }
        }
    }
}

impl Directory {
    pub fn new(users: &[SyncUser], employees: &[Employee]) -> Self {
        let users_by_email = users
            .iter()
            .filter(|u| u.active && !u.email.as_str().is_empty())
            .map(|u| (u.email.as_str().to_owned(), u.clone()))
            .collect();
        let employee_by_email = employees
            .iter()
            .filter_map(|e| e.email.clone().map(|m| (m, e.employee.clone())))
            .collect();
        Self {
            users_by_email,
            employees: employees
                .iter()
                .map(|e| (e.employee.clone(), e.clone()))
                .collect(),
            employee_by_email,
        }
    }

    /// The active sync user with exactly this address (R5: case-sensitive).
    pub fn user_by_email(&self, email: &str) -> Option<&SyncUser> {
        self.users_by_email.get(email)
    }

    fn case_twin(&self, email: &str) -> Option<&SyncUser> {
        self.users_by_email
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(email) && k.as_str() != email)
            .map(|(_, u)| u)
    }

    /// The sync user an employee attendee line stands for (R5), or why not.
    pub fn employee_user(&self, code: &str) -> Result<&SyncUser, NotOwned> {
        let emp = self
            .employees
            .get(&EmployeeCode::new(code))
            .filter(|e| e.user.is_some())
            .ok_or_else(|| NotOwned::OrganizerUnknown(code.to_owned()))?;
        let email = emp
            .email
            .as_deref()
            .ok_or_else(|| NotOwned::OrganizerUnknown(code.to_owned()))?;
        if let Some(u) = self.user_by_email(email) {
            return Ok(u);
        }
        if self.case_twin(email).is_some() {
            return Err(NotOwned::CaseMismatch {
                employee: code.to_owned(),
                email: email.to_owned(),
            });
        }
        Err(NotOwned::OrganizerNotSyncUser(code.to_owned()))
    }

    /// The employee with this e-mail whose address is an active sync user's (R5, R23).
    pub fn employee_for_email(&self, email: &str) -> Option<&Employee> {
        self.user_by_email(email)?;
        let code = self.employee_by_email.get(email)?;
        self.employees.get(code).filter(|e| e.user.is_some())
    }

    /// The LN user code an organizer line points at, for recording problems under it.
    pub fn employee_user_id(&self, code: &str) -> Option<&UserId> {
        self.employees
            .get(&EmployeeCode::new(code))
            .and_then(|e| e.user.as_ref())
    }

    /// The owning sync user of an LN activity: the *Meeting Organizer* employee's (R17, R18).
    pub fn activity_owner(&self, a: &Activity) -> Result<&SyncUser, NotOwned> {
        let org = a
            .attendees
            .iter()
            .find(|l| l.attendance == Attendance::MeetingOrganizer)
            .ok_or(NotOwned::NoOrganizer)?;
        match (org.attendee_type, org.attendee.as_deref()) {
            (AttendeeType::Employee, Some(code)) => self.employee_user(code),
            _ => Err(NotOwned::OrganizerNotSyncUser(
                org.full_name.clone().unwrap_or_default(),
            )),
        }
    }

    /// The owning sync user of an Exchange event: the organizer when a sync user, else the
    /// first attendee who is (organizer of record, R23); a plain appointment belongs to the
    /// mailbox it is in.
    pub fn event_owner<'a>(
        &'a self,
        organizer: Option<&str>,
        attendees: &[EventAttendee],
        mailbox_user: &'a SyncUser,
    ) -> &'a SyncUser {
        if let Some(o) = organizer
            && let Some(u) = self.user_by_email(o)
        {
            return u;
        }
        attendees
            .iter()
            .find_map(|a| self.user_by_email(&a.email))
            .unwrap_or(mailbox_user)
    }

    /// The invited attendees of an activity as Exchange attendees (R18), and the lines that
    /// can't be invited with the reason (R5, R40).
    pub fn invitees(&self, a: &Activity) -> (Vec<EventAttendee>, Vec<(u32, String)>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for line in a.attendees.iter().filter(|l| l.invite) {
            let Some(role) = role_of(line.attendance) else {
                continue;
            };
            let email = match (line.attendee_type, line.attendee.as_deref()) {
                (AttendeeType::Employee, Some(code)) => {
                    let emp_email = self
                        .employees
                        .get(&EmployeeCode::new(code))
                        .and_then(|e| e.email.clone())
                        .or_else(|| clean(&line.email));
                    match emp_email {
                        Some(m)
                            if self.user_by_email(&m).is_none() && self.case_twin(&m).is_some() =>
                        {
                            problems.push((
                                line.line,
                                format!(
                                    "attendee {code}: e-mail {m} differs in case from the sync user's address (R5); not synchronized"
                                ),
                            ));
                            continue;
                        }
                        other => other,
                    }
                }
                _ => clean(&line.email),
            };
            let Some(email) = email else {
                problems.push((
                    line.line,
                    format!(
                        "attendee line {} ({}) has no e-mail; not invited",
                        line.line,
                        line.full_name.clone().unwrap_or_default()
                    ),
                ));
                continue;
            };
            out.push(EventAttendee {
                email,
                name: clean(&line.full_name),
                role,
                response: ResponseType::None,
            });
        }
        (out, problems)
    }
}

// ---------------------------------------------------------------------------------------------
// The pairs
// ---------------------------------------------------------------------------------------------

/// An LN activity that takes part in sync, as this run read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LnEvent {
    pub key: ActivityKey,
    pub content: EventContent,
    pub hash: ContentHash,
    pub version: LnVersion,
    pub modified: DateTime<Utc>,
    pub origin: Origin,
    pub attendees: Vec<EventAttendee>,
    /// End instant, kept in the link for the window roll (R16).
    pub end: DateTime<Utc>,
}

/// An Exchange event in the owner's calendar, as this run read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExEvent {
    pub item: ItemRef,
    pub key: EventKey,
    pub series_id: Option<ExchangeItemId>,
    pub content: EventContent,
    pub hash: ContentHash,
    pub modified: DateTime<Utc>,
    /// The activity key of our `CrmId` stamp, when lnsync created the item.
    pub stamped: Option<ActivityKey>,
    pub organizer: Option<String>,
    pub attendees: Vec<EventAttendee>,
    pub time_zone: Option<String>,
    pub end: DateTime<Utc>,
}

/// Why a side no longer holds the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Deleted,
    /// LN: lost *Synchronize* (or is no longer an appointment or call).
    NotSynchronized,
    /// LN: status *Not Held*; Exchange: cancelled by the organizer.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Side<T> {
    /// This run's feed did not mention the item: it did not change.
    Unreported,
    Present(T),
    Gone(Gone),
    /// Left the window (R16).
    OutOfWindow,
}

impl<T> Side<T> {
    pub fn present(&self) -> Option<&T> {
        match self {
            Side::Present(t) => Some(t),
            _ => None,
        }
    }
}

/// One pair as the service assembled it.
#[derive(Debug, Clone, PartialEq)]
pub struct PairInput {
    /// The link (or create intent) in the owner's partition, if any.
    pub link: Option<Link>,
    pub ln: Side<LnEvent>,
    pub ex: Side<ExEvent>,
}

/// What to do with one pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Save `link` (versions/hashes refreshed, or a new link between equal items); no write.
    Relink(Link),
    /// Create the meeting in the owner's calendar. `intent`: a previous create may have
    /// happened, so look the stamp up first (R34).
    CreateExchange {
        ln: LnEvent,
        intent: bool,
    },
    UpdateExchange {
        link: Link,
        ln: LnEvent,
    },
    /// Cancel the meeting (R29); a deletion.
    CancelExchange {
        link: Link,
    },
    CreateLn {
        ex: ExEvent,
    },
    /// An item carrying our stamp but no link: a create whose link was lost. Adopt it if the
    /// activity still qualifies, cancel it otherwise.
    AdoptStamped {
        ex: ExEvent,
        activity: ActivityKey,
    },
    UpdateLn {
        link: Link,
        ex: ExEvent,
    },
    /// Set *Not Held* (R29); a deletion.
    LnNotHeld {
        link: Link,
    },
    /// Delete an Exchange-originated activity (R29); a deletion.
    DeleteLn {
        link: Link,
    },
    /// Drop the link without touching either side (R16).
    Unlink {
        link: Link,
    },
    /// A create intent whose activity no longer qualifies: remove what a crash left.
    OrphanCheck {
        intent: Link,
    },
}

impl Action {
    pub fn is_deletion(&self) -> bool {
        matches!(
            self,
            Action::CancelExchange { .. } | Action::LnNotHeld { .. } | Action::DeleteLn { .. }
        )
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Action::Relink(_) | Action::Unlink { .. })
    }

    pub fn ln_key(&self) -> LnKey {
        match self {
            Action::Relink(l)
            | Action::UpdateExchange { link: l, .. }
            | Action::CancelExchange { link: l }
            | Action::UpdateLn { link: l, .. }
            | Action::LnNotHeld { link: l }
            | Action::DeleteLn { link: l }
            | Action::Unlink { link: l }
            | Action::OrphanCheck { intent: l } => l.ln_key.clone(),
            Action::CreateExchange { ln, .. } => LnKey::from(&ln.key),
            Action::AdoptStamped { activity, .. } => LnKey::from(activity),
            Action::CreateLn { ex } => LnKey::new(ex.key.external_reference()),
        }
    }
}

/// A conflict (R28) or a deletion that lost to a change (scenario 10), recorded with both
/// versions (R40).
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub key: LnKey,
    pub detail: String,
}

/// One pair's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub pair: usize,
    pub action: Action,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalendarPlan {
    pub actions: Vec<Planned>,
    /// Deletions held by the gate (R30).
    pub held: Vec<Planned>,
    pub conflicts: Vec<Conflict>,
    pub skipped: u32,
}

impl CalendarPlan {
    pub fn writes(&self) -> usize {
        self.actions.iter().filter(|p| p.action.is_write()).count()
    }
}

pub struct CalendarPlanInput<'a> {
    pub env: &'a EnvironmentId,
    pub user: &'a SyncUser,
    pub now: DateTime<Utc>,
    pub pairs: &'a [PairInput],
    pub policy: ConflictPolicy,
    pub gate: DeletionGate,
    /// All of the user's event links, for the gate's fraction.
    pub linked_total: u64,
    pub release_held: bool,
}

/// Plans every pair, then applies the deletion gate.
pub fn plan_calendar(input: &CalendarPlanInput<'_>) -> CalendarPlan {
    let mut plan = CalendarPlan::default();
    let mut deletions = Vec::new();
    for (i, pair) in input.pairs.iter().enumerate() {
        let (action, conflict) = decide(input, pair);
        plan.conflicts.extend(conflict);
        match action {
            None => plan.skipped += 1,
            Some(a) if a.is_deletion() => deletions.push(Planned { pair: i, action: a }),
            Some(a) => plan.actions.push(Planned { pair: i, action: a }),
        }
    }
    if !input.release_held && input.gate.trips(deletions.len(), input.linked_total) {
        plan.held = deletions;
    } else {
        plan.actions.extend(deletions);
    }
    plan
}

/// A new link between an LN activity and an Exchange event.
pub fn new_link(input: &CalendarPlanInput<'_>, ln: &LnEvent, ex: &ExEvent, origin: Origin) -> Link {
    Link {
        env: input.env.clone(),
        user: input.user.user.clone(),
        kind: LinkKind::Event,
        ln_key: LnKey::from(&ln.key),
        exchange_id: ex.item.id.clone(),
        exchange_version: ex.item.version.clone(),
        ln_version: Some(ln.version.clone()),
        ln_modified: Some(ln.modified),
        ln_hash: ln.hash.clone(),
        exchange_hash: ex.hash.clone(),
        ical_uid: Some(ex.key.uid.clone()),
        origin,
        organizer: Some(MailboxAddress::new(
            ex.organizer
                .clone()
                .unwrap_or_else(|| input.user.email.as_str().to_owned()),
        )),
        last_error: None,
        updated_at: input.now,
        event: Some(EventLink {
            original_start: ex.key.original_start,
            series_id: ex.series_id.clone(),
            end: ex.end.max(ln.end),
        }),
    }
}

/// A link that knows only its LN side, for an action on an activity whose link was lost.
fn ln_only_link(input: &CalendarPlanInput<'_>, ln: &LnEvent) -> Link {
    Link {
        env: input.env.clone(),
        user: input.user.user.clone(),
        kind: LinkKind::Event,
        ln_key: LnKey::from(&ln.key),
        exchange_id: ExchangeItemId::new(""),
        exchange_version: ExchangeVersion::new(""),
        ln_version: Some(ln.version.clone()),
        ln_modified: Some(ln.modified),
        ln_hash: ln.hash.clone(),
        exchange_hash: ContentHash::unknown(),
        ical_uid: None,
        origin: ln.origin,
        organizer: None,
        last_error: None,
        updated_at: input.now,
        event: None,
    }
}

fn refresh_ln(link: &Link, ln: &LnEvent, now: DateTime<Utc>) -> Link {
    let mut l = link.clone();
    l.ln_version = Some(ln.version.clone());
    l.ln_modified = Some(ln.modified);
    l.ln_hash = ln.hash.clone();
    if let Some(e) = l.event.as_mut() {
        e.end = ln.end;
    }
    l.updated_at = now;
    l
}

fn refresh_ex(link: &Link, ex: &ExEvent, now: DateTime<Utc>) -> Link {
    let mut l = link.clone();
    l.exchange_id = ex.item.id.clone();
    l.exchange_version = ex.item.version.clone();
    l.exchange_hash = ex.hash.clone();
    l.ical_uid = Some(ex.key.uid.clone());
    if let Some(e) = l.event.as_mut() {
        e.end = ex.end;
        e.series_id = ex.series_id.clone().or(e.series_id.take());
    }
    l.updated_at = now;
    l
}

/// A link we do not organize in Exchange (external organizer, R23): never written to Exchange.
pub fn is_read_only(link: &Link, owner: &SyncUser) -> bool {
    link.organizer.as_ref().is_some_and(|o| o != &owner.email)
}

fn ln_wins(policy: ConflictPolicy, ln: &LnEvent, ex: &ExEvent) -> bool {
    match policy {
        ConflictPolicy::LnWins => true,
        ConflictPolicy::ExchangeWins => false,
        ConflictPolicy::NewestWins => ln.modified >= ex.modified,
    }
}

fn conflict(
    key: LnKey,
    ln: &LnEvent,
    ex: &ExEvent,
    ln_won: bool,
    policy: ConflictPolicy,
) -> Conflict {
    let side = |c: &EventContent| serde_json::to_string(c).unwrap_or_default();
    Conflict {
        key,
        detail: format!(
            "changed on both sides; {} wins ({policy:?}). LN (modified {}): {} | Exchange (modified {}): {}",
            if ln_won { "LN" } else { "Exchange" },
            ln.modified.to_rfc3339(),
            side(&ln.content),
            ex.modified.to_rfc3339(),
            side(&ex.content),
        ),
    }
}

/// The decision table of the module docs, for one pair.
pub fn decide(
    input: &CalendarPlanInput<'_>,
    pair: &PairInput,
) -> (Option<Action>, Option<Conflict>) {
    let now = input.now;
    let (link, intent) = match &pair.link {
        Some(l) if l.is_intent() => (None, Some(l)),
        other => (other.as_ref(), None),
    };
    let Some(link) = link else {
        return decide_unlinked(input, pair, intent);
    };
    let read_only = is_read_only(link, input.user);
    let origin = link.origin;
    match (&pair.ln, &pair.ex) {
        (Side::OutOfWindow, _) | (_, Side::OutOfWindow) => {
            (Some(Action::Unlink { link: link.clone() }), None)
        }
        (Side::Gone(_), Side::Gone(_)) => (Some(Action::Unlink { link: link.clone() }), None),
        (Side::Gone(_), _) if read_only => (Some(Action::Unlink { link: link.clone() }), None),
        (Side::Gone(_), _) => (Some(Action::CancelExchange { link: link.clone() }), None),
        (Side::Present(ln), Side::Gone(_))
            if origin == Origin::Ln && !read_only && ln_changed(link, ln) =>
        {
            let note = Conflict {
                key: link.ln_key.clone(),
                detail: "changed in LN and deleted in Exchange: the LN change wins and the meeting is created again (R29)".into(),
            };
            (
                Some(Action::CreateExchange {
                    ln: ln.clone(),
                    intent: false,
                }),
                Some(note),
            )
        }
        (_, Side::Gone(_)) => match origin {
            Origin::Ln => (Some(Action::LnNotHeld { link: link.clone() }), None),
            Origin::Exchange => (Some(Action::DeleteLn { link: link.clone() }), None),
        },
        (Side::Unreported, Side::Unreported) => (None, None),
        (Side::Present(ln), Side::Unreported) => {
            if !ln_changed(link, ln) {
                let moved = link.ln_version.as_ref() != Some(&ln.version);
                return (
                    moved.then(|| Action::Relink(refresh_ln(link, ln, now))),
                    None,
                );
            }
            if read_only {
                return (Some(Action::Relink(refresh_ln(link, ln, now))), None);
            }
            (
                Some(Action::UpdateExchange {
                    link: link.clone(),
                    ln: ln.clone(),
                }),
                None,
            )
        }
        (Side::Unreported, Side::Present(ex)) => {
            if !ex_changed(link, ex) {
                // The id too: it changes when the mailbox moves or its backend switches.
                let moved =
                    link.exchange_version != ex.item.version || link.exchange_id != ex.item.id;
                return (
                    moved.then(|| Action::Relink(refresh_ex(link, ex, now))),
                    None,
                );
            }
            if ex.hash == link.ln_hash {
                // Exchange now holds what LN holds (e.g. our own write whose link was lost).
                return (Some(Action::Relink(refresh_ex(link, ex, now))), None);
            }
            (
                Some(Action::UpdateLn {
                    link: link.clone(),
                    ex: ex.clone(),
                }),
                None,
            )
        }
        (Side::Present(ln), Side::Present(ex)) => {
            let lc = ln_changed(link, ln);
            let xc = ex_changed(link, ex);
            let both = refresh_ex(&refresh_ln(link, ln, now), ex, now);
            if ln.hash == ex.hash || (!lc && !xc) {
                let moved = link.ln_version.as_ref() != Some(&ln.version)
                    || link.exchange_version != ex.item.version
                    || link.exchange_id != ex.item.id
                    || link.ln_hash != ln.hash
                    || link.exchange_hash != ex.hash;
                return (moved.then_some(Action::Relink(both)), None);
            }
            let ln_first = match (lc, xc) {
                (true, false) => true,
                (false, true) => false,
                _ => ln_wins(input.policy, ln, ex),
            };
            let note =
                (lc && xc).then(|| conflict(link.ln_key.clone(), ln, ex, ln_first, input.policy));
            if ln_first {
                if read_only {
                    return (Some(Action::Relink(refresh_ln(link, ln, now))), note);
                }
                // The link keeps Exchange's current version, so the write is not refused.
                let mut l = link.clone();
                l.exchange_version = ex.item.version.clone();
                l.exchange_id = ex.item.id.clone();
                (
                    Some(Action::UpdateExchange {
                        link: l,
                        ln: ln.clone(),
                    }),
                    note,
                )
            } else {
                let mut l = link.clone();
                l.ln_version = Some(ln.version.clone());
                (
                    Some(Action::UpdateLn {
                        link: l,
                        ex: ex.clone(),
                    }),
                    note,
                )
            }
        }
    }
}

fn ln_changed(link: &Link, ln: &LnEvent) -> bool {
    link.ln_version.as_ref() != Some(&ln.version) && link.ln_hash != ln.hash
}

fn ex_changed(link: &Link, ex: &ExEvent) -> bool {
    link.exchange_version != ex.item.version && link.exchange_hash != ex.hash
}

fn decide_unlinked(
    input: &CalendarPlanInput<'_>,
    pair: &PairInput,
    intent: Option<&Link>,
) -> (Option<Action>, Option<Conflict>) {
    match (&pair.ln, &pair.ex) {
        (Side::Present(ln), Side::Present(ex)) => {
            let origin = if ex.stamped.is_some() {
                Origin::Ln
            } else {
                ln.origin
            };
            let link = new_link(input, ln, ex, origin);
            if ln.hash == ex.hash {
                return (Some(Action::Relink(link)), None);
            }
            // Our own stamp: the last write was ours from LN, so LN holds the truth.
            let ln_first = ex.stamped.is_some() || ln_wins(input.policy, ln, ex);
            let note = ex
                .stamped
                .is_none()
                .then(|| conflict(link.ln_key.clone(), ln, ex, ln_first, input.policy));
            if ln_first && !is_read_only(&link, input.user) {
                let mut l = link;
                l.exchange_hash = ContentHash::unknown();
                (
                    Some(Action::UpdateExchange {
                        link: l,
                        ln: ln.clone(),
                    }),
                    note,
                )
            } else {
                let mut l = link;
                l.ln_hash = ContentHash::unknown();
                (
                    Some(Action::UpdateLn {
                        link: l,
                        ex: ex.clone(),
                    }),
                    note,
                )
            }
        }
        (Side::Present(ln), Side::Gone(_)) if ln.origin == Origin::Exchange => {
            // Created from an event that is gone now (its link was lost in between): R29.
            (
                Some(Action::DeleteLn {
                    link: ln_only_link(input, ln),
                }),
                None,
            )
        }
        (Side::Present(ln), _) => {
            if ln.origin == Origin::Exchange && intent.is_none() {
                // Created from an Exchange event whose link was lost: the event will be
                // reported again (its cursor did not move), so never create a second one.
                return (None, None);
            }
            (
                Some(Action::CreateExchange {
                    ln: ln.clone(),
                    intent: intent.is_some(),
                }),
                None,
            )
        }
        (_, Side::Present(ex)) => match &ex.stamped {
            Some(key) => (
                Some(Action::AdoptStamped {
                    ex: ex.clone(),
                    activity: key.clone(),
                }),
                None,
            ),
            None if intent.is_some() => (None, None),
            None => (Some(Action::CreateLn { ex: ex.clone() }), None),
        },
        (Side::Gone(_), _) | (Side::OutOfWindow, _) => match intent {
            Some(i) => (Some(Action::OrphanCheck { intent: i.clone() }), None),
            None => (None, None),
        },
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests;
