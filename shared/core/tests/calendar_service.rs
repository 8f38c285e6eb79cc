//! The calendar service over in-memory ports: one named test per rule R15–R30 and the core-level
//! scenarios of `shared/spec/scenarios.md`.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::executor::block_on;
use lnsync_core::calendar::*;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::plan::calendar::{ConflictPolicy, window_at};
use lnsync_core::ports::{StateStore, Window};
use lnsync_core::service::{CalendarSync, SyncOptions, UserRun};
use lnsync_core::testing::{ManualClock, MemoryLn, MemoryMailbox, MemoryStore, UserEvent};
use std::sync::atomic::Ordering;

const USERS: [&str; 3] = ["anna", "ben", "cleo"];

struct World {
    env: EnvironmentId,
    ln: MemoryLn,
    mailbox: MemoryMailbox,
    store: MemoryStore,
    clock: ManualClock,
    options: SyncOptions,
    users: Vec<SyncUser>,
}

fn email(u: &str) -> String {
    format!("{u}@corp.example")
}

fn addr(u: &str) -> MailboxAddress {
    MailboxAddress::new(email(u))
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Day `d` after today at `h` o'clock.
fn at(d: i64, h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::days(d)
        + Duration::hours(h)
}

fn line(attendance: Attendance, who: &str, invite: bool) -> Attendee {
    let employee = USERS.contains(&who) || who.starts_with("emp-");
    Attendee {
        activity: ActivityKey::new(""),
        line: 0,
        attendance,
        attendee_type: if employee {
            AttendeeType::Employee
        } else {
            AttendeeType::Other
        },
        attendee: employee.then(|| format!("E-{who}")),
        full_name: Some(who.to_owned()),
        email: Some(if who.contains('@') {
            who.to_owned()
        } else {
            email(who)
        }),
        attendance_status: AttendanceStatus::None,
        invite,
        sent_to_synchronizer: false,
        synchronized: false,
        version: None,
    }
}

/// An LN appointment on day `d` at 10:00 organized by `organizer` with invited `attendees`.
fn appointment(subject: &str, d: i64, organizer: &str, attendees: &[&str]) -> Activity {
    let mut lines = vec![line(Attendance::MeetingOrganizer, organizer, false)];
    lines.extend(
        attendees
            .iter()
            .map(|a| line(Attendance::Required, a, true)),
    );
    Activity {
        activity: ActivityKey::new(""),
        activity_type: ActivityType::Appointment,
        subject: Some(subject.into()),
        location: Some("Room 1".into()),
        information: None,
        all_day: false,
        start: at(d, 10),
        end: at(d, 11),
        reminder_set: true,
        reminder_value: Some(15),
        reminder_unit: Some(IntervalUnit::Minutes),
        show_time_as: ShowTimeAs::Busy,
        status: ActivityStatus::Planned,
        synchronize: true,
        contact: None,
        business_partner: None,
        external_reference: None,
        origin: Origin::Ln,
        last_modified: DateTime::default(),
        version: LnVersion::new(""),
        attendees: lines,
    }
}

fn fields(subject: &str, d: i64) -> EventFields {
    EventFields {
        subject: Some(subject.into()),
        location: None,
        body: None,
        time: EventTime::Timed {
            start: at(d, 14),
            end: at(d, 15),
        },
        reminder_minutes: Some(15),
        show_as: ShowTimeAs::Busy,
        is_call: false,
    }
}

fn meeting(subject: &str, d: i64, attendees: &[&str]) -> UserEvent {
    let mut e = UserEvent::new(fields(subject, d));
    e.attendees = attendees
        .iter()
        .map(|a| {
            (
                if a.contains('@') {
                    (*a).to_owned()
                } else {
                    email(a)
                },
                AttendeeRole::Required,
            )
        })
        .collect();
    e
}

impl World {
    fn new() -> Self {
        let users: Vec<SyncUser> = USERS
            .iter()
            .map(|u| SyncUser {
                user: UserId::new(*u),
                name: (*u).to_owned(),
                active: true,
                email: addr(u),
            })
            .collect();
        let ln = MemoryLn::default();
        ln.set_users(users.clone());
        ln.set_employees(
            USERS
                .iter()
                .map(|u| Employee {
                    employee: EmployeeCode::new(format!("E-{u}")),
                    name: (*u).to_owned(),
                    user: Some(UserId::new(*u)),
                    email: Some(email(u)),
                })
                .chain(std::iter::once(Employee {
                    employee: EmployeeCode::new("E-emp-dora"),
                    name: "dora".into(),
                    user: Some(UserId::new("dora")),
                    email: Some("dora@corp.example".into()),
                }))
                .collect(),
        );
        let mailbox = MemoryMailbox::default();
        for u in USERS {
            mailbox.host(&addr(u));
        }
        Self {
            env: EnvironmentId::new("e"),
            ln,
            mailbox,
            store: MemoryStore::default(),
            clock: ManualClock::new(t0()),
            options: SyncOptions::default(),
            users,
        }
    }

    fn run(&self) -> Vec<UserRun> {
        let sync = CalendarSync {
            env: &self.env,
            store: &self.store,
            clock: &self.clock,
            options: &self.options,
        };
        let mut runs = block_on(sync.run(&self.ln, &self.mailbox, &self.users, "test"))
            .expect("the LN feed reads");
        runs.sort_by(|a, b| a.user.cmp(&b.user));
        runs
    }

    fn run_ok(&self) -> Vec<UserRun> {
        let runs = self.run();
        for r in &runs {
            assert!(r.error.is_none(), "{} failed: {:?}", r.user, r.error);
        }
        runs
    }

    fn window(&self) -> Window {
        window_at(self.clock.now_(), 365)
    }

    fn events(&self, u: &str) -> Vec<CalendarEvent> {
        self.mailbox.events(&addr(u), &self.window())
    }

    fn organized(&self, u: &str) -> Vec<CalendarEvent> {
        self.events(u)
            .into_iter()
            .filter(|e| e.is_organizer)
            .collect()
    }

    fn links(&self, u: &str) -> Vec<Link> {
        self.store.all_links(&self.env, &UserId::new(u))
    }

    fn problems(&self, u: &str) -> Vec<ItemProblem> {
        block_on(self.store.problems(&self.env, &UserId::new(u))).unwrap_or_default()
    }

    fn writes(&self) -> (usize, u64) {
        (self.mailbox.calendar_writes(), self.ln.calendar_writes())
    }
}

trait Now {
    fn now_(&self) -> DateTime<Utc>;
}
impl Now for ManualClock {
    fn now_(&self) -> DateTime<Utc> {
        lnsync_core::ports::Clock::now(self)
    }
}

fn total_writes(runs: &[UserRun]) -> u32 {
    runs.iter().map(|r| r.counts.writes()).sum()
}

// ---------------------------------------------------------------------------------------------
// R15–R17: scope and window
// ---------------------------------------------------------------------------------------------

#[test]
fn r15_only_appointments_and_calls_in_the_window_are_synchronized() {
    let w = World::new();
    w.ln.upsert_activity(appointment("future", 3, "anna", &["ben"]));
    let mut call = appointment("call", 4, "anna", &["ben"]);
    call.activity_type = ActivityType::Call;
    w.ln.upsert_activity(call);
    let mut task = appointment("task", 3, "anna", &["ben"]);
    task.activity_type = ActivityType::Task;
    w.ln.upsert_activity(task);
    w.ln.upsert_activity(appointment("past", -3, "anna", &["ben"]));
    w.run_ok();
    let mut subjects: Vec<String> = w
        .organized("anna")
        .into_iter()
        .filter_map(|e| e.fields.subject)
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["call", "future"]);
    let call = w
        .organized("anna")
        .into_iter()
        .find(|e| e.fields.subject.as_deref() == Some("call"))
        .expect("call");
    assert!(call.fields.is_call, "R20: a Call carries the category");
}

#[test]
fn r16_an_event_beyond_the_horizon_waits_and_a_passed_one_is_unlinked_quietly() {
    let mut w = World::new();
    w.options.calendar.horizon_days = 30;
    w.ln.upsert_activity(appointment("far", 40, "anna", &["ben"]));
    w.ln.upsert_activity(appointment("soon", 1, "anna", &["ben"]));
    w.run_ok();
    assert_eq!(w.organized("anna").len(), 1);
    // Eleven days later the far one has entered the window; the near one has passed.
    w.clock.advance(Duration::days(11));
    let before = w.writes();
    w.run_ok();
    assert_eq!(w.organized("anna").len(), 1, "far entered, soon passed");
    assert_eq!(w.links("anna").len(), 1, "the passed event's link is gone");
    assert_eq!(w.writes().0, before.0 + 1, "only the new one is written");
    assert!(
        w.ln.activities()
            .iter()
            .all(|a| a.status == ActivityStatus::Planned),
        "nothing deleted in LN"
    );
}

#[test]
fn r16_an_activity_moved_into_the_past_in_ln_is_unlinked_quietly() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Workshop", 2, "anna", &["ben"]));
    w.run_ok();
    assert_eq!(w.links("anna").len(), 1);
    let ev = w.organized("anna").pop().expect("the meeting");
    w.ln.edit_activity(&key, |a| {
        a.start = at(-3, 10);
        a.end = at(-3, 11);
    });

    let before = w.writes();
    let runs = w.run_ok();
    assert!(w.links("anna").is_empty(), "unlinked");
    assert_eq!(w.writes(), before, "quietly: no write on either side");
    assert_eq!(total_writes(&runs), 0);
    assert_eq!(w.organized("anna").len(), 1, "the meeting is not cancelled");
    assert!(w.events("ben").iter().all(|e| !e.is_cancelled));

    // A later Outlook edit does not write the meeting's old time back into LN, and the
    // meeting is not moved into the past either.
    w.mailbox.user_edit_event(&addr("anna"), &ev.item.id, |f| {
        f.location = Some("Room 2".into())
    });
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("still in LN");
    assert_eq!((a.start, a.status), (at(-3, 10), ActivityStatus::Planned));
    assert_eq!(
        w.organized("anna").len(),
        1,
        "still in Exchange, in the window"
    );
    assert!(w.links("anna").is_empty());
}

#[test]
fn r29_an_activity_changed_to_a_task_in_ln_cancels_the_meeting() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Call back", 2, "anna", &["ben"]));
    w.run_ok();
    assert_eq!(w.organized("anna").len(), 1);
    w.ln.edit_activity(&key, |a| a.activity_type = ActivityType::Task);

    w.run_ok();
    assert!(
        w.organized("anna").is_empty(),
        "no longer synchronized: cancelled as organizer"
    );
    assert!(
        w.events("ben").iter().all(|e| e.is_cancelled),
        "cancellation sent"
    );
    assert!(w.links("anna").is_empty());
    let a = w.ln.activity_now(&key).expect("the task stays in LN");
    assert_eq!(
        (a.activity_type, a.status),
        (ActivityType::Task, ActivityStatus::Planned)
    );
}

#[test]
fn r30_links_of_events_that_passed_do_not_trip_the_empty_listing_gates() {
    let w = World::new();
    // Only an Outlook event: the activity lnsync creates for it is never in a run's feed.
    w.mailbox
        .user_create_event(&addr("anna"), &meeting("Standup", 1, &[]));
    w.run_ok();
    assert_eq!(w.ln.activities().len(), 1);
    assert_eq!(w.links("anna").len(), 1);

    w.clock.advance(Duration::days(3));
    let before = w.writes();
    w.run_ok();
    assert!(w.links("anna").is_empty(), "unlinked (R16)");
    assert_eq!(w.writes(), before, "neither side is written");
    assert_eq!(
        w.ln.activities()[0].status,
        ActivityStatus::Planned,
        "not deleted in LN"
    );

    // After a cursor reset the full listing is empty too (the event passed): no stop either.
    w.mailbox.invalidate_calendar_cursor(&addr("anna"));
    w.run_ok();
}

#[test]
fn r17_only_activities_with_synchronize_are_sent() {
    let w = World::new();
    let mut a = appointment("private note", 2, "anna", &["ben"]);
    a.synchronize = false;
    w.ln.upsert_activity(a);
    w.run_ok();
    assert!(w.organized("anna").is_empty());
}

// ---------------------------------------------------------------------------------------------
// R18–R21: LN → Exchange meetings
// ---------------------------------------------------------------------------------------------

#[test]
fn r18_scenario_16_meeting_in_the_organizers_mailbox_with_invitations() {
    let w = World::new();
    let key = w.ln.upsert_activity(appointment(
        "Review",
        2,
        "anna",
        &["ben", "cleo", "x@partner.example"],
    ));
    w.run_ok();
    let org = w.organized("anna");
    assert_eq!(
        org.len(),
        1,
        "exactly one meeting, in the organizer's mailbox"
    );
    assert_eq!(org[0].attendees.len(), 3);
    assert!(w.organized("ben").is_empty() && w.organized("cleo").is_empty());
    assert_eq!(w.events("ben").len(), 1, "ben got the invitation");
    assert_eq!(w.events("cleo").len(), 1, "cleo got the invitation");
    // R19 (scenario 16): flags.
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("activity");
    for l in a.attendees.iter().filter(|l| l.invite) {
        assert!(l.sent_to_synchronizer, "{:?} sent", l.full_name);
        assert!(l.synchronized, "{:?} synchronized once seen", l.full_name);
    }
}

#[test]
fn r19_synchronized_is_no_until_the_attendee_copy_is_seen() {
    let w = World::new();
    let key = w.ln.upsert_activity(appointment(
        "Sync",
        2,
        "cleo",
        &["anna", "x@partner.example"],
    ));
    // anna runs before cleo (alphabetical), so her copy appears only after cleo created it.
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("activity");
    let anna = a
        .attendees
        .iter()
        .find(|l| l.full_name.as_deref() == Some("anna"))
        .expect("anna");
    assert!(anna.sent_to_synchronizer);
    assert!(!anna.synchronized, "not yet seen in anna's calendar");
    let ext = a
        .attendees
        .iter()
        .find(|l| l.attendee_type == AttendeeType::Other)
        .expect("ext");
    assert!(
        ext.sent_to_synchronizer && ext.synchronized,
        "external: accepted by Exchange"
    );
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("activity");
    let anna = a
        .attendees
        .iter()
        .find(|l| l.full_name.as_deref() == Some("anna"))
        .expect("anna");
    assert!(anna.synchronized, "seen by anna's own run");
}

#[test]
fn r19_flags_after_a_meeting_is_written_read_nothing_back_and_the_next_run_only_relinks() {
    let w = World::new();
    let key = w.ln.upsert_activity(appointment(
        "Flags",
        2,
        "anna",
        &["x@partner.example", "y@partner.example"],
    ));
    w.run_ok();
    assert_eq!(
        w.ln.activity_reads.load(Ordering::SeqCst),
        0,
        "the feed's copy is the activity the meeting was written from"
    );
    assert_eq!(
        w.ln.attendee_writes.load(Ordering::SeqCst),
        2,
        "one per invitee"
    );
    let a = w.ln.activity_now(&key).expect("activity");
    assert!(
        a.attendees
            .iter()
            .filter(|l| l.invite)
            .all(|l| l.sent_to_synchronizer && l.synchronized)
    );

    // The flag writes moved LN's version, not its content: the next run refreshes the link
    // and writes nothing.
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!((w.writes(), total_writes(&runs)), (before, 0));
    let link = w.links("anna").pop().expect("link");
    assert_eq!(link.ln_version, Some(a.version.clone()));
    assert_eq!(w.ln.activity_reads.load(Ordering::SeqCst), 0);

    // An LN edit made after the flags is still seen as a change.
    w.ln.edit_activity(&key, |a| a.subject = Some("Flags v2".into()));
    w.run_ok();
    assert_eq!(
        w.organized("anna")[0].fields.subject.as_deref(),
        Some("Flags v2")
    );
}

#[test]
fn r20_mapping_reminder_show_as_all_day_in_the_environment_zone() {
    let mut w = World::new();
    w.options.calendar.time_zone = "Europe/Berlin".into();
    let mut a = appointment("Offsite", 5, "anna", &["ben"]);
    a.all_day = true;
    // Midnight to midnight in Berlin (UTC+1 in December).
    a.start = at(5, 0) - Duration::hours(1);
    a.end = at(6, 0) - Duration::hours(1);
    a.reminder_value = Some(1);
    a.reminder_unit = Some(IntervalUnit::Days);
    a.show_time_as = ShowTimeAs::OutOfOffice;
    a.information = Some("  agenda  ".into());
    w.ln.upsert_activity(a);
    w.run_ok();
    let ev = w.organized("anna").pop().expect("event");
    let day = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
    assert_eq!(
        ev.fields.time,
        EventTime::AllDay {
            start: day,
            end: day.succ_opt().expect("next")
        },
        "never shifted by a day"
    );
    assert_eq!(ev.fields.reminder_minutes, Some(1440));
    assert_eq!(ev.fields.show_as, ShowTimeAs::OutOfOffice);
    assert_eq!(ev.fields.body.as_deref(), Some("agenda"));
    // And back: an all-day event created in Exchange lands as Berlin midnights.
    let mut e = UserEvent::new(EventFields {
        time: EventTime::AllDay {
            start: day,
            end: day.succ_opt().expect("next"),
        },
        reminder_minutes: Some(120),
        ..fields("Holiday", 5)
    });
    e.time_zone = Some("Europe/Berlin".into());
    w.mailbox.user_create_event(&addr("ben"), &e);
    w.run_ok();
    let h =
        w.ln.activities()
            .into_iter()
            .find(|a| a.subject.as_deref() == Some("Holiday"))
            .expect("created in LN");
    assert!(h.all_day);
    assert_eq!(h.start, at(5, 0) - Duration::hours(1));
    assert_eq!(
        (h.reminder_value, h.reminder_unit),
        (Some(2), Some(IntervalUnit::Hours))
    );
}

#[test]
fn r21_scenario_19_a_response_updates_attendance_status_only() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Demo", 2, "anna", &["ben"]));
    w.run_ok();
    w.run_ok();
    let copy = w.events("ben").pop().expect("ben's copy");
    w.mailbox
        .respond(&addr("ben"), &copy.item.id, ResponseType::Accept);
    let before = w.mailbox.calendar_writes();
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("activity");
    let ben = a
        .attendees
        .iter()
        .find(|l| l.full_name.as_deref() == Some("ben"))
        .expect("ben");
    assert_eq!(ben.attendance_status, AttendanceStatus::Accepted);
    assert_eq!(
        w.mailbox.calendar_writes(),
        before,
        "no new meeting, no invitation"
    );
    assert_eq!(w.organized("anna").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// R22–R26: Exchange → LN
// ---------------------------------------------------------------------------------------------

#[test]
fn r22_an_exchange_event_becomes_a_planned_appointment_with_synchronize() {
    let w = World::new();
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("Lunch", 3, &[]));
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1);
    let a = &acts[0];
    assert_eq!(a.activity_type, ActivityType::Appointment);
    assert_eq!(a.status, ActivityStatus::Planned);
    assert!(a.synchronize);
    assert_eq!(a.origin, Origin::Exchange);
    assert!(a.external_reference.is_some());
    assert_eq!(w.links("ben").len(), 1);
}

#[test]
fn r23_attendees_are_matched_and_an_external_organizer_is_read_only() {
    let w = World::new();
    let uid = w.mailbox.deliver_external(
        "boss@partner.example",
        &meeting("Partner call", 4, &["ben", "anna", "guest@partner.example"]),
    );
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1, "one activity for all copies (R24)");
    let a = &acts[0];
    let org = a
        .attendees
        .iter()
        .find(|l| l.attendance == Attendance::MeetingOrganizer)
        .expect("organizer of record");
    assert_eq!(
        org.attendee.as_deref(),
        Some("E-ben"),
        "first synced attendee"
    );
    let other: Vec<_> = a
        .attendees
        .iter()
        .filter(|l| l.attendee_type == AttendeeType::Other)
        .filter_map(|l| l.email.clone())
        .collect();
    assert!(other.contains(&"boss@partner.example".to_owned()));
    assert!(other.contains(&"guest@partner.example".to_owned()));
    assert!(
        a.attendees
            .iter()
            .any(|l| l.attendee.as_deref() == Some("E-anna"))
    );
    // An LN edit is never pushed to a meeting we do not organize.
    w.ln.edit_activity(&a.activity, |a| a.subject = Some("LN edit".into()));
    let before = w.mailbox.calendar_writes();
    w.run_ok();
    assert_eq!(w.mailbox.calendar_writes(), before);
    // The external organizer's change does reach LN.
    w.mailbox
        .external_update(&uid, |f| f.subject = Some("Moved".into()));
    w.run_ok();
    assert_eq!(
        w.ln.activity_now(&a.activity).and_then(|a| a.subject),
        Some("Moved".into())
    );
}

#[test]
fn r24_scenario_17_one_meeting_one_activity_with_all_attendees() {
    let w = World::new();
    w.mailbox
        .user_create_event(&addr("anna"), &meeting("Kickoff", 2, &["ben", "cleo"]));
    w.run_ok();
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].attendees.len(), 3, "organizer + two attendees");
    assert!(w.links("ben").is_empty() && w.links("cleo").is_empty());
    assert_eq!(w.links("anna").len(), 1);
}

#[test]
fn r25_scenarios_21_22_series_occurrences_moves_deletions_and_roll() {
    let mut w = World::new();
    w.options.calendar.horizon_days = 21;
    let mut s = meeting("Weekly", 1, &[]);
    s.recurrence = Some((7, 10));
    let master = w.mailbox.user_create_event(&addr("ben"), &s);
    w.run_ok();
    let n0 = w.ln.activities().len();
    assert_eq!(n0, 3, "days 1, 8, 15 are inside a 21-day window");
    // Move one occurrence (scenario 22).
    let occ = w.events("ben")[1].clone();
    w.mailbox.user_edit_event(&addr("ben"), &occ.item.id, |f| {
        f.time = EventTime::Timed {
            start: at(9, 16),
            end: at(9, 17),
        }
    });
    let before: Vec<Activity> = w.ln.activities();
    w.run_ok();
    let after = w.ln.activities();
    let changed: Vec<_> = after
        .iter()
        .filter(|a| {
            !before
                .iter()
                .any(|b| b.start == a.start && b.activity == a.activity)
        })
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the moved occurrence's appointment moves"
    );
    assert_eq!(changed[0].start, at(9, 16));
    // Delete another occurrence.
    let occ = w.events("ben")[2].clone();
    w.mailbox.user_delete_event(&addr("ben"), &occ.item.id);
    w.run_ok();
    assert_eq!(
        w.ln.activities().len(),
        2,
        "the deleted occurrence's appointment is gone"
    );
    // The window rolls a week: one more occurrence, no duplicates.
    w.clock.advance(Duration::days(7));
    w.run_ok();
    let acts = w.ln.activities();
    let mut refs: Vec<_> = acts
        .iter()
        .filter_map(|a| a.external_reference.clone())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), acts.len(), "no duplicates");
    assert_eq!(acts.len(), 3);
    // Deleting the master removes the rest; the passed occurrence was unlinked and stays (R16).
    w.mailbox.user_delete_event(&addr("ben"), &master);
    w.run_ok();
    let left = w.ln.activities();
    assert_eq!(left.len(), 1);
    assert!(left[0].end < w.window().start);
}

#[test]
fn r26_private_events_are_skipped_unless_configured() {
    let mut w = World::new();
    let mut e = meeting("Doctor", 2, &[]);
    e.sensitivity = Sensitivity::Private;
    w.mailbox.user_create_event(&addr("ben"), &e);
    w.run_ok();
    assert!(w.ln.activities().is_empty());
    w.options.calendar.sync_private_events = true;
    let mut e2 = meeting("Dentist", 3, &[]);
    e2.sensitivity = Sensitivity::Confidential;
    w.mailbox.user_create_event(&addr("ben"), &e2);
    w.run_ok();
    assert_eq!(w.ln.activities().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// R27–R30: changes, conflicts, deletions
// ---------------------------------------------------------------------------------------------

#[test]
fn r27_scenarios_5_6_own_writes_and_unmapped_changes_cause_no_write() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Plan", 2, "anna", &["x@partner.example"]));
    w.run_ok();
    w.run_ok();
    // Scenario 5: an LN change goes to Exchange, and the echo writes nothing to LN.
    w.ln.edit_activity(&key, |a| a.subject = Some("Plan v2".into()));
    w.run_ok();
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0);
    assert_eq!(w.writes(), before);
    // Scenario 6: unmapped Exchange change.
    let ev = w.organized("anna").pop().expect("event");
    w.mailbox.user_touch_event(&addr("anna"), &ev.item.id);
    let before = w.writes();
    w.run_ok();
    assert_eq!(w.writes(), before, "LN not written");
}

fn conflict_world(policy: ConflictPolicy, ln_last: bool) -> (World, ActivityKey) {
    let mut w = World::new();
    w.options.calendar.conflict_policy = policy;
    let key =
        w.ln.upsert_activity(appointment("Base", 2, "anna", &["x@partner.example"]));
    w.run_ok();
    let ev = w.organized("anna").pop().expect("event");
    if ln_last {
        w.mailbox.user_edit_event(&addr("anna"), &ev.item.id, |f| {
            f.subject = Some("EX".into())
        });
        w.ln.edit_activity(&key, |a| a.subject = Some("LN".into()));
    } else {
        w.ln.edit_activity(&key, |a| a.subject = Some("LN".into()));
        w.mailbox.user_edit_event(&addr("anna"), &ev.item.id, |f| {
            f.subject = Some("EX".into())
        });
    }
    w.run_ok();
    (w, key)
}

#[test]
fn r28_scenario_8_conflict_policies_and_the_record() {
    for (policy, ln_last, winner) in [
        (ConflictPolicy::NewestWins, true, "LN"),
        (ConflictPolicy::NewestWins, false, "EX"),
        (ConflictPolicy::LnWins, false, "LN"),
        (ConflictPolicy::ExchangeWins, true, "EX"),
    ] {
        let (w, key) = conflict_world(policy, ln_last);
        let ln = w.ln.activity_now(&key).and_then(|a| a.subject);
        let ex = w.organized("anna").pop().and_then(|e| e.fields.subject);
        assert_eq!(ln.as_deref(), Some(winner), "{policy:?} ln_last={ln_last}");
        assert_eq!(ex.as_deref(), Some(winner), "{policy:?} ln_last={ln_last}");
        let p = w.problems("anna");
        let c = p
            .iter()
            .find(|p| p.problem == ProblemKind::Conflict)
            .expect("conflict recorded");
        assert!(
            c.detail.contains("\"LN\"") && c.detail.contains("\"EX\""),
            "both versions"
        );
        // Identical content on both sides is not a conflict.
        let runs = w.run_ok();
        assert_eq!(total_writes(&runs), 0);
    }
}

#[test]
fn r29_scenario_11_ln_delete_cancels_the_meeting() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Gone", 2, "anna", &["ben"]));
    w.run_ok();
    assert_eq!(w.events("ben").len(), 1);
    w.ln.delete_activity_now(&key);
    w.run_ok();
    assert!(
        w.organized("anna").is_empty(),
        "cancelled in the organizer's mailbox"
    );
    assert!(
        w.events("ben").iter().all(|e| e.is_cancelled),
        "cancellation sent"
    );
    assert!(w.links("anna").is_empty());
}

#[test]
fn r29_not_held_and_lost_synchronize_cancel_too() {
    let w = World::new();
    let k1 =
        w.ln.upsert_activity(appointment("A", 2, "anna", &["x@partner.example"]));
    let k2 =
        w.ln.upsert_activity(appointment("B", 3, "anna", &["x@partner.example"]));
    w.run_ok();
    w.ln.edit_activity(&k1, |a| a.status = ActivityStatus::NotHeld);
    w.ln.edit_activity(&k2, |a| a.synchronize = false);
    w.run_ok();
    assert!(w.organized("anna").is_empty());
}

#[test]
fn r29_scenario_12_organizer_delete_sets_not_held_or_deletes() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("From LN", 2, "anna", &["x@partner.example"]));
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("From EX", 3, &[]));
    w.run_ok();
    assert_eq!(w.ln.activities().len(), 2);
    for ev in w.organized("anna").into_iter().chain(w.organized("ben")) {
        let mb = if ev.fields.subject.as_deref() == Some("From LN") {
            "anna"
        } else {
            "ben"
        };
        w.mailbox.user_delete_event(&addr(mb), &ev.item.id);
    }
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1, "the Exchange-originated one is deleted");
    assert_eq!(acts[0].activity, key);
    assert_eq!(acts[0].status, ActivityStatus::NotHeld);
}

#[test]
fn r29_an_attendee_declining_changes_only_their_status() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Decline me", 2, "anna", &["ben"]));
    w.run_ok();
    let copy = w.events("ben").pop().expect("copy");
    w.mailbox
        .respond(&addr("ben"), &copy.item.id, ResponseType::Decline);
    w.run_ok();
    let a = w.ln.activity_now(&key).expect("kept");
    assert_eq!(a.status, ActivityStatus::Planned);
    let ben = a
        .attendees
        .iter()
        .find(|l| l.full_name.as_deref() == Some("ben"))
        .expect("ben");
    assert_eq!(ben.attendance_status, AttendanceStatus::Declined);
    assert_eq!(w.organized("anna").len(), 1);
}

#[test]
fn r29_scenario_10_changed_in_ln_deleted_in_exchange_recreates_and_records() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Keep", 2, "anna", &["x@partner.example"]));
    w.run_ok();
    let ev = w.organized("anna").pop().expect("event");
    w.mailbox.user_delete_event(&addr("anna"), &ev.item.id);
    w.ln.edit_activity(&key, |a| a.subject = Some("Keep v2".into()));
    w.run_ok();
    let org = w.organized("anna");
    assert_eq!(org.len(), 1, "created again");
    assert_eq!(org[0].fields.subject.as_deref(), Some("Keep v2"));
    assert!(
        w.problems("anna")
            .iter()
            .any(|p| p.problem == ProblemKind::Conflict)
    );
    // The reverse: changed in Exchange, deleted in LN → the deletion wins.
    let ev = org[0].clone();
    w.mailbox.user_edit_event(&addr("anna"), &ev.item.id, |f| {
        f.subject = Some("EX edit".into())
    });
    w.ln.delete_activity_now(&key);
    w.run_ok();
    assert!(w.organized("anna").is_empty());
}

#[test]
fn r30_scenario_13_empty_listing_with_links_stops_the_run() {
    let w = World::new();
    for i in 0..3 {
        w.ln.upsert_activity(appointment(
            &format!("M{i}"),
            2 + i,
            "anna",
            &["x@partner.example"],
        ));
    }
    w.run_ok();
    assert_eq!(w.links("anna").len(), 3);
    // The calendar is emptied behind our back and the cursor expires: a full re-read lists nothing.
    for ev in w.organized("anna") {
        w.mailbox.user_delete_event(&addr("anna"), &ev.item.id);
    }
    w.mailbox.invalidate_calendar_cursor(&addr("anna"));
    let runs = w.run();
    let anna = runs
        .iter()
        .find(|r| r.user.as_str() == "anna")
        .expect("anna");
    assert_eq!(anna.outcome, RunOutcome::Failed);
    assert_eq!(w.ln.activities().len(), 3, "nothing deleted");
    assert!(
        w.ln.activities()
            .iter()
            .all(|a| a.status == ActivityStatus::Planned)
    );
}

#[test]
fn r30_scenario_14_mass_deletion_is_held() {
    let w = World::new();
    for i in 0..25 {
        w.mailbox
            .user_create_event(&addr("ben"), &meeting(&format!("M{i}"), 2 + i, &[]));
    }
    w.run_ok();
    assert_eq!(w.ln.activities().len(), 25);
    for ev in w.organized("ben") {
        w.mailbox.user_delete_event(&addr("ben"), &ev.item.id);
    }
    let runs = w.run();
    let ben = runs.iter().find(|r| r.user.as_str() == "ben").expect("ben");
    assert_eq!(ben.counts.held, 25);
    assert_eq!(ben.outcome, RunOutcome::Partial);
    assert_eq!(w.ln.activities().len(), 25, "held, not deleted");
    assert_eq!(
        w.problems("ben")
            .iter()
            .filter(|p| p.problem == ProblemKind::HeldDeletion)
            .count(),
        25
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios and run mechanics
// ---------------------------------------------------------------------------------------------

#[test]
fn scenario_2_existing_pair_by_external_reference_links_without_creates() {
    let w = World::new();
    let id = w
        .mailbox
        .user_create_event(&addr("ben"), &meeting("Known", 3, &[]));
    let ev = w.organized("ben").pop().expect("event");
    assert_eq!(ev.item.id, id);
    let mut a = appointment("Known", 3, "ben", &[]);
    a.start = at(3, 14);
    a.end = at(3, 15);
    a.location = None;
    a.origin = Origin::Exchange;
    a.external_reference = Some(ev.key.external_reference());
    w.ln.upsert_activity(a);
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0);
    assert_eq!(w.ln.activities().len(), 1);
    assert_eq!(w.links("ben").len(), 1);
}

#[test]
fn scenario_3_first_run_reads_only_the_window() {
    let w = World::new();
    for i in 0..10 {
        w.mailbox.user_create_event(
            &addr("ben"),
            &meeting(&format!("old{i}"), -400 + i * 30, &[]),
        );
    }
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("now", 2, &[]));
    w.run_ok();
    assert_eq!(w.ln.activities().len(), 1);
    assert_eq!(w.mailbox.count_calls(&addr("ben"), "get_events"), 0);
}

#[test]
fn scenario_7_idle_run_is_one_sync_call_and_no_writes() {
    let w = World::new();
    w.ln.upsert_activity(appointment("Idle", 2, "anna", &["ben"]));
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("Idle EX", 3, &[]));
    w.run_ok();
    w.run_ok();
    w.run_ok();
    let calls: Vec<usize> = USERS
        .iter()
        .map(|u| w.mailbox.calls(&addr(u)).len())
        .collect();
    let before = w.writes();
    let reads = w.ln.feed_reads.load(Ordering::SeqCst);
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0);
    assert_eq!(w.writes(), before);
    for (i, u) in USERS.iter().enumerate() {
        let now = w.mailbox.calls(&addr(u));
        assert_eq!(&now[calls[i]..], ["sync_calendar"], "{u}");
    }
    assert_eq!(
        w.ln.feed_reads.load(Ordering::SeqCst) - reads,
        2,
        "activities + deletions, once per environment"
    );
}

#[test]
fn scenario_18_organizer_not_a_sync_user_is_reported() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Dora's", 2, "emp-dora", &["anna"]));
    w.run_ok();
    assert!(USERS.iter().all(|u| w.organized(u).is_empty()));
    let all: Vec<ItemProblem> = USERS
        .iter()
        .flat_map(|u| w.problems(u))
        .chain(w.problems("dora"))
        .collect();
    let p = all
        .iter()
        .find(|p| p.ln_key.as_str() == key.as_str())
        .expect("the item shows the reason");
    assert!(p.detail.contains("not an active sync user"), "{}", p.detail);
}

#[test]
fn scenario_20_case_mismatch_is_not_synchronized_and_reported() {
    let w = World::new();
    let mut emps = vec![Employee {
        employee: EmployeeCode::new("E-ben"),
        name: "ben".into(),
        user: Some(UserId::new("ben")),
        email: Some("Ben@corp.example".into()),
    }];
    for u in ["anna", "cleo"] {
        emps.push(Employee {
            employee: EmployeeCode::new(format!("E-{u}")),
            name: u.into(),
            user: Some(UserId::new(u)),
            email: Some(email(u)),
        });
    }
    w.ln.set_employees(emps);
    let key =
        w.ln.upsert_activity(appointment("Case", 2, "anna", &["ben", "cleo"]));
    w.run_ok();
    let ev = w.organized("anna").pop().expect("meeting");
    assert_eq!(ev.attendees.len(), 1, "only cleo");
    assert!(
        w.problems("anna")
            .iter()
            .any(|p| p.ln_key.as_str() == key.as_str() && p.detail.contains("case"))
    );
}

#[test]
fn scenario_24_event_moved_into_the_past_is_unlinked_not_deleted() {
    let w = World::new();
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("Slip", 2, &[]));
    w.run_ok();
    let ev = w.organized("ben").pop().expect("event");
    w.mailbox.user_edit_event(&addr("ben"), &ev.item.id, |f| {
        f.time = EventTime::Timed {
            start: at(-2, 9),
            end: at(-2, 10),
        }
    });
    let before = w.writes();
    w.run_ok();
    assert!(w.links("ben").is_empty());
    assert_eq!(w.ln.activities().len(), 1);
    assert_eq!(w.writes(), before);
}

#[test]
fn r38_invalid_cursor_rereads_without_duplicates_or_deletions() {
    let w = World::new();
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("One", 2, &[]));
    w.ln.upsert_activity(appointment("Two", 3, "ben", &["x@partner.example"]));
    w.run_ok();
    w.mailbox.invalidate_calendar_cursor(&addr("ben"));
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0);
    assert_eq!(w.writes(), before);
    assert_eq!(w.ln.activities().len(), 2);
    assert_eq!(w.organized("ben").len(), 2);
}

#[test]
fn exchange_conflict_is_reread_and_retried_once() {
    let w = World::new();
    let key =
        w.ln.upsert_activity(appointment("Retry", 2, "anna", &["x@partner.example"]));
    w.run_ok();
    w.ln.edit_activity(&key, |a| a.subject = Some("Retry v2".into()));
    w.mailbox.conflict_next_update(&addr("anna"));
    w.run_ok();
    assert_eq!(
        w.organized("anna").pop().and_then(|e| e.fields.subject),
        Some("Retry v2".into())
    );
    assert_eq!(w.mailbox.count_calls(&addr("anna"), "update_events"), 2);
}

#[test]
fn r34_an_exchange_create_whose_link_was_lost_is_adopted_not_duplicated() {
    use lnsync_core::testing::CrashingStore;
    let w = World::new();
    let store = CrashingStore::new(MemoryStore::default());
    w.ln.upsert_activity(appointment("Crash", 2, "anna", &["x@partner.example"]));
    store.crash_on_put_links(1, true);
    let sync = CalendarSync {
        env: &w.env,
        store: &store,
        clock: &w.clock,
        options: &w.options,
    };
    let _ = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t"));
    assert_eq!(store.crashes(), 1);
    assert_eq!(w.organized("anna").len(), 1);
    let runs = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t")).expect("runs");
    assert!(runs.iter().all(|r| r.error.is_none()));
    assert_eq!(w.organized("anna").len(), 1, "no duplicate");
    assert_eq!(store.inner.all_links(&w.env, &UserId::new("anna")).len(), 1);
}

#[test]
fn r34_an_ln_create_whose_link_was_lost_is_adopted_via_409() {
    use lnsync_core::testing::CrashingStore;
    let w = World::new();
    let store = CrashingStore::new(MemoryStore::default());
    w.mailbox
        .user_create_event(&addr("ben"), &meeting("Crash EX", 2, &[]));
    store.crash_on_put_links(1, true);
    let sync = CalendarSync {
        env: &w.env,
        store: &store,
        clock: &w.clock,
        options: &w.options,
    };
    let _ = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t"));
    let runs = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t")).expect("runs");
    assert!(runs.iter().all(|r| r.error.is_none()));
    assert_eq!(w.ln.activities().len(), 1, "no duplicate");
    assert_eq!(store.inner.all_links(&w.env, &UserId::new("ben")).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Batched Exchange creates (O(changes) requests, `max_batch` items per call)
// ---------------------------------------------------------------------------------------------

/// `n` new LN activities organized by anna; every other one invites an external guest.
fn many_new_ln_meetings(w: &World, n: usize) -> Vec<ActivityKey> {
    (0..n)
        .map(|i| {
            let guests: &[&str] = if i % 2 == 0 {
                &["x@partner.example"]
            } else {
                &[]
            };
            let d = 1 + i64::try_from(i % 30).unwrap_or(0);
            w.ln.upsert_activity(appointment(&format!("Bulk {i}"), d, "anna", guests))
        })
        .collect()
}

/// Subjects of anna's organized meetings, each once: a duplicate fails the assertion.
fn assert_one_meeting_each(w: &World, n: usize) {
    let subjects: Vec<String> = w
        .organized("anna")
        .into_iter()
        .filter_map(|e| e.fields.subject)
        .collect();
    let unique: std::collections::BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(subjects.len(), unique.len(), "no duplicates: {subjects:?}");
    assert_eq!(subjects.len(), n);
}

#[test]
fn new_ln_meetings_are_created_max_batch_per_call() {
    let w = World::new();
    w.mailbox.set_max_batch(4);
    let n = 10;
    let keys = many_new_ln_meetings(&w, n);
    let runs = w.run_ok();
    assert_eq!(
        w.mailbox.count_calls(&addr("anna"), "create_events"),
        n.div_ceil(4),
        "⌈{n}/4⌉ create calls"
    );
    assert_eq!(runs[0].counts.created, u32::try_from(n).unwrap_or(0));
    assert_one_meeting_each(&w, n);
    let links = w.links("anna");
    assert_eq!(links.len(), n);
    assert!(
        links.iter().all(|l| !l.is_intent()),
        "every intent resolved"
    );
    // R19: each created meeting's invited lines are flagged after its link is saved.
    for key in keys.iter().step_by(2) {
        let a = w.ln.activity_now(key).expect("activity");
        assert!(
            a.attendees
                .iter()
                .filter(|l| l.invite)
                .all(|l| l.sent_to_synchronizer && l.synchronized)
        );
    }
    // Nothing left to do.
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!((w.writes(), total_writes(&runs)), (before, 0));

    // The default batch: 120 new meetings cost 2 calls.
    let w = World::new();
    many_new_ln_meetings(&w, 120);
    w.run_ok();
    assert_eq!(w.mailbox.count_calls(&addr("anna"), "create_events"), 2);
    assert_one_meeting_each(&w, 120);
}

#[test]
fn an_item_exchange_refuses_in_a_create_batch_fails_alone() {
    let w = World::new();
    w.mailbox.set_max_batch(4);
    let keys = many_new_ln_meetings(&w, 6);
    w.mailbox.refuse_create("Bulk 2");
    let runs = w.run();
    assert_eq!(runs[0].outcome, RunOutcome::Partial);
    assert_eq!((runs[0].counts.created, runs[0].counts.errors), (5, 1));
    assert_eq!(w.mailbox.count_calls(&addr("anna"), "create_events"), 2);
    assert_eq!(w.organized("anna").len(), 5);
    let problems = w.problems("anna");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].ln_key, LnKey::from(&keys[2]));
    assert_eq!(problems[0].problem, ProblemKind::WriteFailed);
    // Only the refused item is left as an intent; its neighbours' lines were flagged.
    let intents: Vec<LnKey> = w
        .links("anna")
        .into_iter()
        .filter(Link::is_intent)
        .map(|l| l.ln_key)
        .collect();
    assert_eq!(intents, vec![LnKey::from(&keys[2])]);
    let a = w.ln.activity_now(&keys[0]).expect("activity");
    assert!(
        a.attendees
            .iter()
            .filter(|l| l.invite)
            .all(|l| l.sent_to_synchronizer)
    );
    // The next run tries the refused one again (its intent: a stamp lookup first), alone.
    w.run();
    assert_eq!(w.organized("anna").len(), 5, "no duplicates");
    assert_eq!(w.links("anna").len(), 6);
}

#[test]
fn a_crash_between_a_create_batch_and_its_links_converges_without_duplicates() {
    use lnsync_core::testing::CrashingStore;
    let w = World::new();
    w.mailbox.set_max_batch(4);
    let n = 10;
    many_new_ln_meetings(&w, n);
    let store = CrashingStore::new(MemoryStore::default());
    // The second batch's links are lost after Exchange created its four meetings.
    store.crash_on_put_links(2, true);
    let sync = CalendarSync {
        env: &w.env,
        store: &store,
        clock: &w.clock,
        options: &w.options,
    };
    let _ = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t"));
    assert_eq!(store.crashes(), 1);
    assert_eq!(w.organized("anna").len(), 8, "two batches were created");
    assert_eq!(
        store
            .inner
            .all_links(&w.env, &UserId::new("anna"))
            .iter()
            .filter(|l| l.is_intent())
            .count(),
        4,
        "the lost batch left its intents"
    );
    let runs = block_on(sync.run(&w.ln, &w.mailbox, &w.users, "t")).expect("runs");
    assert!(runs.iter().all(|r| r.error.is_none()), "{runs:?}");
    assert_one_meeting_each(&w, n);
    let links = store.inner.all_links(&w.env, &UserId::new("anna"));
    assert_eq!(links.len(), n);
    assert!(links.iter().all(|l| !l.is_intent()));
    assert_eq!(
        w.mailbox.count_calls(&addr("anna"), "create_events"),
        3,
        "2 batches, then the 2 never attempted in one call; the lost batch is adopted"
    );
}

// ---------------------------------------------------------------------------------------------
// R20: the "Call" category edited in Outlook reaches LN's activity type
// ---------------------------------------------------------------------------------------------

#[test]
fn r20_the_call_category_added_in_exchange_makes_the_activity_a_call() {
    let w = World::new();
    let id = w
        .mailbox
        .user_create_event(&addr("ben"), &meeting("Check-in", 3, &[]));
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].activity_type, ActivityType::Appointment);
    w.run_ok();

    w.mailbox
        .user_edit_event(&addr("ben"), &id, |f| f.is_call = true);
    w.run_ok();
    let acts = w.ln.activities();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].activity_type, ActivityType::Call, "R20");
    assert_eq!(acts[0].subject.as_deref(), Some("Check-in"));
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0, "the echo writes nothing");
    assert_eq!(w.writes(), before);
}

#[test]
fn r20_the_call_category_removed_in_exchange_makes_the_call_an_appointment() {
    let w = World::new();
    let mut call = appointment("Hotline", 2, "anna", &["ben"]);
    call.activity_type = ActivityType::Call;
    let key = w.ln.upsert_activity(call);
    w.run_ok();
    w.run_ok();
    let ev = w.organized("anna").pop().expect("event");
    assert!(ev.fields.is_call);

    w.mailbox
        .user_edit_event(&addr("anna"), &ev.item.id, |f| f.is_call = false);
    w.run_ok();
    let a =
        w.ln.activities()
            .into_iter()
            .find(|a| a.activity == key)
            .expect("still in LN");
    assert_eq!(a.activity_type, ActivityType::Appointment, "R20");
    assert!(a.synchronize);
    assert_eq!(a.status, ActivityStatus::Planned);
    let before = w.writes();
    let runs = w.run_ok();
    assert_eq!(total_writes(&runs), 0, "the echo writes nothing");
    assert_eq!(w.writes(), before);
    assert!(!w.organized("anna").pop().expect("event").fields.is_call);
}
