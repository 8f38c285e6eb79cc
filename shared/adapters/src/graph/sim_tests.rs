//! `GraphMailbox` against the Graph front-end of the Exchange simulator (`ews-sim`) over real
//! HTTP: the contact lifecycle and its costs, cursors, errors, throttling and the gate. The
//! calendar and subscriptions are in `sim_calendar_tests`.

use std::error::Error;
use std::time::Duration;

use ews_sim::{EwsSim, FaultRule, RequestRecord, SimConfig};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, ExchangeVersion, FolderId, MailboxAddress};
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{ContactUpdate, FolderChange, FolderCursor, ItemRef, Mailbox, NewContact};
use lnsync_core::secret::Secret;
use tokio::time::Instant;

use super::client::{PREFER_IMMUTABLE_ID, PREFER_UTC};
use super::{GraphConfig, GraphMailbox};
use crate::test_fixtures::{contact_stamp, full_contact_fields};

pub(super) type TestResult = Result<(), Box<dyn Error>>;

pub(super) const ALICE: &str = "alice@corp.example";
pub(super) const BOB: &str = "bob@corp.example";

pub(super) async fn start(config: SimConfig) -> Result<EwsSim, Box<dyn Error>> {
    let sim = EwsSim::start_with(config).await?;
    sim.add_mailbox(ALICE)?;
    sim.add_mailbox(BOB)?;
    Ok(sim)
}

pub(super) fn config(sim: &EwsSim) -> Result<GraphConfig, Box<dyn Error>> {
    let mut config = GraphConfig::new("contoso", "lnsync", Secret::new("graph-secret"));
    config.base_url = url::Url::parse(&sim.graph_url())?;
    config.login_url = url::Url::parse(&sim.graph_login_url())?;
    config.default_back_off = Duration::from_millis(200);
    config.page_size = 50;
    Ok(config)
}

pub(super) fn client(sim: &EwsSim) -> Result<GraphMailbox, Box<dyn Error>> {
    Ok(GraphMailbox::new(config(sim)?, Duration::from_secs(30))?)
}

pub(super) fn addr(smtp: &str) -> MailboxAddress {
    MailboxAddress::new(smtp)
}

/// Graph API calls (the token endpoint left out).
pub(super) fn api_calls(sim: &EwsSim) -> Vec<RequestRecord> {
    sim.graph_requests()
        .into_iter()
        .filter(|r| r.operation.as_deref() != Some("token"))
        .collect()
}

pub(super) fn token_requests(sim: &EwsSim) -> usize {
    sim.graph_requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("token"))
        .count()
}

/// Every API call carried both `Prefer` headers of exchange.md §3.2.
pub(super) fn assert_prefer_headers(sim: &EwsSim) {
    let calls = api_calls(sim);
    assert!(!calls.is_empty());
    for r in calls {
        let prefer = r.prefer.join(", ");
        assert!(
            prefer.contains(PREFER_UTC) && prefer.contains(PREFER_IMMUTABLE_ID),
            "{:?} {:?} lacks a Prefer header: {prefer:?}",
            r.method,
            r.path
        );
    }
}

fn stamp(i: usize) -> CrmStamp {
    contact_stamp(i)
}

fn full_fields() -> ContactFields {
    full_contact_fields()
}

fn contacts(from: usize, n: usize) -> Vec<NewContact> {
    (from..from + n)
        .map(|i| NewContact {
            stamp: stamp(i),
            fields: if i == 0 {
                full_fields()
            } else {
                ContactFields {
                    surname: Some(format!("Doe {i}")),
                    ..ContactFields::default()
                }
            },
        })
        .collect()
}

async fn create_ok(
    mb: &GraphMailbox,
    who: &MailboxAddress,
    folder: &FolderId,
    new: &[NewContact],
) -> Result<Vec<ItemRef>, Box<dyn Error>> {
    let mut refs = Vec::new();
    for outcome in mb.create_contacts(who, folder, new).await? {
        refs.push(outcome?);
    }
    Ok(refs)
}

#[tokio::test]
async fn contact_lifecycle_against_the_graph_simulator() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);

    // Folder: created once, found afterwards.
    let first = mb.ensure_contact_folder(&alice).await?;
    assert!(first.created);
    let again = mb.ensure_contact_folder(&alice).await?;
    assert!(!again.created);
    assert_eq!(again.id, first.id);
    let folder = first.id;

    // Three creates: one $batch.
    sim.clear_requests();
    let created = create_ok(&mb, &alice, &folder, &contacts(0, 3)).await?;
    assert_eq!(created.len(), 3);
    let calls = api_calls(&sim);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].operation.as_deref(), Some("$batch"));
    assert_eq!(
        sim.items_in_folder(
            ALICE,
            &ews_sim::graph::parse_graph_folder_id(folder.as_str())?
        )?
        .len(),
        3
    );

    // Stamps find them (and nothing else) with one request.
    sim.clear_requests();
    let found = mb
        .find_stamped_contacts(&alice, &folder, &[stamp(0), stamp(2), stamp(9)])
        .await?;
    assert_eq!(api_calls(&sim).len(), 1);
    let mut found_stamps: Vec<_> = found.iter().map(|s| s.stamp.clone()).collect();
    found_stamps.sort();
    assert_eq!(found_stamps, vec![stamp(0), stamp(2)]);
    let zero = found
        .iter()
        .find(|s| s.stamp == stamp(0))
        .ok_or("stamp 0")?;
    assert_eq!(zero.item, created[0]);

    // An update at a stale version is a conflict; at the current one it clears what LN
    // no longer fills.
    let update = |version: ExchangeVersion, fields: ContactFields| ContactUpdate {
        item: ItemRef {
            id: created[0].id.clone(),
            version,
        },
        stamp: stamp(0),
        fields,
    };
    let sparse = ContactFields {
        surname: Some("Doe".into()),
        ..ContactFields::default()
    };
    let stale = mb
        .update_contacts(
            &alice,
            &folder,
            &[update(ExchangeVersion::new("stale"), sparse.clone())],
        )
        .await?;
    assert_eq!(stale, vec![Err(ItemError::Conflict(created[0].id.clone()))]);
    let fresh = mb
        .update_contacts(
            &alice,
            &folder,
            &[update(created[0].version.clone(), sparse)],
        )
        .await?;
    let updated = fresh[0].clone()?;
    assert_eq!(updated.id, created[0].id);
    assert_ne!(updated.version, created[0].version);
    let versions = mb
        .current_versions(&alice, &folder, std::slice::from_ref(&updated.id))
        .await?;
    assert_eq!(versions, vec![Ok(updated.clone())]);

    // Delete: gone, then NotFound; an EWS id (a link from before the backend switch) too.
    let deleted = mb
        .delete_items(&alice, &folder, &[created[1].id.clone()])
        .await?;
    assert_eq!(deleted, vec![Ok(())]);
    let twice = mb
        .delete_items(&alice, &folder, &[created[1].id.clone()])
        .await?;
    assert_eq!(twice, vec![Err(ItemError::NotFound(created[1].id.clone()))]);
    let ews_id =
        ExchangeItemId::new(ews_sim::graph::parse_graph_item_id(created[2].id.as_str())?.0);
    let foreign = mb
        .current_versions(&alice, &folder, std::slice::from_ref(&ews_id))
        .await?;
    assert_eq!(foreign, vec![Err(ItemError::NotFound(ews_id))]);

    assert_prefer_headers(&sim);
    assert_eq!(
        token_requests(&sim),
        0,
        "the token of the first call is still good"
    );
    Ok(())
}

#[tokio::test]
async fn contact_delta_full_then_incremental_then_expired() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mut config = config(&sim)?;
    config.page_size = 2;
    let mb = GraphMailbox::new(config, Duration::from_secs(30))?;
    let alice = addr(ALICE);
    let folder = mb.ensure_contact_folder(&alice).await?.id;
    let created = create_ok(&mb, &alice, &folder, &contacts(0, 3)).await?;

    // Full round in pages of two, every contact with its stamp.
    let mut cursor: Option<FolderCursor> = None;
    let mut seen = Vec::new();
    loop {
        let page = mb
            .sync_contact_folder(&alice, &folder, cursor.as_ref())
            .await?;
        seen.extend(page.changes);
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 3);
    for (i, c) in created.iter().enumerate() {
        assert!(
            seen.contains(&FolderChange::Upsert {
                item: c.clone(),
                stamp: Some(stamp(i))
            }),
            "{seen:#?}"
        );
    }
    let cursor = cursor.ok_or("cursor")?;

    // Idle: one request.
    sim.clear_requests();
    let idle = mb
        .sync_contact_folder(&alice, &folder, Some(&cursor))
        .await?;
    assert!(idle.changes.is_empty() && !idle.more);
    assert_eq!(api_calls(&sim).len(), 1);

    // A deletion and an edit in Outlook.
    mb.delete_items(&alice, &folder, &[created[0].id.clone()])
        .await?;
    let store_id = ews_sim::graph::parse_graph_item_id(created[1].id.as_str())?;
    sim.user_update_item(ALICE, &store_id, |item| {
        if let Some(c) = item.as_contact_mut() {
            c.job_title = Some("Edited in Outlook".into());
        }
    })?;
    let changed = mb
        .sync_contact_folder(&alice, &folder, Some(&idle.cursor))
        .await?;
    assert!(changed.changes.contains(&FolderChange::Deleted {
        id: created[0].id.clone()
    }));
    assert!(changed.changes.iter().any(|c| matches!(
        c,
        FolderChange::Upsert { item, stamp: Some(s) } if item.id == created[1].id && item.version != created[1].version && *s == stamp(1)
    )));

    // 410: the token expired (R38).
    sim.invalidate_delta_tokens(Some(ALICE));
    let err = mb
        .sync_contact_folder(&alice, &folder, Some(&changed.cursor))
        .await
        .err()
        .ok_or("expired cursor accepted")?;
    assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");

    // An EWS SyncState (the backend switched) or another folder's cursor: no request at all.
    sim.clear_requests();
    for foreign in [
        FolderCursor("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt".into()),
        FolderCursor(String::new()),
    ] {
        let err = mb
            .sync_contact_folder(&alice, &folder, Some(&foreign))
            .await
            .err()
            .ok_or("foreign cursor accepted")?;
        assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");
    }
    let err = mb
        .sync_contact_folder(&alice, &FolderId::new("AAkALgOther"), Some(&idle.cursor))
        .await
        .err()
        .ok_or("another folder's cursor accepted")?;
    assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");
    assert!(api_calls(&sim).is_empty());
    Ok(())
}

#[tokio::test]
async fn five_hundred_contacts_cost_at_most_25_requests_and_one_token() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let folder = mb.ensure_contact_folder(&alice).await?.id;
    sim.clear_requests();
    let all = contacts(0, 500);
    let mut created = 0;
    // The core passes max_batch items per call.
    for chunk in all.chunks(mb.max_batch()) {
        created += create_ok(&mb, &alice, &folder, chunk).await?.len();
    }
    assert_eq!(created, 500);
    let calls = api_calls(&sim);
    assert_eq!(calls.len(), 25, "500 creates in $batches of 20");
    assert!(
        calls
            .iter()
            .all(|r| r.operation.as_deref() == Some("$batch"))
    );
    assert_eq!(sim.backoff_violations(), 0);
    // Hundreds of stamps are still one lookup request.
    sim.clear_requests();
    let stamps: Vec<CrmStamp> = (0..200).map(stamp).collect();
    let found = mb.find_stamped_contacts(&alice, &folder, &stamps).await?;
    assert_eq!(found.len(), 200);
    assert_eq!(api_calls(&sim).len(), 1);
    // More than one $batch of filters: the folder (ours) is listed instead.
    sim.clear_requests();
    let stamps: Vec<CrmStamp> = (250..550).map(stamp).collect();
    let found = mb.find_stamped_contacts(&alice, &folder, &stamps).await?;
    assert_eq!(found.len(), 250);
    assert_eq!(api_calls(&sim).len(), 10, "500 contacts in pages of 50");
    assert_prefer_headers(&sim);
    // The one token of the folder call (before the log was cleared) served every request.
    assert_eq!(token_requests(&sim), 0);
    Ok(())
}

#[tokio::test]
async fn one_token_serves_concurrent_calls_and_a_revoked_one_is_renewed_once() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = std::sync::Arc::new(client(&sim)?);
    let mut tasks = Vec::new();
    for who in [ALICE, BOB, ALICE, BOB, ALICE, BOB] {
        let mb = mb.clone();
        tasks.push(tokio::spawn(async move {
            mb.ensure_contact_folder(&addr(who)).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(token_requests(&sim), 1);
    sim.revoke_graph_tokens();
    mb.ensure_contact_folder(&addr(ALICE)).await?;
    mb.ensure_contact_folder(&addr(BOB)).await?;
    assert_eq!(token_requests(&sim), 2);
    Ok(())
}

#[tokio::test]
async fn a_folder_that_is_gone_or_from_ews_is_folder_not_found() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let folder = mb.ensure_contact_folder(&alice).await?.id;
    let ews_folder = FolderId::new(ews_sim::graph::parse_graph_folder_id(folder.as_str())?.0);
    let create = mb
        .create_contacts(&alice, &ews_folder, &contacts(0, 2))
        .await;
    assert!(
        matches!(create, Err(MailboxError::FolderNotFound { .. })),
        "{create:?}"
    );
    let find = mb
        .find_stamped_contacts(&alice, &ews_folder, &[stamp(0)])
        .await;
    assert!(
        matches!(find, Err(MailboxError::FolderNotFound { .. })),
        "{find:?}"
    );
    sim.delete_folder(
        ALICE,
        &ews_sim::graph::parse_graph_folder_id(folder.as_str())?,
    )?;
    let sync = mb.sync_contact_folder(&alice, &folder, None).await;
    assert!(
        matches!(sync, Err(MailboxError::FolderNotFound { .. })),
        "{sync:?}"
    );
    let create = mb.create_contacts(&alice, &folder, &contacts(0, 1)).await;
    assert!(
        matches!(create, Err(MailboxError::FolderNotFound { .. })),
        "{create:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_injected_429_is_waited_out_for_that_mailbox_only() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = std::sync::Arc::new(client(&sim)?);
    // Warm up: token and folders, so the timed calls below are one request each.
    mb.ensure_contact_folder(&addr(ALICE)).await?;
    mb.ensure_contact_folder(&addr(BOB)).await?;
    sim.add_fault(
        FaultRule::graph_throttle(1)
            .for_mailbox(ALICE)
            .for_operation("contactFolders.list"),
    );
    let started = Instant::now();
    let alice = {
        let mb = mb.clone();
        tokio::spawn(async move {
            mb.ensure_contact_folder(&addr(ALICE)).await?;
            Ok::<_, MailboxError>(started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    mb.ensure_contact_folder(&addr(BOB)).await?;
    let bob = started.elapsed();
    let alice = alice.await??;
    assert!(alice >= Duration::from_secs(1), "alice waited {alice:?}");
    assert!(bob < Duration::from_millis(900), "bob was held up: {bob:?}");
    let throttled = sim.graph_throttled_responses(ALICE);
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(sim.backoff_violations(), 0);
    Ok(())
}

#[tokio::test]
async fn a_503_is_retried_and_a_long_hint_is_returned_as_throttled() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    mb.ensure_contact_folder(&alice).await?;
    sim.add_fault(FaultRule::graph_status(503, Some(1)).for_mailbox(ALICE));
    mb.ensure_contact_folder(&alice).await?;
    assert_eq!(sim.backoff_violations(), 0);

    // Ten minutes is longer than max_back_off: no sleeping, the caller reschedules (R37).
    sim.add_fault(FaultRule::graph_throttle(600).for_mailbox(ALICE));
    sim.clear_requests();
    let started = Instant::now();
    let err = mb
        .ensure_contact_folder(&alice)
        .await
        .err()
        .ok_or("not throttled")?;
    assert!(
        matches!(err, MailboxError::Throttled { retry_after, .. } if retry_after == Duration::from_secs(600)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(api_calls(&sim).len(), 1);
    Ok(())
}

#[tokio::test]
async fn never_more_than_four_requests_in_flight_per_mailbox() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = std::sync::Arc::new(client(&sim)?);
    let alice = addr(ALICE);
    let folder = mb.ensure_contact_folder(&alice).await?.id;
    let created = create_ok(&mb, &alice, &folder, &contacts(0, 1)).await?;
    mb.ensure_contact_folder(&addr(BOB)).await?;
    // Every request of Alice's takes 300 ms at the server and holds its slot meanwhile.
    sim.add_fault(FaultRule::delay(300).for_mailbox(ALICE).times(100));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (mb, id, folder) = (mb.clone(), created[0].id.clone(), folder.clone());
        tasks.push(tokio::spawn(async move {
            mb.current_versions(&addr(ALICE), &folder, &[id]).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bob_started = Instant::now();
    mb.ensure_contact_folder(&addr(BOB)).await?;
    let bob = bob_started.elapsed();
    for t in tasks {
        assert!(t.await??[0].is_ok());
    }
    let elapsed = started.elapsed();
    // Twelve calls, four at a time: three waves.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(
        bob < Duration::from_millis(300),
        "bob waited for alice's gate: {bob:?}"
    );
    let throttled = sim.graph_throttled_responses(ALICE);
    assert!(
        throttled.is_empty(),
        "the server saw more than 4 in flight: {throttled:?}"
    );
    Ok(())
}

#[tokio::test]
async fn throttled_requests_inside_a_batch_are_retried_alone() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let mb = client(&sim)?;
    let alice = addr(ALICE);
    let folder = mb.ensure_contact_folder(&alice).await?.id;
    sim.add_fault(
        FaultRule::graph_throttle(1)
            .for_mailbox(ALICE)
            .for_operation("contacts.create")
            .times(2),
    );
    sim.clear_requests();
    let started = Instant::now();
    let created = create_ok(&mb, &alice, &folder, &contacts(0, 5)).await?;
    assert_eq!(created.len(), 5);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let calls = api_calls(&sim);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].inner_operations.len(), 5);
    assert_eq!(
        calls[1].inner_operations.len(),
        2,
        "only the throttled ones again"
    );
    assert_eq!(sim.backoff_violations(), 0);
    let ids: std::collections::HashSet<_> = created.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 5);
    Ok(())
}

#[tokio::test]
async fn configuration_errors_name_what_to_fix() -> TestResult {
    let sim = start(SimConfig {
        allowed_impersonation: Some(vec![BOB.into()]),
        ..SimConfig::default()
    })
    .await?;
    let mut bad = config(&sim)?;
    bad.client_secret = Secret::new("wrong");
    let err = GraphMailbox::new(bad, Duration::from_secs(5))?
        .ensure_contact_folder(&addr(BOB))
        .await
        .err()
        .ok_or("a wrong secret was accepted")?;
    assert!(matches!(err, MailboxError::Configuration { .. }), "{err:?}");
    assert!(err.to_string().contains("client secret"), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");

    let mb = client(&sim)?;
    let err = mb
        .ensure_contact_folder(&addr(ALICE))
        .await
        .err()
        .ok_or("the access policy was ignored")?;
    assert!(
        matches!(err, MailboxError::Configuration { ref code, .. } if code == "ErrorAccessDenied"),
        "{err:?}"
    );
    assert!(err.to_string().contains(ALICE), "{err}");
    let nobody = addr("nobody@corp.example");
    let err = mb
        .create_contacts(&nobody, &FolderId::new("AAkALgX"), &contacts(0, 2))
        .await
        .err()
        .ok_or("an unknown mailbox was accepted")?;
    assert!(matches!(err, MailboxError::Configuration { .. }), "{err:?}");
    assert!(err.to_string().contains("nobody@corp.example"), "{err}");
    // A server that is not there.
    let mut gone = config(&sim)?;
    gone.base_url = url::Url::parse("http://127.0.0.1:9/v1.0")?;
    gone.login_url = url::Url::parse("http://127.0.0.1:9")?;
    let err = GraphMailbox::new(gone, Duration::from_secs(5))?
        .ensure_contact_folder(&addr(BOB))
        .await
        .err()
        .ok_or("nothing answered")?;
    assert!(matches!(err, MailboxError::Unreachable { .. }), "{err:?}");
    Ok(())
}
