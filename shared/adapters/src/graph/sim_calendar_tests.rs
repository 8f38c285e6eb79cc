//! `GraphMailbox` calendar methods and subscriptions against the simulator's Graph front-end:
//! meetings delivered to attendees, stamps and `transactionId`, updates by version,
//! cancellations, delta rounds and their cursors, series read through their instances.

use std::error::Error;

use chrono::{NaiveDateTime, Utc};
use ews_sim::{EventEdit, Pattern, Range, Recurrence, SimConfig};
use lnsync_core::calendar::{
    EventAttendee, EventKind, EventRead, EventTime, EventUpdate, NewEvent,
};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, ExchangeVersion, SubscriptionId};
use lnsync_core::ports::{
    FolderChange, FolderChanges, FolderCursor, ItemRef, Mailbox, PushRequest, Window,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sim_tests::{
    ALICE, BOB, TestResult, addr, api_calls, assert_prefer_headers, client, start,
};
use crate::test_fixtures::{
    activity_stamp, all_day_fields, at, date, meeting_fields, required_bob, window,
};

const BERLIN: &str = "W. Europe Standard Time";

fn stamp(key: &str) -> CrmStamp {
    activity_stamp(key)
}

fn bob_required() -> EventAttendee {
    required_bob(BOB)
}

fn new_events() -> Vec<NewEvent> {
    vec![
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
    ]
}

/// Every page of a delta round.
async fn sync_all(
    mb: &super::GraphMailbox,
    who: &str,
    cursor: Option<&FolderCursor>,
    window: Window,
) -> Result<FolderChanges, Box<dyn Error>> {
    let mut page = mb.sync_calendar(&addr(who), cursor, window).await?;
    let mut changes = std::mem::take(&mut page.changes);
    while page.more {
        page = mb
            .sync_calendar(&addr(who), Some(&page.cursor), window)
            .await?;
        changes.append(&mut page.changes);
    }
    page.changes = changes;
    Ok(page)
}

#[tokio::test]
async fn meetings_are_created_read_updated_by_version_and_cancelled() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);

    sim.clear_requests();
    let mut created = Vec::new();
    for outcome in mb.create_events(&alice, &new_events()).await? {
        created.push(outcome?);
    }
    assert_eq!(api_calls(&sim).len(), 1, "both creates in one $batch");
    assert!(
        sim.event_by_uid(BOB, created[0].uid.as_str()).is_some(),
        "the invitation reached Bob's calendar"
    );
    // A retried create (same stamp, same content) is dropped by its transactionId.
    let retried = mb.create_events(&alice, &new_events()[..1]).await?;
    assert_eq!(
        retried[0].as_ref().map(|c| &c.item.id),
        Ok(&created[0].item.id)
    );
    assert_eq!(sim.calendar_items(ALICE)?.len(), 2);

    // Read back through the window: the mapped fields survive the round trip (R27).
    let events = mb.calendar_view(&alice, window()).await?;
    assert_eq!(events.len(), 2);
    let meeting = events
        .iter()
        .find(|e| e.key.uid == created[0].uid)
        .ok_or("meeting listed")?;
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
        .ok_or("all-day listed")?;
    assert_eq!(all_day.fields, all_day_fields());
    assert!(!all_day.is_meeting);

    // Stamps find both with one request (crash recovery of creates, R10).
    sim.clear_requests();
    let stamped = mb
        .find_stamped_events(&alice, &[stamp("A1"), stamp("A2"), stamp("A3")])
        .await?;
    assert_eq!(stamped.len(), 2);
    assert_eq!(api_calls(&sim).len(), 1);

    // Delta: everything first, then an idle round is ONE request.
    let first = sync_all(&mb, ALICE, None, window()).await?;
    assert_eq!(first.changes.len(), 2);
    sim.clear_requests();
    let idle = mb
        .sync_calendar(&alice, Some(&first.cursor), window())
        .await?;
    assert!(idle.changes.is_empty() && !idle.more);
    assert_eq!(api_calls(&sim).len(), 1);

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
        .await?;
    assert_eq!(
        stale,
        vec![Err(ItemError::Conflict(created[0].item.id.clone()))]
    );
    let fresh = mb
        .update_events(&alice, &[update(meeting.item.version.clone())])
        .await?;
    let new_ref = fresh[0].clone()?;
    assert_ne!(new_ref.version, meeting.item.version);
    let bobs = mb.calendar_view(&addr(BOB), window()).await?;
    let bobs_copy = bobs
        .iter()
        .find(|e| e.key.uid == created[0].uid)
        .ok_or("bob's copy")?;
    assert_eq!(
        bobs_copy.fields.subject.as_deref(),
        Some("Quarterly review (moved)")
    );
    assert!(!bobs_copy.is_organizer);
    let changed = mb
        .sync_calendar(&alice, Some(&idle.cursor), window())
        .await?;
    assert!(changed.changes.contains(&FolderChange::Upsert {
        item: new_ref.clone(),
        stamp: None
    }));

    // Cancelling sends Bob a cancellation; a second cancel finds nothing.
    assert_eq!(
        mb.cancel_events(&alice, &[created[0].item.id.clone()])
            .await?,
        vec![Ok(())]
    );
    let bobs = mb.calendar_view(&addr(BOB), window()).await?;
    let bobs_copy = bobs.iter().find(|e| e.key.uid == created[0].uid);
    assert!(
        bobs_copy.is_none_or(|e| e.is_cancelled),
        "Bob's copy is cancelled or gone: {bobs_copy:?}"
    );
    let again = mb
        .cancel_events(&alice, &[created[0].item.id.clone()])
        .await?;
    assert!(matches!(again[0], Err(ItemError::NotFound(_))));

    // Delta reports the removal as an item to read again, and the read says it is gone.
    let after = mb
        .sync_calendar(&alice, Some(&changed.cursor), window())
        .await?;
    let removed = ItemRef {
        id: created[0].item.id.clone(),
        version: ExchangeVersion::new(""),
    };
    assert!(
        after.changes.contains(&FolderChange::Upsert {
            item: removed,
            stamp: None
        }),
        "{:#?}",
        after.changes
    );
    let read = mb
        .get_events(&alice, &[created[0].item.id.clone()], window())
        .await?;
    assert!(matches!(read[0], Err(ItemError::NotFound(_))), "{read:?}");

    assert_prefer_headers(&sim);
    Ok(())
}

#[tokio::test]
async fn an_event_moved_out_of_the_delta_window_is_read_again_not_deleted() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let created = mb.create_events(&alice, &new_events()[1..]).await?;
    let created = created.into_iter().next().ok_or("one outcome")??;
    let first = sync_all(&mb, ALICE, None, window()).await?;
    let store_id = ews_sim::graph::parse_graph_item_id(created.item.id.as_str())?;
    sim.user_edit_event(
        ALICE,
        &store_id,
        EventEdit {
            start_utc: Some(at(2029, 3, 1, 0, 0)),
            end_utc: Some(at(2029, 3, 2, 0, 0)),
            ..EventEdit::default()
        },
    )?;
    let after = mb
        .sync_calendar(&alice, Some(&first.cursor), window())
        .await?;
    let ids: Vec<&ExchangeItemId> = after
        .changes
        .iter()
        .map(|c| match c {
            FolderChange::Upsert { item, .. } => &item.id,
            FolderChange::Deleted { id } => id,
        })
        .collect();
    assert_eq!(ids, vec![&created.item.id]);
    assert!(
        after
            .changes
            .iter()
            .all(|c| matches!(c, FolderChange::Upsert { .. }))
    );
    let read = mb
        .get_events(&alice, std::slice::from_ref(&created.item.id), window())
        .await?;
    assert!(
        matches!(&read[0], Ok(EventRead::Event(e)) if e.stamp == Some(stamp("A2"))),
        "{read:?}"
    );
    Ok(())
}

#[tokio::test]
async fn delta_cursors_are_bound_to_their_window_and_expire() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    mb.create_events(&alice, &new_events()).await?;
    let first = sync_all(&mb, ALICE, None, window()).await?;

    // The window moved on a day: the cursor still covers it.
    let next_day = Window {
        start: window().start + chrono::Duration::days(1),
        end: window().end + chrono::Duration::days(1),
    };
    let moved = mb
        .sync_calendar(&alice, Some(&first.cursor), next_day)
        .await?;
    assert!(moved.changes.is_empty());

    // A window the cursor no longer covers, an EWS SyncState: no request, InvalidCursor.
    sim.clear_requests();
    let far = Window {
        start: window().start + chrono::Duration::days(60),
        end: window().end + chrono::Duration::days(60),
    };
    for (cursor, window) in [
        (moved.cursor.clone(), far),
        (
            FolderCursor("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt".into()),
            window(),
        ),
    ] {
        let err = mb
            .sync_calendar(&alice, Some(&cursor), window)
            .await
            .err()
            .ok_or("accepted")?;
        assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");
    }
    assert!(api_calls(&sim).is_empty());

    // 410 from Graph (scenario 29).
    sim.invalidate_delta_tokens(Some(ALICE));
    let err = mb
        .sync_calendar(&alice, Some(&moved.cursor), next_day)
        .await
        .err()
        .ok_or("expired token accepted")?;
    assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_weekly_series_is_read_through_its_instances_and_keyed_by_the_series_uid() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M");
    // Mondays 09:00-10:00 Berlin, four times, across the switch to summer time on 29 March.
    let series = sim.user_create_event(
        ALICE,
        ews_sim::NewEvent::new(
            "Weekly",
            local("2026-03-16T09:00")?,
            local("2026-03-16T10:00")?,
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
    )?;

    // Delta names the instances.
    let changes = sync_all(&mb, ALICE, None, window()).await?;
    assert_eq!(changes.changes.len(), 4, "{:#?}", changes.changes);
    let FolderChange::Upsert { item: first, .. } = &changes.changes[0] else {
        return Err("an upsert".into());
    };
    let read = mb
        .get_events(&alice, std::slice::from_ref(&first.id), window())
        .await?;
    let Ok(EventRead::Event(occurrence)) = &read[0] else {
        return Err(format!("an occurrence reads as an event: {read:?}").into());
    };
    assert_eq!(occurrence.kind, EventKind::Occurrence);
    assert_eq!(occurrence.key.uid.as_str(), series.uid);
    let master = occurrence.series_id.clone().ok_or("the series' id")?;

    // The master reads as its instances in the window (the first is before it).
    let window = Window {
        start: at(2026, 3, 20, 0, 0),
        end: at(2026, 12, 31, 0, 0),
    };
    let read = mb
        .get_events(&alice, std::slice::from_ref(&master), window)
        .await?;
    let Ok(EventRead::Series {
        uid, occurrences, ..
    }) = &read[0]
    else {
        return Err(format!("a master reads as a series: {read:?}").into());
    };
    assert_eq!(uid.as_str(), series.uid);
    let starts: Vec<_> = occurrences
        .iter()
        .filter_map(|o| match o.fields.time {
            EventTime::Timed { start, .. } => Some(start),
            EventTime::AllDay { .. } => None,
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
        && o.key.uid.as_str() == series.uid
        && o.series_id.as_ref() == Some(&master)
        && o.key.original_start
            == match o.fields.time {
                EventTime::Timed { start, .. } => Some(start),
                EventTime::AllDay { .. } => None,
            }));

    // The window view names the same occurrences, with their series, in Bob's copy too.
    let view = mb.calendar_view(&alice, window).await?;
    assert_eq!(view.len(), 3);
    assert!(view.iter().all(|e| e.series_id.as_ref() == Some(&master)));
    let bobs = mb.calendar_view(&addr(BOB), window).await?;
    let keys = |v: &[lnsync_core::calendar::CalendarEvent]| {
        let mut k: Vec<_> = v.iter().map(|e| e.key.clone()).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&bobs),
        keys(&view),
        "the same keys in every mailbox (R24)"
    );

    // An EWS id of the master (a link from before the backend switch): not found.
    let ews_id = ExchangeItemId::new(series.id.0.clone());
    let read = mb
        .get_events(&alice, std::slice::from_ref(&ews_id), window)
        .await?;
    assert!(matches!(read[0], Err(ItemError::NotFound(_))), "{read:?}");
    assert_prefer_headers(&sim);
    Ok(())
}

/// A push endpoint that answers Graph's validation handshake (and 202 to anything else).
async fn push_endpoint() -> Result<String, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graph/prod", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text.split_whitespace().nth(1).unwrap_or_default();
                let token = target.split_once('?').and_then(|(_, q)| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "validationToken")
                        .map(|(_, v)| v.into_owned())
                });
                let reply = match token {
                    Some(t) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{t}",
                        t.len()
                    ),
                    None => {
                        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(url)
}

#[tokio::test]
async fn subscriptions_are_created_renewed_and_deleted() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let url = push_endpoint().await?;
    let request = PushRequest {
        url: url.clone(),
        status_frequency_minutes: 1,
        watermark: None,
        client_state: Some(lnsync_core::secret::Secret::new("s3cret-state")),
        lifecycle_url: Some(format!("{url}/lifecycle")),
        expires_at: None,
    };
    let created = mb.subscribe_calendar(&alice, &request).await?;
    assert_eq!(created.watermark, None);
    let expires = created.expires_at.ok_or("an expiry")?;
    assert!(expires > Utc::now() + chrono::Duration::days(6));
    let info = sim
        .graph_subscription(created.id.as_str())
        .ok_or("the simulator knows it")?;
    assert_eq!(info.client_state.as_deref(), Some("s3cret-state"));

    let asked = Utc::now() + chrono::Duration::days(3);
    let renewed = mb.renew_subscription(&alice, &created.id, asked).await?;
    assert_eq!(renewed.timestamp(), asked.timestamp());

    mb.unsubscribe(&alice, &created.id).await?;
    mb.unsubscribe(&alice, &created.id).await?;
    let err = mb
        .renew_subscription(&alice, &created.id, asked)
        .await
        .err()
        .ok_or("renewed a deleted subscription")?;
    assert!(
        matches!(err, MailboxError::SubscriptionNotFound { .. }),
        "{err:?}"
    );
    let unknown = SubscriptionId::new("7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
    mb.unsubscribe(&alice, &unknown).await?;

    // A notification URL that does not answer the handshake: our configuration.
    let silent = PushRequest {
        url: "http://127.0.0.1:9/graph/prod".into(),
        lifecycle_url: None,
        ..request
    };
    let err = mb
        .subscribe_calendar(&alice, &silent)
        .await
        .err()
        .ok_or("subscribed to a dead URL")?;
    assert!(matches!(err, MailboxError::Configuration { .. }), "{err:?}");
    assert!(
        err.to_string().contains("http://127.0.0.1:9/graph/prod"),
        "{err}"
    );
    assert_prefer_headers(&sim);
    Ok(())
}

/// The backend switch of the issue: items lnsync wrote through EWS are found through Graph by
/// their stamp (the same MAPI property), keep their versions and event keys, and the EWS ids
/// and folder id kept in the store are answered as missing, not as errors.
#[tokio::test]
async fn a_mailbox_moved_from_ews_keeps_its_stamps_versions_and_keys() -> TestResult {
    use crate::ews::{EwsAuth, EwsConfig, EwsMailbox, Secret};
    use lnsync_core::normalize::ContactFields;
    use lnsync_core::ports::NewContact;

    let sim = start(SimConfig::default()).await?;
    let ews = EwsMailbox::with_reqwest(
        EwsConfig::new(
            url::Url::parse(&sim.ews_url())?,
            EwsAuth::Basic {
                user: "svc".into(),
                password: Secret::new("secret"),
            },
        ),
        std::time::Duration::from_secs(30),
    )?;
    let alice = addr(ALICE);
    let ews_folder = ews.ensure_contact_folder(&alice).await?.id;
    let contact_stamp = CrmStamp::from_raw("ln:prod:contact:C1");
    let ews_contact = ews
        .create_contacts(
            &alice,
            &ews_folder,
            &[NewContact {
                stamp: contact_stamp.clone(),
                fields: ContactFields {
                    surname: Some("Doe".into()),
                    ..ContactFields::default()
                },
            }],
        )
        .await?
        .remove(0)?;
    let ews_event = ews
        .create_events(&alice, &new_events()[..1])
        .await?
        .remove(0)?;

    let graph = client(&sim)?;
    let folder = graph.ensure_contact_folder(&alice).await?;
    assert!(!folder.created, "the EWS-made folder is found by name");
    let found = graph
        .find_stamped_contacts(&alice, &folder.id, std::slice::from_ref(&contact_stamp))
        .await?;
    assert_eq!(found.len(), 1);
    assert_ne!(found[0].item.id, ews_contact.id, "Graph has its own ids");
    assert_eq!(
        found[0].item.version, ews_contact.version,
        "versions are ChangeKeys on both"
    );
    let events = graph.find_stamped_events(&alice, &[stamp("A1")]).await?;
    assert_eq!(events.len(), 1);
    let view = graph.calendar_view(&alice, window()).await?;
    assert_eq!(view.len(), 1);
    assert_eq!(
        view[0].key.uid, ews_event.uid,
        "event keys survive the switch (R24)"
    );
    assert_eq!(view[0].stamp, Some(stamp("A1")));

    // The store's EWS ids: missing for Graph, which the core resolves by stamp or key.
    let stale = graph
        .current_versions(&alice, &folder.id, std::slice::from_ref(&ews_contact.id))
        .await?;
    assert_eq!(
        stale,
        vec![Err(ItemError::NotFound(ews_contact.id.clone()))]
    );
    let gone = graph
        .get_events(&alice, std::slice::from_ref(&ews_event.item.id), window())
        .await?;
    assert!(matches!(gone[0], Err(ItemError::NotFound(_))), "{gone:?}");
    let err = graph
        .sync_contact_folder(&alice, &ews_folder, None)
        .await
        .err()
        .ok_or("an EWS folder id was accepted")?;
    assert!(
        matches!(err, MailboxError::FolderNotFound { .. }),
        "{err:?}"
    );
    Ok(())
}
