//! The single-event sync of push notifications (R31, R32; scenario 25) over in-memory ports:
//! each test starts from a settled pull, changes one side, delivers the notifications the
//! change causes (and those our own writes cause in turn), checks both sides before any pull,
//! and then checks that the next pull has nothing left to write.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use lnsync_core::calendar::*;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::plan::calendar::window_at;
use lnsync_core::ports::{Clock, StateStore, Window};
use lnsync_core::service::{CalendarSync, EventTarget, SyncError, SyncOptions, UserRun};
use lnsync_core::testing::{
    CrashingStore, ManualClock, MemoryLn, MemoryMailbox, MemoryStore, UserEvent,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Sync users; `dora` is an employee with a user who is not one.
const USERS: [&str; 3] = ["anna", "ben", "cleo"];

fn mail(u: &str) -> String {
    if u.contains('@') {
        u.to_owned()
    } else {
        format!("{u}@corp.example")
    }
}

fn addr(u: &str) -> MailboxAddress {
    MailboxAddress::new(mail(u))
}

fn today() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `d` days after today, at `h` o'clock UTC.
fn day(d: i64, h: i64) -> DateTime<Utc> {
    today() + Duration::days(d) + Duration::hours(h)
}

fn attendee_line(attendance: Attendance, who: &str) -> Attendee {
    let employee = !who.contains('@');
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
        email: Some(mail(who)),
        attendance_status: AttendanceStatus::None,
        invite: attendance != Attendance::MeetingOrganizer,
        sent_to_synchronizer: false,
        synchronized: false,
        version: None,
    }
}

/// An LN appointment on day `d`, 9–10, organized by `organizer`, inviting `invited`.
fn ln_meeting(subject: &str, d: i64, organizer: &str, invited: &[&str]) -> Activity {
    let mut attendees = vec![attendee_line(Attendance::MeetingOrganizer, organizer)];
    attendees.extend(
        invited
            .iter()
            .map(|w| attendee_line(Attendance::Required, w)),
    );
    Activity {
        activity: ActivityKey::new(""),
        activity_type: ActivityType::Appointment,
        subject: Some(subject.into()),
        location: Some("Room 1".into()),
        information: None,
        all_day: false,
        start: day(d, 9),
        end: day(d, 10),
        reminder_set: false,
        reminder_value: None,
        reminder_unit: None,
        show_time_as: ShowTimeAs::Busy,
        status: ActivityStatus::Planned,
        synchronize: true,
        contact: None,
        business_partner: None,
        external_reference: None,
        origin: Origin::Ln,
        last_modified: DateTime::default(),
        version: LnVersion::new(""),
        attendees,
    }
}

/// An Outlook meeting on day `d`, 13–14, with `invited` as required attendees.
fn outlook_meeting(subject: &str, d: i64, invited: &[&str]) -> UserEvent {
    let mut e = UserEvent::new(EventFields {
        subject: Some(subject.into()),
        location: None,
        body: None,
        time: EventTime::Timed {
            start: day(d, 13),
            end: day(d, 14),
        },
        reminder_minutes: None,
        show_as: ShowTimeAs::Busy,
        is_call: false,
    });
    e.attendees = invited
        .iter()
        .map(|w| (mail(w), AttendeeRole::Required))
        .collect();
    e
}

/// LN as a webhook would report it: every activity's version, to tell what changed since.
type LnSnapshot = BTreeMap<ActivityKey, LnVersion>;

struct World {
    env: EnvironmentId,
    ln: MemoryLn,
    mailbox: MemoryMailbox,
    store: CrashingStore<MemoryStore>,
    clock: ManualClock,
    options: SyncOptions,
    users: Vec<SyncUser>,
    employees: Vec<Employee>,
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
        let employees: Vec<Employee> = USERS
            .iter()
            .chain(std::iter::once(&"dora"))
            .map(|u| Employee {
                employee: EmployeeCode::new(format!("E-{u}")),
                name: (*u).to_owned(),
                user: Some(UserId::new(*u)),
                email: Some(mail(u)),
            })
            .collect();
        let ln = MemoryLn::default();
        ln.set_users(users.clone());
        ln.set_employees(employees.clone());
        let mailbox = MemoryMailbox::default();
        for u in USERS {
            mailbox.host(&addr(u));
        }
        Self {
            env: EnvironmentId::new("push"),
            ln,
            mailbox,
            store: CrashingStore::new(MemoryStore::default()),
            clock: ManualClock::new(day(0, 8)),
            options: SyncOptions::default(),
            users,
            employees,
        }
    }

    fn sync(&self) -> CalendarSync<'_> {
        CalendarSync {
            env: &self.env,
            store: &self.store,
            clock: &self.clock,
            options: &self.options,
        }
    }

    fn user(&self, u: &str) -> &SyncUser {
        self.users
            .iter()
            .find(|s| s.user.as_str() == u)
            .expect("a sync user")
    }

    fn pull(&self) -> Vec<UserRun> {
        let runs = block_on(
            self.sync()
                .run(&self.ln, &self.mailbox, &self.users, "pull"),
        )
        .expect("the LN feed reads");
        for r in &runs {
            assert!(
                r.error.is_none(),
                "pull of {} failed: {:?}",
                r.user,
                r.error
            );
        }
        runs
    }

    /// Pulls until a pull writes nothing (meetings, then R19 flags, then links refreshed).
    fn settle_by_pulls(&self) {
        for _ in 0..4 {
            let before = self.writes();
            let runs = self.pull();
            if self.writes() == before && writes_of(&runs) == 0 {
                return;
            }
        }
        panic!("the pulls do not settle");
    }

    /// The single-event job of an Exchange notification on `u`'s calendar.
    fn push_item(&self, u: &str, id: &ExchangeItemId) -> UserRun {
        block_on(self.sync().sync_event(
            &self.ln,
            &self.mailbox,
            self.user(u),
            &EventTarget::Exchange(id.clone()),
            &self.users,
            &self.employees,
            "push",
        ))
    }

    /// The single-event job of an LN webhook: the activity's owner, then its sync.
    fn push_activity(&self, key: &ActivityKey) -> Option<UserRun> {
        let owner =
            block_on(
                self.sync()
                    .owner_of_activity(&self.ln, key, &self.users, &self.employees),
            )
            .expect("owner lookup");
        owner.map(|u| self.push_activity_as(&u, key))
    }

    fn push_activity_as(&self, user: &SyncUser, key: &ActivityKey) -> UserRun {
        block_on(self.sync().sync_event(
            &self.ln,
            &self.mailbox,
            user,
            &EventTarget::Activity(key.clone()),
            &self.users,
            &self.employees,
            "push",
        ))
    }

    fn ln_snapshot(&self) -> LnSnapshot {
        self.ln
            .activities()
            .into_iter()
            .map(|a| (a.activity, a.version))
            .collect()
    }

    /// Where the notification streams stand now.
    fn mark(&self) -> (u64, LnSnapshot) {
        (self.mailbox.calendar_mark(), self.ln_snapshot())
    }

    /// Delivers every notification since `mark`, including those our own writes cause, in
    /// rounds until none is left. Returns the single-event runs.
    fn deliver(&self, mark: (u64, LnSnapshot)) -> Vec<UserRun> {
        let (mut ex_mark, mut ln_mark) = mark;
        let mut runs = Vec::new();
        for _ in 0..8 {
            let ex: Vec<(&str, ExchangeItemId)> = USERS
                .iter()
                .flat_map(|u| {
                    self.mailbox
                        .calendar_notifications(&addr(u), ex_mark)
                        .into_iter()
                        .map(move |id| (*u, id))
                })
                .collect();
            let now = self.ln_snapshot();
            let mut changed: Vec<ActivityKey> = now
                .iter()
                .filter(|(k, v)| ln_mark.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            changed.extend(ln_mark.keys().filter(|k| !now.contains_key(*k)).cloned());
            if ex.is_empty() && changed.is_empty() {
                return runs;
            }
            ex_mark = self.mailbox.calendar_mark();
            ln_mark = now;
            for (u, id) in ex {
                runs.push(self.push_item(u, &id));
            }
            for key in changed {
                runs.extend(self.push_activity(&key));
            }
            for r in &runs {
                assert!(
                    r.error.is_none(),
                    "push job of {} failed: {:?}",
                    r.user,
                    r.error
                );
            }
        }
        panic!("notifications keep coming");
    }

    /// The pull after the notifications finds both sides consistent: it writes nothing.
    fn assert_pull_writes_nothing(&self) {
        let before = self.writes();
        let runs = self.pull();
        assert_eq!(self.writes(), before, "the pull wrote to LN or Exchange");
        assert_eq!(writes_of(&runs), 0);
    }

    fn writes(&self) -> (usize, u64) {
        (self.mailbox.calendar_writes(), self.ln.calendar_writes())
    }

    fn window(&self) -> Window {
        window_at(self.clock.now(), 365)
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
        self.store.inner.all_links(&self.env, &UserId::new(u))
    }

    fn problems(&self, u: &str) -> Vec<ItemProblem> {
        block_on(self.store.problems(&self.env, &UserId::new(u))).unwrap_or_default()
    }

    fn activity(&self, key: &ActivityKey) -> Activity {
        self.ln.activity_now(key).expect("the activity")
    }

    /// An LN meeting anna organizes with ben, synchronized by the pull.
    fn linked_ln_meeting(&self, subject: &str) -> (ActivityKey, ExchangeItemId) {
        let key = self
            .ln
            .upsert_activity(ln_meeting(subject, 3, "anna", &["ben"]));
        self.settle_by_pulls();
        let ev = self
            .organized("anna")
            .into_iter()
            .find(|e| e.fields.subject.as_deref() == Some(subject))
            .expect("the meeting");
        (key, ev.item.id)
    }

    /// An Outlook meeting anna organizes with ben, synchronized by the pull.
    fn linked_outlook_meeting(&self, subject: &str) -> (ActivityKey, ExchangeItemId) {
        let id = self
            .mailbox
            .user_create_event(&addr("anna"), &outlook_meeting(subject, 4, &["ben"]));
        self.settle_by_pulls();
        let a = self
            .ln
            .activities()
            .into_iter()
            .find(|a| a.subject.as_deref() == Some(subject))
            .expect("created in LN");
        (a.activity, id)
    }
}

fn writes_of(runs: &[UserRun]) -> u32 {
    runs.iter().map(|r| r.counts.writes()).sum()
}

fn line_of<'a>(a: &'a Activity, who: &str) -> &'a Attendee {
    a.attendees
        .iter()
        .find(|l| l.full_name.as_deref() == Some(who))
        .expect("the attendee line")
}

// ---------------------------------------------------------------------------------------------
// One change, its notifications, then a pull that has nothing left to do
// ---------------------------------------------------------------------------------------------

#[test]
fn scenario_25_an_exchange_edit_reaches_ln_before_any_pull_and_the_pull_then_writes_nothing() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Review");
    let mark = w.mark();
    w.mailbox.user_edit_event(&addr("anna"), &id, |f| {
        f.location = Some("Room 9".into());
    });

    let run = w.push_item("anna", &id);
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(run.counts.updated, 1);
    assert_eq!(w.activity(&key).location.as_deref(), Some("Room 9"));

    w.deliver(mark);
    assert_eq!(w.activity(&key).location.as_deref(), Some("Room 9"));
    assert_eq!(w.organized("anna").len(), 1);
    w.assert_pull_writes_nothing();
}

#[test]
fn an_ln_edit_reaches_the_meeting_and_its_attendees_before_any_pull() {
    let w = World::new();
    let (key, _) = w.linked_ln_meeting("Planning");
    let mark = w.mark();
    w.ln.edit_activity(&key, |a| {
        a.subject = Some("Planning (moved)".into());
        a.start = day(5, 9);
        a.end = day(5, 11);
    });

    let run = w.push_activity(&key).expect("anna owns it");
    assert_eq!((run.user.as_str(), run.counts.updated), ("anna", 1));
    let ev = w.organized("anna").pop().expect("the meeting");
    assert_eq!(ev.fields.subject.as_deref(), Some("Planning (moved)"));
    assert_eq!(
        ev.fields.time,
        EventTime::Timed {
            start: day(5, 9),
            end: day(5, 11)
        }
    );
    let copy = w.events("ben").pop().expect("ben's copy");
    assert_eq!(copy.fields.subject.as_deref(), Some("Planning (moved)"));

    w.deliver(mark);
    w.assert_pull_writes_nothing();
}

#[test]
fn an_organizer_deleting_an_ln_meeting_in_exchange_sets_not_held_before_any_pull() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Offsite");
    let mark = w.mark();
    w.mailbox.user_delete_event(&addr("anna"), &id);

    let run = w.push_item("anna", &id);
    assert_eq!(
        (run.outcome, run.counts.deleted),
        (RunOutcome::Succeeded, 1)
    );
    assert_eq!(w.activity(&key).status, ActivityStatus::NotHeld, "R29");
    assert!(w.links("anna").is_empty());

    w.deliver(mark);
    assert_eq!(w.activity(&key).status, ActivityStatus::NotHeld);
    w.assert_pull_writes_nothing();
}

#[test]
fn an_outlook_meeting_deleted_in_exchange_is_deleted_in_ln_before_any_pull() {
    let w = World::new();
    let (key, id) = w.linked_outlook_meeting("Sync");
    let mark = w.mark();
    w.mailbox.user_delete_event(&addr("anna"), &id);

    w.push_item("anna", &id);
    assert!(
        w.ln.activity_now(&key).is_none(),
        "origin Exchange: deleted (R29)"
    );
    w.deliver(mark);
    assert!(w.links("anna").is_empty());
    w.assert_pull_writes_nothing();
}

#[test]
fn an_ln_delete_cancels_the_meeting_before_any_pull() {
    let w = World::new();
    let (key, _) = w.linked_ln_meeting("Kick-off");
    let mark = w.mark();
    w.ln.delete_activity_now(&key);

    let run = w.push_activity(&key).expect("the link's holder owns it");
    assert_eq!((run.user.as_str(), run.counts.deleted), ("anna", 1));
    assert!(w.organized("anna").is_empty(), "cancelled as organizer");
    assert!(
        w.events("ben").iter().all(|e| e.is_cancelled),
        "ben got the cancellation"
    );
    assert!(w.links("anna").is_empty());

    w.deliver(mark);
    w.assert_pull_writes_nothing();
}

#[test]
fn a_new_outlook_meeting_is_created_in_ln_once_before_any_pull() {
    let w = World::new();
    w.settle_by_pulls();
    let mark = w.mark();
    let id = w
        .mailbox
        .user_create_event(&addr("anna"), &outlook_meeting("Lunch", 2, &["ben"]));

    let run = w.push_item("anna", &id);
    assert_eq!(run.counts.created, 1);
    let created = w.ln.activities();
    assert_eq!(created.len(), 1);
    let a = &created[0];
    assert_eq!(a.subject.as_deref(), Some("Lunch"));
    assert_eq!(a.origin, Origin::Exchange);
    assert_eq!(w.links("anna").len(), 1);

    // ben's copy, anna's item and the new activity all notify; none creates a second one.
    w.deliver(mark);
    assert_eq!(
        w.ln.activities().len(),
        1,
        "one meeting, one activity (R24)"
    );
    w.assert_pull_writes_nothing();
    assert_eq!(w.ln.activities().len(), 1);
}

#[test]
fn a_new_ln_appointment_becomes_a_meeting_and_its_flags_settle_before_any_pull() {
    let w = World::new();
    w.settle_by_pulls();
    let mark = w.mark();
    let key =
        w.ln.upsert_activity(ln_meeting("Demo", 2, "anna", &["ben", "x@partner.example"]));

    let run = w.push_activity(&key).expect("anna organizes it");
    assert_eq!((run.user.as_str(), run.counts.created), ("anna", 1));
    assert_eq!(w.organized("anna").len(), 1);
    assert_eq!(w.events("ben").len(), 1, "the invitation");
    let a = w.activity(&key);
    assert!(line_of(&a, "ben").sent_to_synchronizer);
    assert!(
        !line_of(&a, "ben").synchronized,
        "R19: not yet seen in ben's calendar"
    );

    w.deliver(mark);
    let a = w.activity(&key);
    assert!(line_of(&a, "ben").synchronized, "ben's copy was seen (R19)");
    assert!(line_of(&a, "x@partner.example").synchronized);
    assert_eq!(w.organized("anna").len(), 1);
    w.assert_pull_writes_nothing();
}

#[test]
fn an_attendee_response_reaches_ln_attendance_status_before_any_pull() {
    let w = World::new();
    let (key, _) = w.linked_ln_meeting("Demo");
    let copy = w.events("ben").pop().expect("ben's copy");
    let mark = w.mark();
    let exchange_writes = w.mailbox.calendar_writes();
    w.mailbox
        .respond(&addr("ben"), &copy.item.id, ResponseType::Accept);

    w.deliver(mark);
    let a = w.activity(&key);
    assert_eq!(
        line_of(&a, "ben").attendance_status,
        AttendanceStatus::Accepted
    );
    assert_eq!(
        w.mailbox.calendar_writes(),
        exchange_writes,
        "no new meeting, no invitation (R21)"
    );
    w.assert_pull_writes_nothing();
}

// ---------------------------------------------------------------------------------------------
// Echoes, duplicates and order
// ---------------------------------------------------------------------------------------------

#[test]
fn an_echo_of_our_own_write_costs_one_read_on_each_side_and_writes_nothing() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Echo");
    let anna = w.user("anna").clone();

    // Our Exchange write (from an LN edit) comes back as a notification on anna's item.
    w.ln.edit_activity(&key, |a| a.subject = Some("Echo 2".into()));
    assert_eq!(w.push_activity_as(&anna, &key).counts.updated, 1);
    let (calls, reads, feeds, writes) = (
        w.mailbox.calls(&addr("anna")).len(),
        w.ln.activity_reads.load(Ordering::SeqCst),
        w.ln.feed_reads.load(Ordering::SeqCst),
        w.writes(),
    );
    let run = w.push_item("anna", &id);
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(
        w.mailbox.calls(&addr("anna"))[calls..],
        ["get_events"],
        "one Exchange read; no sync_calendar, no calendar_view"
    );
    assert_eq!(w.ln.activity_reads.load(Ordering::SeqCst), reads + 1);
    assert_eq!(w.ln.feed_reads.load(Ordering::SeqCst), feeds, "no LN feed");
    assert_eq!(w.writes(), writes);

    // Our LN write (from an Outlook edit) comes back as an LN webhook for the activity.
    w.mailbox
        .user_edit_event(&addr("anna"), &id, |f| f.body = Some("agenda".into()));
    assert_eq!(w.push_item("anna", &id).counts.updated, 1);
    assert_eq!(w.activity(&key).information.as_deref(), Some("agenda"));
    let (calls, reads, feeds, writes) = (
        w.mailbox.calls(&addr("anna")).len(),
        w.ln.activity_reads.load(Ordering::SeqCst),
        w.ln.feed_reads.load(Ordering::SeqCst),
        w.writes(),
    );
    let all_calls = w.mailbox.total_calls();
    let run = w.push_activity_as(&anna, &key);
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(w.mailbox.calls(&addr("anna"))[calls..], ["get_events"]);
    assert_eq!(
        w.mailbox.total_calls(),
        all_calls + 1,
        "no other mailbox is read"
    );
    assert_eq!(w.ln.activity_reads.load(Ordering::SeqCst), reads + 1);
    assert_eq!(w.ln.feed_reads.load(Ordering::SeqCst), feeds);
    assert_eq!(w.writes(), writes);
}

#[test]
fn duplicate_notifications_end_as_one() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Twice");
    w.mailbox
        .user_edit_event(&addr("anna"), &id, |f| f.location = Some("Hall".into()));
    w.push_item("anna", &id);
    let once = (w.activity(&key), w.writes(), w.links("anna"));
    for _ in 0..3 {
        let run = w.push_item("anna", &id);
        assert_eq!(run.counts.writes(), 0);
    }
    assert_eq!((w.activity(&key), w.writes(), w.links("anna")), once);

    w.ln.edit_activity(&key, |a| a.location = Some("Attic".into()));
    w.push_activity(&key);
    let once = (w.organized("anna"), w.writes());
    for _ in 0..3 {
        w.push_activity(&key);
    }
    assert_eq!((w.organized("anna"), w.writes()), once);
    assert_eq!(once.0[0].fields.location.as_deref(), Some("Attic"));
}

#[test]
fn out_of_order_notifications_end_as_in_order() {
    let w = World::new();
    let (key, id) = w.linked_outlook_meeting("Order");
    // Two edits; the notification of the first is processed after that of the second.
    w.mailbox
        .user_edit_event(&addr("anna"), &id, |f| f.subject = Some("Order v1".into()));
    w.mailbox
        .user_edit_event(&addr("anna"), &id, |f| f.subject = Some("Order v2".into()));
    w.push_item("anna", &id);
    let after_newer = w.writes();
    let late = w.push_item("anna", &id);
    assert_eq!(late.counts.writes(), 0);
    assert_eq!(w.writes(), after_newer);
    assert_eq!(w.activity(&key).subject.as_deref(), Some("Order v2"));

    // A "modified" that arrives after the item's deletion was processed changes nothing.
    w.mailbox.user_edit_event(&addr("anna"), &id, |f| {
        f.location = Some("Gone soon".into())
    });
    w.mailbox.user_delete_event(&addr("anna"), &id);
    w.push_item("anna", &id);
    assert!(w.ln.activity_now(&key).is_none());
    let after_delete = w.writes();
    let late = w.push_item("anna", &id);
    assert_eq!(
        (late.outcome, late.counts.writes()),
        (RunOutcome::Succeeded, 0)
    );
    assert_eq!(w.writes(), after_delete);

    // LN: an edit's webhook processed after the deletion's.
    let (key, _) = w.linked_ln_meeting("Order LN");
    w.ln.edit_activity(&key, |a| a.subject = Some("Order LN v2".into()));
    w.ln.delete_activity_now(&key);
    let run = w.push_activity(&key).expect("the link's holder");
    assert_eq!(run.counts.deleted, 1);
    assert!(
        w.organized("anna").iter().all(|e| !e
            .fields
            .subject
            .as_deref()
            .is_some_and(|s| s.starts_with("Order LN"))),
        "the meeting is cancelled"
    );
    let after_delete = w.writes();
    assert!(w.push_activity(&key).is_none(), "nobody's any more");
    assert_eq!(w.writes(), after_delete);
    w.assert_pull_writes_nothing();
}

// ---------------------------------------------------------------------------------------------
// Scope: the window, other users' meetings, unknown items, series
// ---------------------------------------------------------------------------------------------

#[test]
fn an_item_outside_the_window_another_users_meeting_or_an_unknown_id_writes_nothing() {
    let w = World::new();
    w.settle_by_pulls();
    let before = w.writes();
    let far = w
        .mailbox
        .user_create_event(&addr("anna"), &outlook_meeting("Next year", 400, &["ben"]));
    let run = w.push_item("anna", &far);
    assert_eq!(
        (run.outcome, run.counts.writes()),
        (RunOutcome::Succeeded, 0)
    );

    // ben organizes; anna's copy is not anna's to synchronize (R24).
    w.mailbox
        .user_create_event(&addr("ben"), &outlook_meeting("Ben's", 2, &["anna"]));
    let copy = w.events("anna").pop().expect("anna's copy");
    let run = w.push_item("anna", &copy.item.id);
    assert_eq!(
        (run.outcome, run.counts.writes()),
        (RunOutcome::Succeeded, 0)
    );

    let run = w.push_item("anna", &ExchangeItemId::new("no-such-item"));
    assert_eq!(
        (run.outcome, run.counts.writes()),
        (RunOutcome::Succeeded, 0)
    );

    assert_eq!(w.writes(), before);
    assert!(w.ln.activities().is_empty());
    assert!(w.links("anna").is_empty());
}

#[test]
fn a_series_notification_syncs_the_occurrences_that_changed_or_left_it() {
    let w = World::new();
    let mut weekly = outlook_meeting("Weekly", 1, &["ben"]);
    weekly.recurrence = Some((7, 4));
    let master = w.mailbox.user_create_event(&addr("anna"), &weekly);
    w.settle_by_pulls();
    assert_eq!(
        w.ln.activities().len(),
        4,
        "one appointment per occurrence (R25)"
    );
    let occurrences: Vec<CalendarEvent> = w.organized("anna");
    let moved = &occurrences[1];
    let dropped = &occurrences[2];
    let by_start = |at: Option<DateTime<Utc>>| {
        w.ln.activities().into_iter().find(|a| {
            a.external_reference.as_deref()
                == Some(
                    EventKey {
                        uid: moved.key.uid.clone(),
                        original_start: at,
                    }
                    .external_reference()
                    .as_str(),
                )
        })
    };

    // One occurrence moved: the notification names the master.
    let mark = w.mark();
    w.mailbox
        .user_edit_event(&addr("anna"), &moved.item.id, |f| {
            f.time = EventTime::Timed {
                start: day(8, 15),
                end: day(8, 16),
            };
        });
    assert!(
        w.mailbox
            .calendar_notifications(&addr("anna"), mark.0)
            .contains(&master)
    );
    let (reads, ln_writes) = (
        w.ln.activity_reads.load(Ordering::SeqCst),
        w.ln.activity_writes.load(Ordering::SeqCst),
    );
    let run = w.push_item("anna", &master);
    assert_eq!(run.counts.updated, 1);
    assert_eq!(
        w.ln.activity_reads.load(Ordering::SeqCst),
        reads + 1,
        "only the occurrence that changed is read in LN"
    );
    assert_eq!(
        w.ln.activity_writes.load(Ordering::SeqCst),
        ln_writes + 1,
        "only that appointment moves (scenario 22)"
    );
    let a = by_start(moved.key.original_start).expect("its appointment");
    assert_eq!((a.start, a.end), (day(8, 15), day(8, 16)));

    // One occurrence deleted: its appointment goes (origin Exchange, R29).
    w.mailbox.user_delete_event(&addr("anna"), &dropped.item.id);
    let run = w.push_item("anna", &master);
    assert_eq!(run.counts.deleted, 1);
    assert!(by_start(dropped.key.original_start).is_none());
    assert_eq!(w.ln.activities().len(), 3);

    w.deliver(mark);
    w.assert_pull_writes_nothing();

    // The whole series deleted: every appointment left goes.
    let mark = w.mark();
    w.mailbox.user_delete_event(&addr("anna"), &master);
    let run = w.push_item("anna", &master);
    assert_eq!(run.counts.deleted, 3);
    assert!(w.ln.activities().is_empty());
    w.deliver(mark);
    w.assert_pull_writes_nothing();
}

#[test]
fn a_deleted_series_beyond_the_deletion_gate_is_held() {
    let w = World::new();
    let mut daily = outlook_meeting("Daily", 1, &[]);
    daily.recurrence = Some((1, 25));
    let master = w.mailbox.user_create_event(&addr("anna"), &daily);
    w.settle_by_pulls();
    assert_eq!(w.links("anna").len(), 25);
    let before = w.writes();
    w.mailbox.user_delete_event(&addr("anna"), &master);

    let run = w.push_item("anna", &master);
    assert_eq!(
        (run.outcome, run.counts.held),
        (RunOutcome::Partial, 25),
        "R30"
    );
    assert_eq!(w.writes(), before, "nothing deleted");
    assert_eq!(w.ln.activities().len(), 25);
    assert_eq!(
        w.problems("anna")
            .iter()
            .filter(|p| p.problem == ProblemKind::HeldDeletion)
            .count(),
        25
    );
}

// ---------------------------------------------------------------------------------------------
// Lease, cursors, run records, problems, crashes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_busy_lease_makes_the_job_busy_and_it_reads_and_writes_nothing() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Busy");
    w.mailbox.user_edit_event(&addr("anna"), &id, |f| {
        f.location = Some("Elsewhere".into())
    });
    let held = block_on(w.store.acquire_lease(
        &w.env,
        &UserId::new("anna"),
        "calendar",
        "a pull",
        w.clock.now(),
        std::time::Duration::from_secs(600),
    ))
    .expect("lease");
    assert!(held);
    let (calls, reads, writes) = (
        w.mailbox.total_calls(),
        w.ln.activity_reads.load(Ordering::SeqCst),
        w.writes(),
    );

    let run = w.push_item("anna", &id);
    assert_eq!(run.outcome, RunOutcome::Busy);
    assert!(matches!(run.error, Some(SyncError::Busy)));
    let run = w.push_activity_as(&w.user("anna").clone(), &key);
    assert_eq!(run.outcome, RunOutcome::Busy);
    assert_eq!(
        (
            w.mailbox.total_calls(),
            w.ln.activity_reads.load(Ordering::SeqCst),
            w.writes()
        ),
        (calls, reads, writes)
    );
    assert_eq!(w.activity(&key).location.as_deref(), Some("Room 1"));
}

#[test]
fn a_user_without_a_mailbox_fails_and_nothing_is_read() {
    let mut w = World::new();
    let (_, id) = w.linked_ln_meeting("No mailbox");
    w.users[0].email = MailboxAddress::new("");
    let calls = w.mailbox.total_calls();
    let run = w.push_item("anna", &id);
    assert_eq!(run.outcome, RunOutcome::Failed);
    assert!(matches!(run.error, Some(SyncError::InvalidUser { .. })));
    assert_eq!(w.mailbox.total_calls(), calls);
}

#[test]
fn a_single_event_sync_moves_no_cursor_and_records_no_run() {
    let w = World::new();
    let (key, id) = w.linked_ln_meeting("Cursors");
    let cursors = |u: &str| {
        [CursorKind::ExchangeCalendar, CursorKind::LnActivities]
            .map(|k| block_on(w.store.cursor(&w.env, &UserId::new(u), k)).expect("cursor"))
    };
    let before = (cursors("anna"), cursors("ben"));
    let runs = block_on(w.store.last_runs(&w.env)).expect("runs");

    w.mailbox
        .user_edit_event(&addr("anna"), &id, |f| f.location = Some("Roof".into()));
    w.push_item("anna", &id);
    w.ln.edit_activity(&key, |a| a.subject = Some("Cursors 2".into()));
    w.push_activity(&key);
    let copy = w.events("ben").pop().expect("ben's copy");
    w.push_item("ben", &copy.item.id);

    assert_eq!(w.activity(&key).location.as_deref(), Some("Roof"));
    assert_eq!((cursors("anna"), cursors("ben")), before);
    assert_eq!(block_on(w.store.last_runs(&w.env)).expect("runs"), runs);
}

#[test]
fn item_problems_are_recorded_as_the_pull_records_them() {
    let w = World::new();
    w.settle_by_pulls();
    w.mailbox.refuse_create("Refused");
    let key =
        w.ln.upsert_activity(ln_meeting("Refused", 2, "anna", &["ben"]));

    let run = w.push_activity(&key).expect("anna organizes it");
    assert_eq!((run.outcome, run.counts.errors), (RunOutcome::Partial, 1));
    let problems = w.problems("anna");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].problem, ProblemKind::WriteFailed);
    assert_eq!(problems[0].ln_key, LnKey::from(&key));
    assert!(w.organized("anna").is_empty());
}

#[test]
fn a_crash_between_the_exchange_create_and_its_link_leaves_no_duplicate() {
    let w = World::new();
    w.settle_by_pulls();
    let mark = w.mark();
    let key =
        w.ln.upsert_activity(ln_meeting("Crash", 2, "anna", &["ben"]));
    w.store.crash_on_put_links(1, true);

    let run = w.push_activity(&key).expect("anna organizes it");
    assert_eq!(run.outcome, RunOutcome::Failed, "died after Exchange wrote");
    assert_eq!(w.store.crashes(), 1);
    assert_eq!(w.organized("anna").len(), 1);

    // The job runs again (R34): the intent's stamp finds the meeting instead of a second one.
    let run = w.push_activity(&key).expect("anna organizes it");
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(w.organized("anna").len(), 1);
    assert_eq!(w.links("anna").len(), 1);
    assert!(!w.links("anna")[0].is_intent());

    w.deliver(mark);
    assert_eq!(w.organized("anna").len(), 1);
    assert_eq!(w.events("ben").len(), 1);
    w.assert_pull_writes_nothing();
}

// ---------------------------------------------------------------------------------------------
// Ownership of an LN notification
// ---------------------------------------------------------------------------------------------

#[test]
fn the_owner_of_an_activity_is_its_organizer_then_the_user_holding_its_link() {
    let w = World::new();
    let owner = |key: &ActivityKey| {
        block_on(
            w.sync()
                .owner_of_activity(&w.ln, key, &w.users, &w.employees),
        )
        .expect("owner lookup")
        .map(|u| u.user.as_str().to_owned())
    };
    let bens =
        w.ln.upsert_activity(ln_meeting("Ben's", 2, "ben", &["anna"]));
    assert_eq!(owner(&bens).as_deref(), Some("ben"));

    let mut task = ln_meeting("A task", 2, "anna", &["ben"]);
    task.activity_type = ActivityType::Task;
    let task = w.ln.upsert_activity(task);
    assert_eq!(
        owner(&task),
        None,
        "not an appointment or call, never linked"
    );

    let doras =
        w.ln.upsert_activity(ln_meeting("Dora's", 2, "dora", &["anna"]));
    assert_eq!(owner(&doras), None, "dora is no sync user (R18)");
    assert_eq!(owner(&ActivityKey::new("NOPE")), None);

    w.settle_by_pulls();
    w.ln.delete_activity_now(&bens);
    assert_eq!(
        owner(&bens).as_deref(),
        Some("ben"),
        "deleted: the link's holder"
    );
    let (annas, _) = w.linked_ln_meeting("Anna's");
    w.ln.edit_activity(&annas, |a| a.activity_type = ActivityType::Task);
    assert_eq!(
        owner(&annas).as_deref(),
        Some("anna"),
        "became a task: still linked"
    );
    let run = w.push_activity(&annas).expect("anna");
    assert_eq!(
        run.counts.deleted, 1,
        "cancelled like one that lost Synchronize (R29)"
    );
}
