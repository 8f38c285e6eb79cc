//! A mailbox that moves from the EWS backend to the Graph backend keeps its links (issue 7,
//! "Done when"): an environment synchronized on EWS (contacts and calendars, LN meetings and an
//! Outlook meeting with attendees) is switched to Graph by LN's `exchangeBackend` alone (the
//! configuration names both backends, as it would ahead of a migration), and the next runs
//! create no duplicate and delete nothing in any mailbox or in LN. The pairs survive although
//! every item is known by another id now: contacts are found again by their `CrmId` stamp when
//! the old id is not found, calendar events by their UID and original start. LN changes made
//! afterwards reach the very same Exchange items through Graph.

use chrono::{DateTime, Duration, Utc};
use ews_sim::{EventEdit, ItemId, NewEvent};
use lnsync_core::model::{Link, LinkKind, RunOutcome};
use lnsync_core::ports::StateStore;
use lnsync_core::service::SyncOptions;
use lnsync_tests::calendar_world::CalendarWorld;
use lnsync_tests::harness::{
    Backend, BoxError, Op, TestResult, World, client_id_of, contact_code, describe,
    qualifying_contacts, stamp, stamp_of, user_report,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const CONTACTS: usize = 30;

/// An event as a calendar shows it: UID, original start (occurrences), stored id.
type Shown = (String, Option<DateTime<Utc>>, String);

/// What a user or an administrator can see of the environment, keyed by what identifies an
/// item whatever the protocol: the simulator's own item ids.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Per mailbox: stamp → the stored items carrying it.
    contacts: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Per mailbox: (UID, original start, stored id) of every event in the window.
    events: BTreeMap<String, BTreeSet<Shown>>,
    /// LN activities and their versions.
    activities: BTreeMap<String, u64>,
}

impl Seen {
    fn take(w: &CalendarWorld) -> Self {
        let mut contacts = BTreeMap::new();
        let mut events = BTreeMap::new();
        for u in USERS {
            let mb = w.email(u);
            let mut stamped: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for item in w.world.crm_items(&mb) {
                if let Some(s) = stamp_of(&item) {
                    stamped.entry(s).or_default().push(item.id.0.clone());
                }
            }
            contacts.insert(mb.clone(), stamped);
            let seen = w
                .events(u)
                .into_iter()
                .map(|e| (e.uid, e.original_start, e.id.0))
                .collect();
            events.insert(mb, seen);
        }
        let activities = w
            .ln_activities()
            .into_iter()
            .map(|a| (a.record.data.activity.clone(), a.record.version))
            .collect();
        Seen {
            contacts,
            events,
            activities,
        }
    }
}

/// Every link of a user of one kind: LN key → Exchange id.
async fn links(
    w: &CalendarWorld,
    user: &str,
    kind: LinkKind,
) -> Result<BTreeMap<String, String>, BoxError> {
    let all: Vec<Link> = w
        .world
        .store
        .all_links(&w.env, &lnsync_core::ids::UserId::new(user), kind)
        .await?;
    Ok(all
        .into_iter()
        .map(|l| {
            (
                l.ln_key.as_str().to_owned(),
                l.exchange_id.as_str().to_owned(),
            )
        })
        .collect())
}

/// A contact run of the runner on the calendar world's simulated time (one clock for lnsync
/// and both simulators); panics unless every user succeeded.
async fn contact_run(w: &CalendarWorld) -> Result<lnsync_runtime::runner::RunReport, BoxError> {
    let report = w
        .world
        .run_with(w.world.store.as_ref(), &w.clock, &w.world.connector)
        .await?;
    for u in USERS {
        let r = user_report(&report, "prod", u);
        assert_eq!(r.outcome, RunOutcome::Succeeded, "{}", report.render());
    }
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_switched_from_ews_to_graph_keeps_its_links_and_items() -> TestResult {
    let world = World::builder()
        .both_backends_configured()
        .env("prod", "100", USERS.len(), qualifying_contacts(CONTACTS))
        .start()
        .await?;
    let mut w = CalendarWorld::over(world, None, SyncOptions::default())?;
    assert_eq!(w.backend(), Backend::Ews);

    // An LN meeting alice organizes with bob, an LN appointment of carol's, and a meeting bob
    // made in Outlook with carol.
    let meeting = w.ln_meeting("Quarterly review", w.at(3, 10), "alice", &["bob"])?;
    let appointment = w.ln_create(
        CalendarWorld::appointment("Call prep", w.at(4, 9)),
        vec![w.organizer_line("carol")],
    )?;
    let start = w.at(5, 14);
    let mut visit = NewEvent::new(
        "Customer visit",
        start.naive_utc(),
        (start + Duration::hours(1)).naive_utc(),
    );
    visit.required_attendees = vec![w.email("carol")];
    let visit = w.user_creates("bob", visit)?;

    // Synchronized on EWS.
    let report = contact_run(&w).await?;
    for u in USERS {
        assert_eq!(
            user_report(&report, "prod", u).counts.created,
            CONTACTS as u32
        );
    }
    w.settle(4).await?;
    let before = Seen::take(&w);
    assert_eq!(before.activities.len(), 3, "{:?}", before.activities);
    let contact_links_before: Vec<BTreeMap<String, String>> = {
        let mut v = Vec::new();
        for u in USERS {
            v.push(links(&w, u, LinkKind::Contact).await?);
        }
        v
    };
    let event_links_before: Vec<BTreeMap<String, String>> = {
        let mut v = Vec::new();
        for u in USERS {
            v.push(links(&w, u, LinkKind::Event).await?);
        }
        v
    };
    assert!(contact_links_before.iter().all(|l| l.len() == CONTACTS));
    assert_eq!(
        event_links_before
            .iter()
            .map(BTreeMap::len)
            .collect::<Vec<_>>(),
        [1, 1, 1],
        "alice's meeting, bob's visit, carol's appointment"
    );

    // The administrator switches the environment to Graph in LN.
    w.switch_backend(Backend::Graph)?;

    // Nothing changed in LN: contacts ask Exchange nothing at all, on whichever backend.
    let report = contact_run(&w).await?;
    for u in USERS {
        assert_eq!(user_report(&report, "prod", u).counts.writes(), 0, "{u}");
    }
    assert!(
        w.world.exchange_requests().is_empty(),
        "{}",
        describe(&w.world.exchange_requests())
    );

    // The calendar's EWS cursor means nothing to Graph: each calendar is read again in full
    // and every event is matched to its pair.
    let run = w.run().await?;
    run.assert_ok();
    for u in USERS {
        let ops = w.ops(u);
        assert!(ops.get(&Op::View).is_some_and(|n| *n >= 1), "{u}: {ops:?}");
        assert_eq!(
            [Op::Create, Op::Update, Op::Delete].map(|op| ops.get(&op).copied().unwrap_or(0)),
            [0, 0, 0],
            "{u}: nothing written to Exchange: {ops:?}"
        );
    }
    assert_eq!(w.ln_writes(), 0, "nothing written to LN:\n{}", w.ln_log());
    assert_eq!(
        Seen::take(&w),
        before,
        "no duplicate and no deletion anywhere"
    );

    // Links kept: the same pairs; the calendar's now hold the Graph ids of the same events.
    for (i, u) in USERS.into_iter().enumerate() {
        assert_eq!(
            links(&w, u, LinkKind::Contact).await?,
            contact_links_before[i],
            "{u}: contact links untouched"
        );
        let now = links(&w, u, LinkKind::Event).await?;
        let expected: BTreeMap<String, String> = event_links_before[i]
            .iter()
            .map(|(k, ews)| {
                (
                    k.clone(),
                    client_id_of(Backend::Graph, &ItemId(ews.clone())),
                )
            })
            .collect();
        assert_eq!(now, expected, "{u}: the same events, by their Graph ids");
    }

    // And the calendar is incremental on Graph from now on: one delta call per user.
    w.run().await?.assert_ok();
    for u in USERS {
        assert_eq!(w.ops(u), BTreeMap::from([(Op::Delta, 1)]), "{u}");
    }

    // LN edits reach the same Exchange items through Graph.
    w.advance(Duration::minutes(1));
    let edited = contact_code(0);
    w.world
        .ln_patch("100", &edited, json!({"jobTitle": "Head of Sales"}))?;
    w.ln_patch(&meeting, json!({"subject": "Quarterly review (moved)"}))?;
    let report = contact_run(&w).await?;
    for (i, u) in USERS.into_iter().enumerate() {
        let r = user_report(&report, "prod", u);
        assert_eq!(
            (r.counts.updated, r.counts.created, r.counts.deleted),
            (1, 0, 0),
            "{u}"
        );
        let mb = w.email(u);
        let item = w
            .world
            .crm_item(&mb, "prod", &edited)
            .ok_or("the edited contact")?;
        assert_eq!(
            before.contacts[&mb][&stamp("prod", &edited)],
            std::slice::from_ref(&item.id.0),
            "{u}: the same item was updated"
        );
        assert_eq!(
            item.item
                .as_contact()
                .and_then(|c| c.job_title.clone())
                .as_deref(),
            Some("Head of Sales")
        );
        let now = links(&w, u, LinkKind::Contact).await?;
        assert_eq!(now.len(), CONTACTS, "{u}: no link lost");
        assert_eq!(
            now.get(&edited),
            Some(&client_id_of(Backend::Graph, &item.id)),
            "{u}: the pair now holds the Graph id"
        );
        let changed: Vec<&String> = now
            .iter()
            .filter(|(k, id)| contact_links_before[i].get(*k) != Some(*id))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, [&edited], "{u}: only the edited pair changed");
    }
    let run = w.run().await?;
    run.assert_ok();
    assert_eq!(w.world.all_requests_doing(Op::Create), 0);
    let (_, alice_meeting) = event_links_before[0].iter().next().ok_or("alice's link")?;
    let stored = w
        .world
        .ews
        .item(&w.email("alice"), &ItemId(alice_meeting.clone()))
        .ok_or("alice's meeting is the same item")?;
    assert_eq!(
        stored.item.subject.as_deref(),
        Some("Quarterly review (moved)")
    );
    let uid = stored
        .item
        .as_calendar()
        .map(|c| c.uid.clone())
        .ok_or("a calendar item")?;
    let copy = w.ews_item("bob", &uid).ok_or("bob's copy")?;
    assert_eq!(
        copy.item.subject.as_deref(),
        Some("Quarterly review (moved)"),
        "the invitation was updated"
    );

    // An Outlook change to bob's meeting reaches LN through Graph's delta.
    w.user_edits(
        "bob",
        &visit.id,
        EventEdit {
            subject: Some("Customer visit (with demo)".into()),
            ..EventEdit::default()
        },
    )?;
    w.run().await?.assert_ok();
    let visited: Vec<_> = w
        .ln_activities()
        .into_iter()
        .filter(|a| a.record.data.external_reference.as_deref() == Some(visit.uid.as_str()))
        .collect();
    assert_eq!(visited.len(), 1, "still one LN activity for bob's meeting");
    assert_eq!(
        visited[0].record.data.subject.as_deref(),
        Some("Customer visit (with demo)")
    );

    // LN deletions remove the items.
    let gone = contact_code(1);
    w.world.ln_delete("100", &gone)?;
    w.ln_delete(&appointment)?;
    let report = contact_run(&w).await?;
    for u in USERS {
        assert_eq!(user_report(&report, "prod", u).counts.deleted, 1, "{u}");
        assert!(
            w.world.crm_item(&w.email(u), "prod", &gone).is_none(),
            "{u}"
        );
        assert_eq!(w.world.crm_items(&w.email(u)).len(), CONTACTS - 1, "{u}");
    }
    w.run().await?.assert_ok();
    assert!(
        w.events("carol")
            .iter()
            .all(|e| e.subject.as_deref() != Some("Call prep")),
        "carol's appointment is gone"
    );
    assert!(links(&w, "carol", LinkKind::Event).await?.is_empty());
    assert_eq!(
        w.ln_activities().len(),
        2,
        "the meeting and bob's visit stay in LN"
    );
    Ok(())
}

/// An LN meeting the organizer moved out of the window in Outlook just before the switch: the
/// first Graph run reads the calendar in full and does not list it, and Graph does not know it
/// by its EWS id. It is still there (its `CrmId` stamp is found), so it is not taken for
/// deleted: the LN activity is neither set to *Not Held* nor touched, the meeting stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_moved_out_of_the_window_before_the_switch_is_not_taken_for_deleted() -> TestResult
{
    let world = World::builder()
        .both_backends_configured()
        .env("prod", "100", USERS.len(), Vec::new())
        .start()
        .await?;
    let mut w = CalendarWorld::over(world, None, SyncOptions::default())?;
    let meeting = w.ln_meeting("Strategy day", w.at(3, 10), "alice", &["bob"])?;
    // Another meeting stays in the window: an empty listing would stop the run (R30).
    w.ln_meeting("Weekly sync", w.at(4, 10), "alice", &["bob"])?;
    w.settle(4).await?;
    let before = w.ln_activity(&meeting).ok_or("the LN meeting")?;
    let shown = w
        .events("alice")
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("Strategy day"))
        .ok_or("alice's meeting")?;
    let stored = w.ews_item("alice", &shown.uid).ok_or("alice's meeting")?;

    // Alice moves it beyond the window's end in Outlook; then the switch, before any EWS run.
    let later = w.window().end + Duration::days(10);
    w.user_edits(
        "alice",
        &stored.id,
        EventEdit {
            start_utc: Some(later),
            end_utc: Some(later + Duration::hours(1)),
            ..EventEdit::default()
        },
    )?;
    w.switch_backend(Backend::Graph)?;
    w.run().await?.assert_ok();

    let after = w
        .ln_activity(&meeting)
        .ok_or("the LN meeting is still there")?;
    assert_eq!(
        after.record.data.status, before.record.data.status,
        "not set to Not Held"
    );
    assert_eq!(after.record.version, before.record.version, "LN untouched");
    assert_eq!(w.ln_writes(), 0, "{}", w.ln_log());
    assert!(
        w.world
            .ews
            .item(&w.email("alice"), &stored.id)
            .is_some_and(|i| i.item.subject.as_deref() == Some("Strategy day")),
        "the meeting stays in alice's calendar"
    );
    Ok(())
}
