//! Calendar sync end to end: the LN simulator, the EWS simulator, the real LN client, EWS client
//! and SQLite store, driven through `CalendarSync` (spec `scenarios.md` 2, 3, 5, 6, 8, 10–14,
//! 16–24 and `behaviour.md` R14–R30). Each test states what a user or an administrator sees on
//! both sides, and call counts come from the simulators' request logs. Every EWS request of every
//! run is validated against Microsoft's schemas by the world.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ews_sim::{EventEdit, EventInstance, NewEvent, Pattern, Range, Recurrence, Response};
use ln_sim::model::{ActivityStatus, Attendance, AttendanceStatus, AttendeeType, Employee, Origin};
use lnsync_core::model::{ProblemKind, RunOutcome};
use lnsync_core::plan::calendar::ConflictPolicy;
use lnsync_core::service::SyncError;
use lnsync_tests::calendar_world::{CalendarWorld, employee_code, local};
use lnsync_tests::harness::TestResult;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};

const GUEST: &str = "guest@partner.example";
const BERLIN: &str = "W. Europe Standard Time";

fn naive(t: DateTime<Utc>) -> chrono::NaiveDateTime {
    t.naive_utc()
}

/// A one-hour Outlook event at `start` (UTC wall clock) with required attendees.
fn outlook_event(subject: &str, start: DateTime<Utc>, attendees: &[&str]) -> NewEvent {
    let mut e = NewEvent::new(subject, naive(start), naive(start + Duration::hours(1)));
    e.location = Some("Room 1".into());
    e.required_attendees = attendees.iter().map(|a| (*a).to_owned()).collect();
    e
}

fn weekly_monday(start_date: NaiveDate, range: Option<u32>) -> Recurrence {
    Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days_of_week: vec!["Monday".into()],
            first_day_of_week: None,
        },
        range: match range {
            Some(n) => Range::Numbered {
                start_date,
                number_of_occurrences: n,
            },
            None => Range::NoEnd { start_date },
        },
    }
}

/// The instances of the window with this UID.
fn with_uid(events: &[EventInstance], uid: &str) -> Vec<EventInstance> {
    events.iter().filter(|e| e.uid == uid).cloned().collect()
}

/// The values of attribute `attr` on every `<…:ItemId …>` element of a request body.
fn item_ids(body: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("ItemId ") {
        let tail = &rest[i..];
        let end = tail.find('>').unwrap_or(tail.len());
        let element = &tail[..end];
        if let Some(a) = element.find(" Id=\"") {
            let v = &element[a + 5..];
            if let Some(q) = v.find('"') {
                ids.push(v[..q].to_owned());
            }
        }
        rest = &tail[end..];
    }
    ids
}

fn attribute(body: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = body.find(&key)? + key.len();
    let q = body[i..].find('"')?;
    Some(body[i..i + q].to_owned())
}

/// A meeting organized in LN by alice inviting bob, synchronized until nothing moves; returns
/// the activity key and the meeting's UID.
async fn synced_ln_meeting(
    w: &CalendarWorld,
    subject: &str,
    day: i64,
) -> Result<(String, String), lnsync_tests::harness::BoxError> {
    let key = w.ln_meeting(subject, w.at(day, 10), "alice", &["bob"])?;
    w.settle(4).await?;
    let links = w.links("alice").await?;
    let link = links
        .iter()
        .find(|l| l.ln_key.as_str() == key)
        .ok_or("the LN meeting is linked")?;
    let uid = link
        .ical_uid
        .as_ref()
        .ok_or("the link knows the UID")?
        .as_str()
        .to_owned();
    Ok((key, uid))
}

// ---------------------------------------------------------------------------------------------
// Initial load and matching
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn initial_load_of_120_ln_appointments_costs_two_create_item_requests() -> TestResult {
    let w = CalendarWorld::start(1).await?;
    let n: usize = 120;
    for i in 0..n {
        let day = 1 + i64::try_from(i).unwrap_or(0);
        w.ln_create(
            CalendarWorld::appointment(&format!("Visit {i}"), w.at(day, 10)),
            vec![w.organizer_line("alice")],
        )?;
    }

    let run = w.run().await?;
    run.assert_ok();

    let creates: Vec<_> = w
        .world
        .ews_requests_for(&w.email("alice"))
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("CreateItem"))
        .collect();
    let sizes: Vec<usize> = creates
        .iter()
        .map(|r| r.body.matches("<t:CalendarItem>").count())
        .collect();
    assert_eq!(sizes, vec![100, 20], "⌈120/100⌉ CreateItem requests");
    assert!(
        creates
            .iter()
            .all(|r| r.body.contains(r#"SendMeetingInvitations="SendToNone""#)),
        "plain appointments invite nobody"
    );
    assert_eq!(run.user("alice").counts.created, 120);
    assert_eq!(
        w.ews_ops("alice").get("GetItem"),
        Some(&3),
        "the new items read back 50 per GetItem: 100 + 20"
    );
    assert_eq!(w.organized("alice").len(), n);
    let links = w.links("alice").await?;
    assert_eq!(links.len(), n);
    assert!(
        links.iter().all(|l| !l.is_intent()),
        "every intent resolved"
    );

    // The next run finds everything linked and writes nothing.
    let run = w.run().await?;
    run.assert_ok();
    assert_eq!((w.ews_writes(), w.ln_writes(), run.writes()), (0, 0, 0));
    assert_eq!(w.organized("alice").len(), n, "no duplicates");
    Ok(())
}

#[tokio::test]
async fn s02_a_meeting_already_on_both_sides_is_linked_with_zero_creates() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let start = w.at(3, 10);
    let created = w.user_creates(
        "alice",
        outlook_event("Budget review", start, &[&w.email("bob")]),
    )?;
    let mut a = CalendarWorld::appointment("Budget review", start);
    a.external_reference = Some(created.uid.clone());
    a.origin = Origin::Exchange;
    let key = w.ln_create(a, vec![w.organizer_line("alice"), w.invitee_line("bob")])?;

    w.run().await?.assert_ok();

    assert_eq!(
        w.world.ews.count_operation("CreateItem"),
        0,
        "no Exchange create"
    );
    assert_eq!(w.ln_calls("POST", "Activities"), 0, "no LN create");
    let links = w.links("alice").await?;
    assert_eq!(links.len(), 1, "one link: {links:#?}");
    assert_eq!(links[0].ln_key.as_str(), key);
    assert_eq!(links[0].exchange_id.as_str(), created.id.as_str());
    assert!(
        w.links("bob").await?.is_empty(),
        "bob's copy is not a second pair"
    );
    assert_eq!(w.ln_activities().len(), 1, "still one LN activity");
    assert_eq!(w.organized("alice").len(), 1, "still one meeting");
    assert_eq!(
        with_uid(&w.events("bob"), &created.uid).len(),
        1,
        "one invitation"
    );
    Ok(())
}

#[tokio::test]
async fn s03_a_large_calendar_over_years_reads_only_the_window_in_pages_once() -> TestResult {
    const PAGE: u32 = 25;
    let w = CalendarWorld::builder(1)
        .find_page_size(PAGE)
        .start()
        .await?;
    // One appointment every four days for ten years around today (913 items).
    let mut in_window = BTreeSet::new();
    let window = w.window();
    for d in (-1825..=1825).step_by(4) {
        let start = w.at(d, 9);
        let mut e = outlook_event(&format!("Item {d}"), start, &[]);
        e.send = false;
        let created = w.user_creates("alice", e)?;
        if start + Duration::hours(1) >= window.start && start < window.end {
            in_window.insert(created.id.0.clone());
        }
    }
    assert!(
        in_window.len() > 2 * PAGE as usize,
        "the window needs several pages"
    );

    w.run().await?.assert_ok();

    let activities = w.ln_activities();
    assert_eq!(
        activities.len(),
        in_window.len(),
        "one LN appointment per in-window item"
    );
    let refs: HashSet<_> = activities
        .iter()
        .filter_map(|a| a.record.data.external_reference.clone())
        .collect();
    assert_eq!(refs.len(), activities.len(), "no item processed twice");

    let requests = w.world.ews_requests_for(&w.email("alice"));
    let mut read: Vec<String> = Vec::new();
    let mut views = 0;
    for r in &requests {
        match r.operation.as_deref() {
            Some("GetItem") => read.extend(item_ids(&r.body)),
            Some("FindItem") => {
                assert!(
                    r.body.contains("CalendarView"),
                    "no listing of the whole folder"
                );
                views += 1;
                let start: DateTime<Utc> = attribute(&r.body, "StartDate")
                    .ok_or("CalendarView has a StartDate")?
                    .parse()?;
                let end: DateTime<Utc> = attribute(&r.body, "EndDate")
                    .ok_or("CalendarView has an EndDate")?
                    .parse()?;
                assert!(
                    start >= window.start - Duration::minutes(1) && end <= window.end,
                    "a view outside the window: {start}..{end}"
                );
            }
            _ => {}
        }
    }
    assert!(
        views > in_window.len() / PAGE as usize,
        "CalendarView is paged ({views} calls for {} items)",
        in_window.len()
    );
    let unique: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(unique.len(), read.len(), "an item was fetched twice");
    let outside: Vec<&String> = unique.difference(&in_window).collect();
    assert!(
        outside.is_empty(),
        "items outside the window were read: {outside:?}"
    );
    assert_eq!(unique, in_window, "every in-window item is read");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Echo and idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s05_our_own_exchange_write_does_not_echo_back_to_ln() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Kickoff", 2).await?;
    w.advance(Duration::minutes(1));
    w.ln_patch(&key, json!({"subject": "Kickoff with agenda"}))?;

    w.run().await?.assert_ok();
    assert_eq!(
        w.world
            .ews
            .count_operation_for_mailbox("UpdateItem", &w.email("alice")),
        1,
        "the LN change is written to the organizer's meeting"
    );
    let org = with_uid(&w.organized("alice"), &uid);
    assert_eq!(org.len(), 1);
    assert_eq!(org[0].subject.as_deref(), Some("Kickoff with agenda"));
    let copy = with_uid(&w.events("bob"), &uid);
    assert_eq!(
        copy[0].subject.as_deref(),
        Some("Kickoff with agenda"),
        "bob got the update"
    );

    let version = w.ln_activity(&key).ok_or("activity")?.record.version;
    let run = w.run().await?;
    run.assert_ok();
    assert_eq!(
        w.ln_writes(),
        0,
        "our own Exchange write is not copied back to LN"
    );
    assert_eq!(w.ews_writes(), 0, "nor written to Exchange again");
    assert_eq!(run.writes(), 0);
    assert_eq!(
        w.ln_activity(&key).ok_or("activity")?.record.version,
        version
    );
    Ok(())
}

#[tokio::test]
async fn s06_a_change_to_unmapped_exchange_fields_writes_nothing() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Design review", 3).await?;
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    let version = w.ln_activity(&key).ok_or("activity")?.record.version;
    w.user_edits(
        "alice",
        &item.id,
        EventEdit {
            categories: Some(vec!["Blue category".into()]),
            send: Some(false),
            ..EventEdit::default()
        },
    )?;

    w.run().await?.assert_ok();

    let ops = w.ews_ops("alice");
    assert!(
        ops.get("GetItem").is_some_and(|n| *n >= 1),
        "the change was read: {ops:?}"
    );
    assert_eq!(w.ln_writes(), 0, "LN is not written");
    assert_eq!(w.ews_writes(), 0, "Exchange is not written");
    assert_eq!(
        w.ln_activity(&key).ok_or("activity")?.record.version,
        version
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s08_both_sides_changed_the_newer_change_wins_and_the_conflict_is_recorded() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Pricing", 4).await?;
    w.advance(Duration::minutes(1));
    w.ln_patch(&key, json!({"subject": "Pricing (LN)"}))?;
    w.advance(Duration::minutes(2));
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    w.user_edits(
        "alice",
        &item.id,
        EventEdit {
            subject: Some("Pricing (Outlook)".into()),
            ..EventEdit::default()
        },
    )?;

    w.run().await?.assert_ok();

    let a = w.ln_activity(&key).ok_or("activity")?;
    assert_eq!(
        a.record.data.subject.as_deref(),
        Some("Pricing (Outlook)"),
        "LN has the winner"
    );
    let org = with_uid(&w.organized("alice"), &uid);
    assert_eq!(
        org[0].subject.as_deref(),
        Some("Pricing (Outlook)"),
        "Exchange keeps it"
    );
    let conflicts = w.all_problems(ProblemKind::Conflict).await?;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let (user, ln_key, detail) = &conflicts[0];
    assert_eq!((user.as_str(), ln_key.as_str()), ("alice", key.as_str()));
    assert!(
        detail.contains("Pricing (LN)") && detail.contains("Pricing (Outlook)"),
        "both versions are recorded: {detail}"
    );
    // Converged: nothing more to do.
    w.run().await?.assert_ok();
    assert_eq!((w.ln_writes(), w.ews_writes()), (0, 0));
    Ok(())
}

#[tokio::test]
async fn s08_with_ln_wins_the_older_ln_change_wins_on_both_sides() -> TestResult {
    let w = CalendarWorld::builder(2)
        .options(|o| o.calendar.conflict_policy = ConflictPolicy::LnWins)
        .start()
        .await?;
    let (key, uid) = synced_ln_meeting(&w, "Roadmap", 4).await?;
    w.advance(Duration::minutes(1));
    w.ln_patch(&key, json!({"subject": "Roadmap (LN)"}))?;
    w.advance(Duration::minutes(2));
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    w.user_edits(
        "alice",
        &item.id,
        EventEdit {
            subject: Some("Roadmap (Outlook)".into()),
            ..EventEdit::default()
        },
    )?;

    w.run().await?.assert_ok();

    let a = w.ln_activity(&key).ok_or("activity")?;
    assert_eq!(a.record.data.subject.as_deref(), Some("Roadmap (LN)"));
    let org = with_uid(&w.organized("alice"), &uid);
    assert_eq!(
        org[0].subject.as_deref(),
        Some("Roadmap (LN)"),
        "Exchange got LN's subject"
    );
    let copy = with_uid(&w.events("bob"), &uid);
    assert_eq!(
        copy[0].subject.as_deref(),
        Some("Roadmap (LN)"),
        "and so did bob"
    );
    let conflicts = w.all_problems(ProblemKind::Conflict).await?;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(
        conflicts[0].2.contains("Roadmap (Outlook)"),
        "the loser is recorded too"
    );
    Ok(())
}

#[tokio::test]
async fn s10_changed_in_ln_and_deleted_in_exchange_the_meeting_is_created_again() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Audit", 5).await?;
    w.advance(Duration::minutes(1));
    w.ln_patch(&key, json!({"subject": "Audit (new scope)"}))?;
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    w.user_deletes("alice", &item.id, true)?;

    w.run().await?.assert_ok();

    let org = w.organized("alice");
    assert_eq!(org.len(), 1, "the meeting exists again: {org:#?}");
    assert_eq!(org[0].subject.as_deref(), Some("Audit (new scope)"));
    assert_ne!(org[0].uid, uid, "a new meeting");
    let a = w.ln_activity(&key).ok_or("the activity stays")?;
    assert_eq!(
        a.record.data.status,
        ActivityStatus::Planned,
        "not set to Not Held"
    );
    let links = w.links("alice").await?;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].exchange_id.as_str(), org[0].id.as_str());
    let recorded = w.all_problems(ProblemKind::Conflict).await?;
    assert!(
        recorded
            .iter()
            .any(|(u, k, d)| u == "alice" && *k == key && d.contains("created again")),
        "the decision is recorded: {recorded:?}"
    );
    Ok(())
}

#[tokio::test]
async fn s10_changed_in_exchange_and_deleted_in_ln_the_deletion_wins() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Offsite planning", 5).await?;
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    w.user_edits(
        "alice",
        &item.id,
        EventEdit {
            subject: Some("Offsite planning (Outlook)".into()),
            ..EventEdit::default()
        },
    )?;
    w.ln_delete(&key)?;

    let run = w.run().await?;
    run.assert_ok();

    assert!(w.organized("alice").is_empty(), "the meeting is cancelled");
    assert!(
        w.ln_activities().is_empty(),
        "the LN activity is not recreated"
    );
    assert!(w.links("alice").await?.is_empty());
    assert_eq!(
        run.user("alice").counts.deleted,
        1,
        "the run records the deletion"
    );
    // Deterministic: the next run changes nothing.
    w.run().await?.assert_ok();
    assert_eq!((w.ln_writes(), w.ews_writes()), (0, 0));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deletions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s11_an_ln_deletion_cancels_the_meeting_in_the_organizers_mailbox() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Steering committee", 6).await?;
    w.ln_delete(&key)?;

    w.run().await?.assert_ok();

    assert!(
        with_uid(&w.organized("alice"), &uid).is_empty(),
        "gone from alice's calendar"
    );
    let deletes: Vec<_> = w
        .world
        .ews_requests_for(&w.email("alice"))
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("DeleteItem"))
        .collect();
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0]
            .body
            .contains("SendMeetingCancellations=\"SendToAllAndSaveCopy\""),
        "cancellations are sent"
    );
    let copy = with_uid(&w.events("bob"), &uid);
    assert_eq!(copy.len(), 1);
    assert!(copy[0].is_cancelled, "bob's copy shows the cancellation");
    assert!(w.links("alice").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn s12_the_organizer_deleting_an_ln_meeting_sets_it_to_not_held() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Quarterly", 6).await?;
    let item = w.ews_item("alice", &uid).ok_or("alice's meeting")?;
    w.user_deletes("alice", &item.id, true)?;

    w.run().await?.assert_ok();

    let a = w.ln_activity(&key).ok_or("the LN activity stays")?;
    assert_eq!(a.record.data.status, ActivityStatus::NotHeld);
    assert!(w.links("alice").await?.is_empty());
    assert!(w.organized("alice").is_empty(), "not recreated");
    Ok(())
}

#[tokio::test]
async fn s12_the_organizer_deleting_an_exchange_meeting_deletes_the_ln_activity() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let created = w.user_creates("alice", outlook_event("Dentist", w.at(2, 8), &[]))?;
    w.run().await?.assert_ok();
    let acts = w.ln_activities();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].record.data.origin, Origin::Exchange);
    let key = acts[0].record.data.activity.clone();

    w.user_deletes("alice", &created.id, true)?;
    w.run().await?.assert_ok();

    assert!(w.ln_activity(&key).is_none(), "deleted in LN");
    assert!(w.links("alice").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn s13_an_empty_exchange_listing_while_links_exist_stops_the_run() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let mut keys = Vec::new();
    for d in 1..=6 {
        keys.push(w.ln_meeting(&format!("Review {d}"), w.at(d, 10), "alice", &["bob"])?);
    }
    w.settle(4).await?;
    assert_eq!(w.links("alice").await?.len(), 6);
    // The mailbox comes back empty (restored from an empty backup, say), and Exchange forgot
    // every sync state: the next run has to list the calendar in full.
    for e in w.organized("alice") {
        w.user_deletes("alice", &e.id, false)?;
    }
    assert!(w.world.ews.invalidate_sync_states(Some(&w.email("alice"))) > 0);

    let run = w.run().await?;

    let alice = run.user("alice");
    assert_eq!(
        alice.outcome,
        RunOutcome::Failed,
        "alice is reported as failing"
    );
    assert!(
        matches!(alice.error, Some(SyncError::SafetyStop { .. })),
        "{:?}",
        alice.error
    );
    assert_eq!(w.ln_writes(), 0, "nothing deleted or changed in LN");
    assert_eq!(w.ews_writes(), 0);
    for k in &keys {
        let a = w.ln_activity(k).ok_or("still in LN")?;
        assert_eq!(a.record.data.status, ActivityStatus::Planned, "{k}");
    }
    assert_eq!(w.links("alice").await?.len(), 6, "links kept");
    Ok(())
}

#[tokio::test]
async fn s14_more_deletions_than_the_threshold_are_held_for_an_administrator() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let mut keys = Vec::new();
    for i in 0..25 {
        keys.push(w.ln_meeting(&format!("Visit {i}"), w.at(1 + i, 10), "alice", &["bob"])?);
    }
    w.settle(4).await?;
    assert_eq!(w.organized("alice").len(), 25);
    for k in &keys {
        w.ln_delete(k)?;
    }

    let run = w.run().await?;

    let alice = run.user("alice");
    assert_eq!(alice.outcome, RunOutcome::Partial, "{alice:?}");
    assert_eq!(alice.counts.held, 25);
    assert_eq!(w.ews_writes(), 0, "no meeting cancelled");
    assert_eq!(w.organized("alice").len(), 25);
    let held = w.all_problems(ProblemKind::HeldDeletion).await?;
    let held_keys: BTreeSet<&str> = held.iter().map(|(_, k, _)| k.as_str()).collect();
    let expected: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(held_keys, expected, "every held deletion is listed");
    // Still held on the next run, not slipped through.
    w.run().await?;
    assert_eq!(w.ews_writes(), 0);
    assert_eq!(w.organized("alice").len(), 25);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Meetings, organizers and attendees
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s16_one_meeting_in_the_organizers_mailbox_invitations_and_attendee_flags() -> TestResult {
    // One user at a time in LN's order (alice, bob, carol): carol organizes, so her attendees'
    // runs come before their copies exist.
    let w = CalendarWorld::builder(3)
        .options(|o| o.user_concurrency = 1)
        .start()
        .await?;
    let mut lines = vec![
        w.organizer_line("carol"),
        w.invitee_line("alice"),
        w.invitee_line("bob"),
    ];
    lines.push(CalendarWorld::external_line(GUEST));
    let key = w.ln_create(CalendarWorld::appointment("Partner day", w.at(7, 9)), lines)?;

    w.run().await?.assert_ok();

    let org = w.organized("carol");
    assert_eq!(
        org.len(),
        1,
        "exactly one meeting, in the organizer's mailbox"
    );
    let uid = org[0].uid.clone();
    let mut invited: Vec<String> = org[0].attendees.iter().map(|a| a.email.clone()).collect();
    invited.sort();
    assert_eq!(
        invited,
        [w.email("alice"), w.email("bob"), GUEST.to_owned()]
    );
    assert_eq!(w.world.ews.count_operation("CreateItem"), 1);
    for u in ["alice", "bob"] {
        let copies = with_uid(&w.events(u), &uid);
        assert_eq!(copies.len(), 1, "{u} received the invitation");
        assert!(!copies[0].is_organizer, "{u} holds an attendee copy");
        assert!(w.organized(u).is_empty(), "{u} organizes nothing");
        let line = w.ln_line(&key, &w.email(u));
        assert!(line.sent_to_synchronizer, "{u}: Sent to Synchronizer");
        assert!(
            !line.synchronized,
            "{u}: not Synchronized before their run saw it"
        );
    }
    let guest = w.ln_line(&key, GUEST);
    assert!(
        guest.sent_to_synchronizer && guest.synchronized,
        "external: accepted by Exchange"
    );

    w.run().await?.assert_ok();

    for u in ["alice", "bob"] {
        assert!(
            w.ln_line(&key, &w.email(u)).synchronized,
            "{u}: Synchronized once seen"
        );
    }
    assert_eq!(
        w.world.ews.count_operation("CreateItem"),
        0,
        "no second meeting"
    );
    assert_eq!(w.organized("carol").len(), 1);
    Ok(())
}

#[tokio::test]
async fn s17_a_meeting_in_three_synced_mailboxes_is_one_activity_with_three_attendees() -> TestResult
{
    let w = CalendarWorld::start(3).await?;
    let created = w.user_creates(
        "alice",
        outlook_event(
            "Team lunch",
            w.at(3, 12),
            &[&w.email("bob"), &w.email("carol")],
        ),
    )?;

    w.settle(4).await?;

    let acts = w.ln_activities();
    assert_eq!(acts.len(), 1, "one meeting, one activity (R24)");
    let a = &acts[0];
    assert_eq!(
        a.record.data.external_reference.as_deref(),
        Some(created.uid.as_str())
    );
    let lines: Vec<_> = a.attendees.values().map(|r| r.data.clone()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let organizer: Vec<_> = lines
        .iter()
        .filter(|l| l.attendance == Attendance::MeetingOrganizer)
        .collect();
    assert_eq!(organizer.len(), 1);
    assert_eq!(
        organizer[0].attendee.as_deref(),
        Some(employee_code("alice").as_str())
    );
    let mut employees: Vec<_> = lines
        .iter()
        .filter(|l| l.attendee_type == AttendeeType::Employee)
        .filter_map(|l| l.attendee.clone())
        .collect();
    employees.sort();
    assert_eq!(employees, ["E-alice", "E-bob", "E-carol"]);
    for u in ["bob", "carol"] {
        assert!(
            w.links(u).await?.is_empty(),
            "{u}'s copy makes no pair of its own"
        );
    }
    Ok(())
}

#[tokio::test]
async fn s18_an_activity_whose_organizer_is_not_a_sync_user_is_not_sent_and_says_why() -> TestResult
{
    let w = CalendarWorld::start(2).await?;
    // `former` is an employee whose sync user is inactive.
    let key = w.ln_create(
        CalendarWorld::appointment("Fair", w.at(4, 9)),
        vec![w.organizer_line("former"), w.invitee_line("alice")],
    )?;

    w.run().await?.assert_ok();

    assert_eq!(
        w.world.ews.count_operation("CreateItem"),
        0,
        "nothing created in Exchange"
    );
    for u in ["alice", "bob", "former"] {
        assert!(w.events(u).is_empty(), "{u}'s calendar is untouched");
    }
    let skipped = w.all_problems(ProblemKind::Skipped).await?;
    let mine: Vec<_> = skipped.iter().filter(|(_, k, _)| *k == key).collect();
    assert_eq!(mine.len(), 1, "the reason is shown once: {skipped:?}");
    assert!(mine[0].2.contains("not sent"), "{}", mine[0].2);
    let line = w.ln_line(&key, &w.email("alice"));
    assert!(!line.sent_to_synchronizer && !line.synchronized);
    Ok(())
}

#[tokio::test]
async fn s19_an_accept_in_outlook_sets_attendance_status_and_sends_nothing() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Demo", 2).await?;
    let copy = w.ews_item("bob", &uid).ok_or("bob's copy")?;
    w.world
        .ews
        .user_respond(&w.email("bob"), &copy.id, Response::Accept, true)?;

    w.run().await?.assert_ok();

    assert_eq!(
        w.ln_line(&key, &w.email("bob")).attendance_status,
        AttendanceStatus::Accepted
    );
    assert_eq!(w.ews_writes(), 0, "no new meeting, no invitation");
    assert_eq!(with_uid(&w.organized("alice"), &uid).len(), 1);
    assert_eq!(with_uid(&w.events("bob"), &uid).len(), 1);
    let a = w.ln_activity(&key).ok_or("activity")?;
    assert_eq!(a.record.data.subject.as_deref(), Some("Demo"));
    Ok(())
}

#[tokio::test]
async fn s20_an_attendee_whose_ln_email_differs_in_case_is_not_synchronized() -> TestResult {
    let w = CalendarWorld::start(3).await?;
    let bob = w.email("bob");
    w.world.ln.store().upsert_employee(
        &w.company,
        Employee {
            employee: employee_code("bob"),
            name: Some("bob (employee)".into()),
            user: Some("bob".into()),
            email: Some(bob.to_uppercase()),
        },
    )?;
    let key = w.ln_meeting("Board prep", w.at(5, 13), "alice", &["bob", "carol"])?;

    w.run().await?.assert_ok();

    let org = w.organized("alice");
    assert_eq!(org.len(), 1);
    let invited: Vec<&str> = org[0].attendees.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(invited, [w.email("carol")], "bob is not invited");
    assert!(w.events("bob").is_empty(), "bob got nothing");
    let bob_line = w.ln_line(&key, &bob);
    assert!(!bob_line.sent_to_synchronizer);
    let problems = w.problems("alice").await?;
    assert!(
        problems
            .iter()
            .any(|p| p.ln_key.as_str() == key && p.detail.contains("differs in case")),
        "the mismatch is reported: {problems:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recurrence and time
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s21_a_weekly_series_rolls_forward_over_weeks_without_duplicates() -> TestResult {
    let w = CalendarWorld::builder(2)
        .options(|o| o.calendar.horizon_days = 28)
        .start()
        .await?;
    let mut e = NewEvent::new("Weekly sync", local(0, 10), local(0, 11));
    e.recurrence = Some(weekly_monday(local(0, 10).date(), None));
    let series = w.user_creates("alice", e)?;

    w.run().await?.assert_ok();
    assert_eq!(
        w.ln_activities().len(),
        4,
        "one appointment per occurrence in the window"
    );

    for week in 1..=3 {
        w.advance(Duration::weeks(1));
        w.run().await?.assert_ok();
        let window = w.window();
        let acts = w.ln_activities();
        let refs: HashSet<_> = acts
            .iter()
            .filter_map(|a| a.record.data.external_reference.clone())
            .collect();
        assert_eq!(refs.len(), acts.len(), "week {week}: no duplicates");
        assert!(refs.iter().all(|r| r.starts_with(&series.uid)));
        let in_window: BTreeSet<DateTime<Utc>> = acts
            .iter()
            .filter_map(|a| a.record.data.start)
            .filter(|s| *s >= window.start && *s < window.end)
            .collect();
        let expected: BTreeSet<DateTime<Utc>> = (0..4).map(|i| w.at(7 * (week + i), 10)).collect();
        assert_eq!(in_window, expected, "week {week}: the window's occurrences");
        assert_eq!(
            acts.len(),
            4 + week as usize,
            "week {week}: passed ones stay in LN"
        );
        assert_eq!(
            w.links("alice").await?.len(),
            4,
            "week {week}: passed ones are unlinked"
        );
        assert_eq!(w.ews_writes(), 0, "week {week}: the series is not written");
    }
    Ok(())
}

#[tokio::test]
async fn s22_moving_one_occurrence_moves_only_its_ln_appointment() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let mut e = NewEvent::new("Coaching", local(7, 10), local(7, 11));
    e.recurrence = Some(weekly_monday(local(7, 10).date(), Some(4)));
    let series = w.user_creates("alice", e)?;
    w.settle(3).await?;
    let before: BTreeMap<String, (Option<DateTime<Utc>>, u64)> = w
        .ln_activities()
        .into_iter()
        .map(|a| {
            (
                a.record.data.activity.clone(),
                (a.record.data.start, a.record.version),
            )
        })
        .collect();
    assert_eq!(before.len(), 4);
    let second = w
        .events("alice")
        .into_iter()
        .find(|e| e.uid == series.uid && e.original_start == Some(w.at(14, 10)))
        .ok_or("the second occurrence")?;
    w.user_edits(
        "alice",
        &second.id,
        EventEdit {
            start_utc: Some(w.at(14, 15)),
            end_utc: Some(w.at(14, 16)),
            ..EventEdit::default()
        },
    )?;

    w.run().await?.assert_ok();

    assert_eq!(
        w.ln_calls("PATCH", "Activities"),
        1,
        "one LN appointment written"
    );
    assert_eq!(
        w.ln_calls("POST", "Activities") + w.ln_calls("DELETE", "Activities"),
        0
    );
    let after = w.ln_activities();
    assert_eq!(after.len(), 4);
    let mut moved = 0;
    for a in after {
        let (start, version) = before[&a.record.data.activity];
        if start == Some(w.at(14, 10)) {
            moved += 1;
            assert_eq!(
                a.record.data.start,
                Some(w.at(14, 15)),
                "the moved occurrence"
            );
            assert_eq!(a.record.data.end, Some(w.at(14, 16)));
        } else {
            assert_eq!(
                a.record.version, version,
                "{} untouched",
                a.record.data.activity
            );
        }
    }
    assert_eq!(moved, 1);
    Ok(())
}

#[tokio::test]
async fn s23_a_series_across_the_dst_switch_keeps_its_local_time() -> TestResult {
    let w = CalendarWorld::start(1).await?;
    // Mondays 09:00 in Berlin from 15 March 2027; summer time starts on 28 March.
    let first = local(14, 9);
    let mut e = NewEvent::new("Jour fixe", first, local(14, 10)).in_zone(BERLIN);
    e.recurrence = Some(weekly_monday(first.date(), Some(4)));
    w.user_creates("alice", e)?;

    w.run().await?.assert_ok();

    let mut starts: Vec<(DateTime<Utc>, DateTime<Utc>)> = w
        .ln_activities()
        .into_iter()
        .filter_map(|a| Some((a.record.data.start?, a.record.data.end?)))
        .collect();
    starts.sort();
    let expected = [
        (w.at(14, 8), w.at(14, 9)),
        (w.at(21, 8), w.at(21, 9)),
        (w.at(28, 7), w.at(28, 8)),
        (w.at(35, 7), w.at(35, 8)),
    ];
    assert_eq!(
        starts, expected,
        "09:00 local = 08:00Z in winter, 07:00Z in summer"
    );
    Ok(())
}

#[tokio::test]
async fn s24_an_event_that_passed_is_unlinked_and_neither_side_is_deleted() -> TestResult {
    let w = CalendarWorld::start(1).await?;
    let created = w.user_creates("alice", outlook_event("Standup", w.at(1, 10), &[]))?;
    w.run().await?.assert_ok();
    let acts = w.ln_activities();
    assert_eq!(acts.len(), 1);
    let (key, version) = (acts[0].record.data.activity.clone(), acts[0].record.version);

    w.advance(Duration::days(2));
    w.run().await?.assert_ok();

    assert!(w.links("alice").await?.is_empty(), "unlinked");
    assert_eq!((w.ln_writes(), w.ews_writes()), (0, 0), "quietly");
    let a = w.ln_activity(&key).ok_or("still in LN")?;
    assert_eq!(
        (a.record.version, a.record.data.status),
        (version, ActivityStatus::Planned)
    );
    assert!(
        w.ews_item("alice", &created.uid).is_some(),
        "still in Exchange"
    );
    Ok(())
}

#[tokio::test]
async fn s24_an_event_moved_into_the_past_in_outlook_is_unlinked_quietly() -> TestResult {
    let w = CalendarWorld::start(1).await?;
    let created = w.user_creates("alice", outlook_event("Retro", w.at(2, 10), &[]))?;
    w.run().await?.assert_ok();
    let key = w.ln_activities()[0].record.data.activity.clone();

    w.user_edits(
        "alice",
        &created.id,
        EventEdit {
            start_utc: Some(w.at(-3, 10)),
            end_utc: Some(w.at(-3, 11)),
            ..EventEdit::default()
        },
    )?;
    w.run().await?.assert_ok();

    assert!(w.links("alice").await?.is_empty(), "unlinked");
    assert_eq!((w.ln_writes(), w.ews_writes()), (0, 0), "quietly");
    let a = w.ln_activity(&key).ok_or("still in LN")?;
    assert_eq!(a.record.data.status, ActivityStatus::Planned);
    assert!(
        w.ews_item("alice", &created.uid).is_some(),
        "still in Exchange"
    );
    Ok(())
}

#[tokio::test]
async fn s24_an_activity_moved_into_the_past_in_ln_is_unlinked_quietly() -> TestResult {
    let w = CalendarWorld::start(2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Workshop", 2).await?;
    w.ln_patch(&key, json!({"start": w.at(-3, 10), "end": w.at(-3, 11)}))?;

    w.run().await?.assert_ok();

    assert!(w.links("alice").await?.is_empty(), "unlinked");
    assert_eq!(
        w.ews_writes(),
        0,
        "the meeting is neither cancelled nor moved"
    );
    assert_eq!(
        with_uid(&w.organized("alice"), &uid).len(),
        1,
        "still in Exchange"
    );
    let a = w.ln_activity(&key).ok_or("still in LN")?;
    assert_eq!(a.record.data.start, Some(w.at(-3, 10)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cost of a run (docs/calendar.md) and R14
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_run_costs_one_sync_folder_items_per_user_and_no_writes() -> TestResult {
    let w = CalendarWorld::start(3).await?;
    w.ln_meeting("Ops review", w.at(2, 9), "alice", &["bob", "carol"])?;
    w.user_creates(
        "bob",
        outlook_event("Customer visit", w.at(3, 14), &[&w.email("carol")]),
    )?;
    w.settle(4).await?;

    let run = w.run().await?;
    run.assert_ok();
    for u in ["alice", "bob", "carol"] {
        let ops = w.ews_ops(u);
        assert_eq!(
            ops,
            BTreeMap::from([("SyncFolderItems".to_owned(), 1)]),
            "{u}"
        );
    }
    assert_eq!((w.ews_writes(), w.ln_writes(), run.writes()), (0, 0, 0));
    assert_eq!(
        w.ln_calls("GET", "Activities"),
        1,
        "the LN feed once for three users"
    );

    // A day later the window's day changed: one CalendarView of the new slice at most.
    w.advance(Duration::days(1));
    let run = w.run().await?;
    run.assert_ok();
    for u in ["alice", "bob", "carol"] {
        let ops = w.ews_ops(u);
        assert_eq!(ops.get("SyncFolderItems"), Some(&1), "{u}: {ops:?}");
        assert!(
            ops.get("CalendarView").is_none_or(|n| *n <= 1),
            "{u}: {ops:?}"
        );
        assert_eq!(
            ops.keys()
                .filter(|k| !["SyncFolderItems", "CalendarView"].contains(&k.as_str()))
                .count(),
            0,
            "{u}: {ops:?}"
        );
    }
    assert_eq!((w.ews_writes(), w.ln_writes(), run.writes()), (0, 0, 0));
    assert!(
        w.ln_calls("GET", "Activities") <= 2,
        "the feed plus the window's new slice"
    );
    Ok(())
}

#[tokio::test]
async fn r14_the_ln_activity_feed_is_read_once_per_environment_not_per_user() -> TestResult {
    let w = CalendarWorld::start(3).await?;
    for (i, u) in ["alice", "bob", "carol"].iter().enumerate() {
        let others: Vec<&str> = ["alice", "bob", "carol"]
            .into_iter()
            .filter(|o| o != u)
            .collect();
        w.ln_meeting(&format!("{u}'s meeting"), w.at(2 + i as i64, 9), u, &others)?;
    }

    let run = w.run().await?;
    run.assert_ok();

    assert_eq!(
        w.world.ews.count_operation("CreateItem"),
        3,
        "each organizer's meeting"
    );
    assert_eq!(
        w.ln_feed_reads(),
        1,
        "activities read once:\n{}",
        w.ln_log()
    );
    assert_eq!(
        w.ln_calls("GET", "DeletedObjects"),
        1,
        "deletions read once"
    );
    assert_eq!(w.ln_calls("GET", "Employees"), 1, "employees read once");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R20: the "Call" category edited in Outlook
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn r20_the_call_category_edited_in_outlook_switches_the_ln_type() -> TestResult {
    use ln_sim::model::ActivityType;
    let w = CalendarWorld::start(2).await?;
    let created = w.user_creates("alice", outlook_event("Supplier call", w.at(2, 9), &[]))?;
    w.settle(3).await?;
    let acts = w.ln_activities();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].record.data.activity_type, ActivityType::Appointment);
    let key = acts[0].record.data.activity.clone();

    // Adding "Call" next to a category of the user's own: one PATCH, the activity is a Call.
    w.user_edits(
        "alice",
        &created.id,
        EventEdit {
            categories: Some(vec!["Blue category".into(), "Call".into()]),
            send: Some(false),
            ..EventEdit::default()
        },
    )?;
    w.run().await?.assert_ok();
    assert_eq!(w.ln_calls("PATCH", "Activities"), 1);
    let a = w.ln_activity(&key).ok_or("activity")?;
    assert_eq!(a.record.data.activity_type, ActivityType::Call, "R20");
    assert_eq!(a.record.data.subject.as_deref(), Some("Supplier call"));
    let version = a.record.version;
    let run = w.run().await?;
    run.assert_ok();
    assert_eq!(run.writes(), 0, "the echo writes nothing");
    assert_eq!(w.ln_writes(), 0);
    assert_eq!(w.ews_writes(), 0);
    assert_eq!(
        w.ln_activity(&key).ok_or("activity")?.record.version,
        version
    );

    // Removing it again: back to an Appointment.
    w.user_edits(
        "alice",
        &created.id,
        EventEdit {
            categories: Some(vec!["Blue category".into()]),
            send: Some(false),
            ..EventEdit::default()
        },
    )?;
    w.run().await?.assert_ok();
    assert_eq!(
        w.ln_activity(&key)
            .ok_or("activity")?
            .record
            .data
            .activity_type,
        ActivityType::Appointment
    );
    assert_eq!(w.settle(1).await?, 1, "nothing moves afterwards");
    Ok(())
}
