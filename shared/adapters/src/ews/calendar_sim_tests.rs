//! `EwsMailbox` calendar methods against the EWS simulator over real HTTP: meetings delivered to
//! attendees, updates by version, cancellations, stamps, sync, recurring series across DST and
//! all-day events. Every request the client sent is validated against the EWS schemas.

use std::time::Duration;

use ews_sim::{EwsSim, Pattern, Range, Recurrence, SimConfig};
use lnsync_core::calendar::{
    EventAttendee, EventKind, EventRead, EventTime, EventUpdate, NewEvent,
};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeVersion, MailboxAddress};
use lnsync_core::ports::{FolderChange, ItemRef, Mailbox, Window};

use super::codec::schema_check;
use super::*;
use crate::test_fixtures::{
    activity_stamp, all_day_fields, at, date, meeting_fields, required_bob, window,
};

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
const BERLIN: &str = "W. Europe Standard Time";

async fn start() -> EwsSim {
    let sim = EwsSim::start_with(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.add_mailbox(ALICE).expect("alice");
    sim.add_mailbox(BOB).expect("bob");
    sim
}

fn client(sim: &EwsSim) -> EwsMailbox {
    let mut config = EwsConfig::new(
        url::Url::parse(&sim.ews_url()).expect("url"),
        EwsAuth::Basic {
            user: "svc".into(),
            password: Secret::new("secret"),
        },
    );
    config.default_back_off = Duration::from_millis(200);
    EwsMailbox::with_reqwest(config, Duration::from_secs(30)).expect("client")
}

fn addr(smtp: &str) -> MailboxAddress {
    MailboxAddress::new(smtp)
}

fn stamp(key: &str) -> CrmStamp {
    activity_stamp(key)
}

fn bob_required() -> EventAttendee {
    required_bob(BOB)
}

fn assert_requests_valid(sim: &EwsSim) {
    schema_check::assert_valid(&sim.request_bodies());
}

#[tokio::test]
async fn meetings_are_created_read_updated_by_version_and_cancelled() {
    let sim = start().await;
    let mb = client(&sim);
    let alice = addr(ALICE);

    let created = mb
        .create_events(
            &alice,
            &[
                NewEvent {
                    stamp: stamp("A1"),
                    fields: meeting_fields(),
                    time_zone: "Europe/Berlin".into(),
                    attendees: vec![bob_required()],
                },
                NewEvent {
                    stamp: stamp("A2"),
                    fields: all_day_fields(),
                    time_zone: "Europe/Berlin".into(),
                    attendees: vec![],
                },
            ],
        )
        .await
        .expect("create call");
    let created: Vec<_> = created.into_iter().map(|o| o.expect("created")).collect();
    // Meetings and plain appointments need different SendMeetingInvitations: two CreateItems,
    // then one GetItem for the UIDs.
    assert_eq!(sim.count_operation("CreateItem"), 2);
    assert!(
        sim.event_by_uid(BOB, created[0].uid.as_str()).is_some(),
        "the invitation reached Bob's calendar"
    );
    assert!(sim.event_by_uid(BOB, created[1].uid.as_str()).is_none());

    // Read back through the window: the mapped fields survive the round trip (R27).
    let events = mb.calendar_view(&alice, window()).await.expect("view");
    assert_eq!(events.len(), 2);
    let meeting = events
        .iter()
        .find(|e| e.key.uid == created[0].uid)
        .expect("meeting listed");
    assert_eq!(meeting.fields, meeting_fields());
    assert_eq!(meeting.kind, EventKind::Single);
    assert_eq!(meeting.stamp, Some(stamp("A1")));
    assert_eq!(meeting.time_zone.as_deref(), Some("Europe/Berlin"));
    assert!(meeting.is_organizer && meeting.is_meeting);
    assert_eq!(meeting.attendees.len(), 1);
    assert_eq!(meeting.attendees[0].email, BOB);
    let all_day = events
        .iter()
        .find(|e| e.key.uid == created[1].uid)
        .expect("all-day listed");
    assert_eq!(all_day.fields, all_day_fields());
    assert!(!all_day.is_meeting);

    // Stamps find both (crash recovery of creates, R10).
    let stamped = mb
        .find_stamped_events(&alice, &[stamp("A1"), stamp("A2"), stamp("A3")])
        .await
        .expect("stamps");
    assert_eq!(stamped.len(), 2);

    // Sync: everything first, nothing the second time.
    let first = mb
        .sync_calendar(&alice, None, window())
        .await
        .expect("sync");
    assert!(!first.more);
    assert_eq!(first.changes.len(), 2);
    assert!(
        first
            .changes
            .iter()
            .all(|c| matches!(c, FolderChange::Upsert { stamp: Some(_), .. }))
    );
    let second = mb
        .sync_calendar(&alice, Some(&first.cursor), window())
        .await
        .expect("sync again");
    assert!(second.changes.is_empty());

    // An update at a stale version is a conflict; at the current one it goes out to Bob.
    let mut moved = meeting_fields();
    moved.subject = Some("Quarterly review (moved)".into());
    moved.time = EventTime::Timed {
        start: at(2026, 2, 11, 8, 0),
        end: at(2026, 2, 11, 9, 0),
    };
    let update = |version: ExchangeVersion| EventUpdate {
        item: ItemRef {
            id: created[0].item.id.clone(),
            version,
        },
        fields: moved.clone(),
        time_zone: "Europe/Berlin".into(),
        attendees: None,
        notify_attendees: true,
    };
    let stale = mb
        .update_events(&alice, &[update(ExchangeVersion::new("stale"))])
        .await
        .expect("update call");
    assert_eq!(
        stale,
        vec![Err(ItemError::Conflict(created[0].item.id.clone()))]
    );
    let fresh = mb
        .update_events(&alice, &[update(meeting.item.version.clone())])
        .await
        .expect("update call");
    let new_ref = fresh[0].clone().expect("updated");
    assert_ne!(new_ref.version, meeting.item.version);
    let bobs = mb
        .calendar_view(&addr(BOB), window())
        .await
        .expect("bob view");
    let bobs_copy = bobs
        .iter()
        .find(|e| e.key.uid == created[0].uid)
        .expect("bob's copy");
    assert_eq!(
        bobs_copy.fields.subject.as_deref(),
        Some("Quarterly review (moved)")
    );
    assert!(!bobs_copy.is_organizer);

    // Cancelling sends Bob a cancellation; a second cancel finds nothing.
    let cancelled = mb
        .cancel_events(&alice, &[created[0].item.id.clone()])
        .await
        .expect("cancel");
    assert_eq!(cancelled, vec![Ok(())]);
    let bobs = mb
        .calendar_view(&addr(BOB), window())
        .await
        .expect("bob view");
    let bobs_copy = bobs.iter().find(|e| e.key.uid == created[0].uid);
    assert!(
        bobs_copy.is_none_or(|e| e.is_cancelled),
        "Bob's copy is cancelled or gone: {bobs_copy:?}"
    );
    let again = mb
        .cancel_events(&alice, &[created[0].item.id.clone()])
        .await
        .expect("cancel again");
    assert!(matches!(again[0], Err(ItemError::NotFound(_))));
    let after = mb
        .sync_calendar(&alice, Some(&second.cursor), window())
        .await
        .expect("sync after");
    assert!(
        after
            .changes
            .iter()
            .any(|c| matches!(c, FolderChange::Deleted { id } if *id == created[0].item.id))
    );

    assert_requests_valid(&sim);
}

#[tokio::test]
async fn a_weekly_series_is_read_as_its_occurrences_in_the_window_across_dst() {
    let sim = start().await;
    let mb = client(&sim);
    let alice = addr(ALICE);
    let local =
        |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").expect("local time");
    // Mondays 09:00-10:00 Berlin, four times, across the switch to summer time on 29 March.
    let series = sim
        .user_create_event(
            ALICE,
            ews_sim::NewEvent::new(
                "Weekly",
                local("2026-03-16T09:00"),
                local("2026-03-16T10:00"),
            )
            .in_zone(BERLIN)
            .with_attendees(&[BOB])
            .with_recurrence(Recurrence {
                pattern: Pattern::Weekly {
                    interval: 1,
                    days_of_week: vec!["Monday".into()],
                    first_day_of_week: None,
                },
                range: Range::Numbered {
                    start_date: date(2026, 3, 16),
                    number_of_occurrences: 4,
                },
            }),
        )
        .expect("series");

    let changes = mb
        .sync_calendar(&alice, None, window())
        .await
        .expect("sync");
    let master = changes
        .changes
        .iter()
        .find_map(|c| match c {
            FolderChange::Upsert { item, .. } => Some(item.id.clone()),
            FolderChange::Deleted { .. } => None,
        })
        .expect("the master is reported");
    // The window starts after the first occurrence: three remain.
    let window = Window {
        start: at(2026, 3, 20, 0, 0),
        end: at(2026, 12, 31, 0, 0),
    };
    let read = mb
        .get_events(&alice, std::slice::from_ref(&master), window)
        .await
        .expect("get");
    let Ok(EventRead::Series {
        uid, occurrences, ..
    }) = &read[0]
    else {
        panic!("a master reads as a series: {read:?}")
    };
    assert_eq!(uid.as_str(), series.uid);
    let starts: Vec<_> = occurrences
        .iter()
        .map(|o| match o.fields.time {
            EventTime::Timed { start, .. } => start,
            EventTime::AllDay { .. } => panic!("timed series"),
        })
        .collect();
    // 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert_eq!(
        starts,
        vec![
            at(2026, 3, 23, 8, 0),
            at(2026, 3, 30, 7, 0),
            at(2026, 4, 6, 7, 0)
        ]
    );
    assert!(occurrences.iter().all(|o| o.kind == EventKind::Occurrence
        && o.series_id.as_ref() == Some(&master)
        && o.key.original_start.is_some()));

    // The window view names the same occurrences, with their series.
    let view = mb.calendar_view(&alice, window).await.expect("view");
    assert_eq!(view.len(), 3);
    assert!(view.iter().all(|e| e.series_id.as_ref() == Some(&master)));

    assert_requests_valid(&sim);
}

#[tokio::test]
async fn an_expired_calendar_cursor_is_an_invalid_cursor() {
    let sim = start().await;
    let mb = client(&sim);
    let alice = addr(ALICE);
    let first = mb
        .sync_calendar(&alice, None, window())
        .await
        .expect("sync");
    sim.invalidate_sync_states(Some(ALICE));
    let err = mb
        .sync_calendar(&alice, Some(&first.cursor), window())
        .await
        .expect_err("expired");
    assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");
    assert_requests_valid(&sim);
}
