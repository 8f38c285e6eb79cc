//! Calendar sync end to end: the LN simulator, the Exchange simulator, the real LN client,
//! Exchange client and SQLite store, driven through `CalendarSync` (spec `scenarios.md` 2, 3, 5,
//! 6, 8, 10–14, 16–24, 29, 30 and `behaviour.md` R14–R30, R37, R38). Each test states what a
//! user or an administrator sees on both sides, and runs once on EWS and once on Microsoft Graph
//! (`name::ews`, `name::graph`); call counts come from the simulators' request logs, in
//! backend-neutral terms ([`Op`]). The world checks every request of every run: EWS bodies
//! against Microsoft's schemas, Graph requests for their `Prefer` headers.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ews_sim::{EventEdit, EventInstance, NewEvent, Pattern, Range, Recurrence, Response};
use ln_sim::model::{ActivityStatus, Attendance, AttendanceStatus, AttendeeType, Employee, Origin};
use lnsync_core::model::{ProblemKind, RunOutcome};
use lnsync_core::plan::calendar::ConflictPolicy;
use lnsync_core::service::SyncError;
use lnsync_tests::both_backends;
use lnsync_tests::calendar_world::{CalendarWorld, employee_code, local};
use lnsync_tests::harness::{Backend, Op, TestResult, describe};
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

both_backends!(initial_load_of_120_ln_appointments_costs_one_create_request_per_batch);
async fn initial_load_of_120_ln_appointments_costs_one_create_request_per_batch(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 1).await?;
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

    // ⌈120 / max_batch⌉ create requests, full but the last: EWS 100 + 20, Graph 6 × 20.
    let alice = w.email("alice");
    let full = backend.max_batch();
    let expected: Vec<usize> = (0..n).step_by(full).map(|i| full.min(n - i)).collect();
    let sizes = w.world.batch_sizes(&alice, Op::Create);
    assert_eq!(sizes, expected, "⌈{n}/{full}⌉ create requests");
    if backend == Backend::Ews {
        assert!(
            w.world
                .exchange_requests_for(&alice)
                .iter()
                .filter(|r| r.operation.as_deref() == Some("CreateItem"))
                .all(|r| r.body.contains(r#"SendMeetingInvitations="SendToNone""#)),
            "plain appointments invite nobody"
        );
    }
    assert_eq!(run.user("alice").counts.created, 120);
    // EWS answers a CreateItem with ids only, so the new items' UIDs are read back 50 per
    // GetItem (100 + 20 → 2 + 1); Graph answers each create with the event itself.
    let read_back = match backend {
        Backend::Ews => sizes.iter().map(|s| s.div_ceil(50)).sum(),
        Backend::Graph => 0,
    };
    assert_eq!(
        w.world.requests_doing(&alice, Op::Read),
        read_back,
        "{}",
        describe(&w.world.exchange_requests_for(&alice))
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

both_backends!(s02_a_meeting_already_on_both_sides_is_linked_with_zero_creates);
async fn s02_a_meeting_already_on_both_sides_is_linked_with_zero_creates(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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
        w.world.all_requests_doing(Op::Create),
        0,
        "no Exchange create"
    );
    assert_eq!(w.ln_calls("POST", "Activities"), 0, "no LN create");
    let links = w.links("alice").await?;
    assert_eq!(links.len(), 1, "one link: {links:#?}");
    assert_eq!(links[0].ln_key.as_str(), key);
    assert_eq!(links[0].exchange_id.as_str(), w.client_id(&created.id));
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

both_backends!(s03_a_large_calendar_over_years_reads_only_the_window_in_pages_once);
async fn s03_a_large_calendar_over_years_reads_only_the_window_in_pages_once(
    backend: Backend,
) -> TestResult {
    const PAGE: u32 = 25;
    let w = CalendarWorld::builder(1)
        .backend(backend)
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

    let requests = w.world.exchange_requests_for(&w.email("alice"));
    assert_eq!(
        w.world.requests_doing(&w.email("alice"), Op::Find),
        0,
        "no listing of the whole folder"
    );
    let mut views = 0;
    for r in requests.iter().filter(|r| Op::of(r) == [Op::View]) {
        views += 1;
        let (start, end) = view_range(r)?;
        assert!(
            start >= window.start - Duration::minutes(1) && end <= window.end,
            "a view outside the window: {start}..{end}"
        );
    }
    assert!(
        views > in_window.len() / PAGE as usize,
        "the view is paged ({views} calls for {} items)",
        in_window.len()
    );
    match backend {
        // An EWS CalendarView lists ids; the items are then read by id, each once.
        Backend::Ews => {
            let read: Vec<String> = requests
                .iter()
                .filter(|r| r.operation.as_deref() == Some("GetItem"))
                .flat_map(|r| item_ids(&r.body))
                .collect();
            let unique: BTreeSet<String> = read.iter().cloned().collect();
            assert_eq!(unique.len(), read.len(), "an item was fetched twice");
            let outside: Vec<&String> = unique.difference(&in_window).collect();
            assert!(
                outside.is_empty(),
                "items outside the window were read: {outside:?}"
            );
            assert_eq!(unique, in_window, "every in-window item is read");
        }
        // Graph's calendarView answers the items themselves (with the stamp expanded):
        // nothing is read by id.
        Backend::Graph => assert_eq!(
            w.world.requests_doing(&w.email("alice"), Op::Read),
            0,
            "{}",
            describe(&requests)
        ),
    }
    Ok(())
}

/// The span a calendar view request asked for: EWS CalendarView's `StartDate`/`EndDate`,
/// Graph calendarView's `startDateTime`/`endDateTime`.
fn view_range(
    r: &ews_sim::RequestRecord,
) -> Result<(DateTime<Utc>, DateTime<Utc>), lnsync_tests::harness::BoxError> {
    let (start, end) = match r.protocol {
        ews_sim::log::Protocol::Ews => (
            attribute(&r.body, "StartDate"),
            attribute(&r.body, "EndDate"),
        ),
        ews_sim::log::Protocol::Graph => {
            let url = url::Url::parse(&format!(
                "http://graph{}",
                r.path.as_deref().unwrap_or_default()
            ))?;
            let param = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            (param("startDateTime"), param("endDateTime"))
        }
    };
    Ok((
        start.ok_or("the view has a start")?.parse()?,
        end.ok_or("the view has an end")?.parse()?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Echo and idempotency
// ---------------------------------------------------------------------------------------------

both_backends!(s05_our_own_exchange_write_does_not_echo_back_to_ln);
async fn s05_our_own_exchange_write_does_not_echo_back_to_ln(backend: Backend) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Kickoff", 2).await?;
    w.advance(Duration::minutes(1));
    w.ln_patch(&key, json!({"subject": "Kickoff with agenda"}))?;

    w.run().await?.assert_ok();
    assert_eq!(
        w.world.requests_doing(&w.email("alice"), Op::Update),
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

both_backends!(s06_a_change_to_unmapped_exchange_fields_writes_nothing);
async fn s06_a_change_to_unmapped_exchange_fields_writes_nothing(backend: Backend) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

    let ops = w.ops("alice");
    assert!(
        ops.get(&Op::Read).is_some_and(|n| *n >= 1),
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

both_backends!(s08_both_sides_changed_the_newer_change_wins_and_the_conflict_is_recorded);
async fn s08_both_sides_changed_the_newer_change_wins_and_the_conflict_is_recorded(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s08_with_ln_wins_the_older_ln_change_wins_on_both_sides);
async fn s08_with_ln_wins_the_older_ln_change_wins_on_both_sides(backend: Backend) -> TestResult {
    let w = CalendarWorld::builder(2)
        .backend(backend)
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

both_backends!(s10_changed_in_ln_and_deleted_in_exchange_the_meeting_is_created_again);
async fn s10_changed_in_ln_and_deleted_in_exchange_the_meeting_is_created_again(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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
    assert_eq!(links[0].exchange_id.as_str(), w.client_id(&org[0].id));
    let recorded = w.all_problems(ProblemKind::Conflict).await?;
    assert!(
        recorded
            .iter()
            .any(|(u, k, d)| u == "alice" && *k == key && d.contains("created again")),
        "the decision is recorded: {recorded:?}"
    );
    Ok(())
}

both_backends!(s10_changed_in_exchange_and_deleted_in_ln_the_deletion_wins);
async fn s10_changed_in_exchange_and_deleted_in_ln_the_deletion_wins(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s11_an_ln_deletion_cancels_the_meeting_in_the_organizers_mailbox);
async fn s11_an_ln_deletion_cancels_the_meeting_in_the_organizers_mailbox(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
    let (key, uid) = synced_ln_meeting(&w, "Steering committee", 6).await?;
    w.ln_delete(&key)?;

    w.run().await?.assert_ok();

    assert!(
        with_uid(&w.organized("alice"), &uid).is_empty(),
        "gone from alice's calendar"
    );
    assert_eq!(w.world.requests_doing(&w.email("alice"), Op::Delete), 1);
    // Graph's DELETE of an organizer's meeting always sends the cancellations; EWS has to be
    // told.
    if backend == Backend::Ews {
        let deletes: Vec<_> = w
            .world
            .exchange_requests_for(&w.email("alice"))
            .into_iter()
            .filter(|r| r.operation.as_deref() == Some("DeleteItem"))
            .collect();
        assert!(
            deletes[0]
                .body
                .contains("SendMeetingCancellations=\"SendToAllAndSaveCopy\""),
            "cancellations are sent"
        );
    }
    let copy = with_uid(&w.events("bob"), &uid);
    assert_eq!(copy.len(), 1);
    assert!(copy[0].is_cancelled, "bob's copy shows the cancellation");
    assert!(w.links("alice").await?.is_empty());
    Ok(())
}

both_backends!(s12_the_organizer_deleting_an_ln_meeting_sets_it_to_not_held);
async fn s12_the_organizer_deleting_an_ln_meeting_sets_it_to_not_held(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s12_the_organizer_deleting_an_exchange_meeting_deletes_the_ln_activity);
async fn s12_the_organizer_deleting_an_exchange_meeting_deletes_the_ln_activity(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s13_an_empty_exchange_listing_while_links_exist_stops_the_run);
async fn s13_an_empty_exchange_listing_while_links_exist_stops_the_run(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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
    assert!(w.world.invalidate_cursors(&w.email("alice")) > 0);

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

both_backends!(s14_more_deletions_than_the_threshold_are_held_for_an_administrator);
async fn s14_more_deletions_than_the_threshold_are_held_for_an_administrator(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s16_one_meeting_in_the_organizers_mailbox_invitations_and_attendee_flags);
async fn s16_one_meeting_in_the_organizers_mailbox_invitations_and_attendee_flags(
    backend: Backend,
) -> TestResult {
    // One user at a time in LN's order (alice, bob, carol): carol organizes, so her attendees'
    // runs come before their copies exist.
    let w = CalendarWorld::builder(3)
        .backend(backend)
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
    assert_eq!(w.world.all_requests_doing(Op::Create), 1);
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
        w.world.all_requests_doing(Op::Create),
        0,
        "no second meeting"
    );
    assert_eq!(w.organized("carol").len(), 1);
    Ok(())
}

both_backends!(s17_a_meeting_in_three_synced_mailboxes_is_one_activity_with_three_attendees);
async fn s17_a_meeting_in_three_synced_mailboxes_is_one_activity_with_three_attendees(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 3).await?;
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

both_backends!(s18_an_activity_whose_organizer_is_not_a_sync_user_is_not_sent_and_says_why);
async fn s18_an_activity_whose_organizer_is_not_a_sync_user_is_not_sent_and_says_why(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
    // `former` is an employee whose sync user is inactive.
    let key = w.ln_create(
        CalendarWorld::appointment("Fair", w.at(4, 9)),
        vec![w.organizer_line("former"), w.invitee_line("alice")],
    )?;

    w.run().await?.assert_ok();

    assert_eq!(
        w.world.all_requests_doing(Op::Create),
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

both_backends!(s19_an_accept_in_outlook_sets_attendance_status_and_sends_nothing);
async fn s19_an_accept_in_outlook_sets_attendance_status_and_sends_nothing(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s20_an_attendee_whose_ln_email_differs_in_case_is_not_synchronized);
async fn s20_an_attendee_whose_ln_email_differs_in_case_is_not_synchronized(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 3).await?;
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

both_backends!(s21_a_weekly_series_rolls_forward_over_weeks_without_duplicates);
async fn s21_a_weekly_series_rolls_forward_over_weeks_without_duplicates(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::builder(2)
        .backend(backend)
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

both_backends!(s22_moving_one_occurrence_moves_only_its_ln_appointment);
async fn s22_moving_one_occurrence_moves_only_its_ln_appointment(backend: Backend) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(s23_a_series_across_the_dst_switch_keeps_its_local_time);
async fn s23_a_series_across_the_dst_switch_keeps_its_local_time(backend: Backend) -> TestResult {
    let w = CalendarWorld::start_on(backend, 1).await?;
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

both_backends!(s24_an_event_that_passed_is_unlinked_and_neither_side_is_deleted);
async fn s24_an_event_that_passed_is_unlinked_and_neither_side_is_deleted(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 1).await?;
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

both_backends!(s24_an_event_moved_into_the_past_in_outlook_is_unlinked_quietly);
async fn s24_an_event_moved_into_the_past_in_outlook_is_unlinked_quietly(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 1).await?;
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

both_backends!(s24_an_activity_moved_into_the_past_in_ln_is_unlinked_quietly);
async fn s24_an_activity_moved_into_the_past_in_ln_is_unlinked_quietly(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
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

both_backends!(an_idle_run_costs_one_delta_call_per_user_and_no_writes);
async fn an_idle_run_costs_one_delta_call_per_user_and_no_writes(backend: Backend) -> TestResult {
    let w = CalendarWorld::start_on(backend, 3).await?;
    w.ln_meeting("Ops review", w.at(2, 9), "alice", &["bob", "carol"])?;
    w.user_creates(
        "bob",
        outlook_event("Customer visit", w.at(3, 14), &[&w.email("carol")]),
    )?;
    w.settle(4).await?;

    let run = w.run().await?;
    run.assert_ok();
    // One incremental read of the calendar folder per user (EWS SyncFolderItems, Graph
    // calendarView/delta), nothing else; no token either, the one of the last run is valid.
    for u in ["alice", "bob", "carol"] {
        assert_eq!(
            w.ops(u),
            BTreeMap::from([(Op::Delta, 1)]),
            "{u}:\n{}",
            describe(&w.world.exchange_requests())
        );
    }
    assert_eq!(w.world.exchange_requests().len(), 3);
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
        let ops = w.ops(u);
        assert_eq!(ops.get(&Op::Delta), Some(&1), "{u}: {ops:?}");
        assert!(ops.get(&Op::View).is_none_or(|n| *n <= 1), "{u}: {ops:?}");
        assert_eq!(
            ops.keys()
                .filter(|k| ![Op::Delta, Op::View].contains(k))
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

both_backends!(r14_the_ln_activity_feed_is_read_once_per_environment_not_per_user);
async fn r14_the_ln_activity_feed_is_read_once_per_environment_not_per_user(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 3).await?;
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
        w.world.all_requests_doing(Op::Create),
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
// Scenarios 29 and 30: expired cursors, throttling
// ---------------------------------------------------------------------------------------------

both_backends!(s29_an_expired_cursor_leads_to_a_full_re_read_without_duplicates_or_deletions);
async fn s29_an_expired_cursor_leads_to_a_full_re_read_without_duplicates_or_deletions(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 2).await?;
    // An LN meeting, an Outlook appointment and an Outlook series, all linked.
    let (key, uid) = synced_ln_meeting(&w, "Forecast", 2).await?;
    let visit = w.user_creates("alice", outlook_event("Site visit", w.at(3, 14), &[]))?;
    let mut series = NewEvent::new("Coaching", local(7, 10), local(7, 11));
    series.recurrence = Some(weekly_monday(local(7, 10).date(), Some(3)));
    series.send = false;
    w.user_creates("bob", series)?;
    w.settle(4).await?;
    let activities: BTreeMap<String, u64> = w
        .ln_activities()
        .into_iter()
        .map(|a| (a.record.data.activity.clone(), a.record.version))
        .collect();
    assert_eq!(activities.len(), 1 + 1 + 3);
    let links_before = [w.links("alice").await?, w.links("bob").await?];
    let events_before = [w.events("alice").len(), w.events("bob").len()];

    // The user edits the appointment while Exchange forgets every cursor it issued.
    w.user_edits(
        "alice",
        &visit.id,
        EventEdit {
            subject: Some("Site visit (with lunch)".into()),
            ..EventEdit::default()
        },
    )?;
    for u in ["alice", "bob"] {
        assert!(w.world.invalidate_cursors(&w.email(u)) > 0, "{u}");
    }

    let run = w.run().await?;
    run.assert_ok();

    // A full re-read: each calendar was listed over the window again…
    for u in ["alice", "bob"] {
        let ops = w.ops(u);
        assert!(ops.get(&Op::View).is_some_and(|n| *n >= 1), "{u}: {ops:?}");
    }
    // …the edit made meanwhile arrived…
    let edited: Vec<_> = w
        .ln_activities()
        .into_iter()
        .filter(|a| a.record.data.external_reference.as_deref() == Some(visit.uid.as_str()))
        .collect();
    assert_eq!(edited.len(), 1);
    assert_eq!(
        edited[0].record.data.subject.as_deref(),
        Some("Site visit (with lunch)")
    );
    // …and nothing was created twice or deleted, on either side.
    assert_eq!(
        w.world.all_requests_doing(Op::Create),
        0,
        "no Exchange create"
    );
    assert_eq!(
        w.world.all_requests_doing(Op::Delete),
        0,
        "no Exchange delete"
    );
    assert_eq!(
        w.ln_calls("POST", "Activities") + w.ln_calls("DELETE", "Activities"),
        0,
        "no LN create or delete:\n{}",
        w.ln_log()
    );
    let now: BTreeMap<String, u64> = w
        .ln_activities()
        .into_iter()
        .map(|a| (a.record.data.activity.clone(), a.record.version))
        .collect();
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        activities.keys().collect::<Vec<_>>(),
        "the same LN activities"
    );
    assert_eq!(
        now.iter().filter(|(k, v)| activities[*k] != **v).count(),
        1,
        "only the edited one was written"
    );
    assert_eq!(
        [w.events("alice").len(), w.events("bob").len()],
        events_before,
        "the same Exchange events"
    );
    assert_eq!(with_uid(&w.organized("alice"), &uid).len(), 1);
    assert!(w.ln_activity(&key).is_some());
    for (u, before) in ["alice", "bob"].into_iter().zip(links_before) {
        let ids = |links: &[lnsync_core::model::Link]| -> BTreeSet<(String, String)> {
            links
                .iter()
                .map(|l| {
                    (
                        l.ln_key.as_str().to_owned(),
                        l.exchange_id.as_str().to_owned(),
                    )
                })
                .collect()
        };
        assert_eq!(ids(&w.links(u).await?), ids(&before), "{u}: the same links");
    }

    // The new cursor works: the next run is incremental again.
    w.run().await?.assert_ok();
    for u in ["alice", "bob"] {
        assert_eq!(w.ops(u), BTreeMap::from([(Op::Delta, 1)]), "{u}");
    }
    Ok(())
}

both_backends!(s30_a_throttled_mailbox_waits_the_hint_and_the_others_are_not_delayed);
async fn s30_a_throttled_mailbox_waits_the_hint_and_the_others_are_not_delayed(
    backend: Backend,
) -> TestResult {
    let w = CalendarWorld::start_on(backend, 3).await?;
    w.settle(2).await?;
    for (i, u) in ["alice", "bob", "carol"].into_iter().enumerate() {
        w.user_creates(
            u,
            outlook_event(&format!("{u}'s visit"), w.at(2 + i as i64, 9), &[]),
        )?;
    }
    // EWS: ErrorServerBusy with BackOffMilliseconds; Graph: 429 with Retry-After (seconds).
    let hint = std::time::Duration::from_secs(2);
    w.world.throttle_once(&w.email("alice"), hint);

    let started = std::time::Instant::now();
    let run = w.run().await?;
    run.assert_ok();

    assert!(started.elapsed() >= hint);
    w.world.assert_waited_out_throttling(
        &w.email("alice"),
        &[&w.email("bob"), &w.email("carol")],
        hint,
    )?;
    // Everyone's change arrived, alice's too.
    let subjects: BTreeSet<String> = w
        .ln_activities()
        .into_iter()
        .filter_map(|a| a.record.data.subject)
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "alice's visit".into(),
            "bob's visit".into(),
            "carol's visit".into()
        ])
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R20: the "Call" category edited in Outlook
// ---------------------------------------------------------------------------------------------

both_backends!(r20_the_call_category_edited_in_outlook_switches_the_ln_type);
async fn r20_the_call_category_edited_in_outlook_switches_the_ln_type(
    backend: Backend,
) -> TestResult {
    use ln_sim::model::ActivityType;
    let w = CalendarWorld::start_on(backend, 2).await?;
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
