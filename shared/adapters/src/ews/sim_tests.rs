//! `EwsMailbox` against the EWS simulator (`ews-sim`) over real HTTP with the reqwest transport:
//! the contact lifecycle, call counts, throttling and configuration failures. Every request the
//! client sent is validated against the EWS schemas from the simulator's request log.

use std::time::Duration;

use ews_sim::{EwsSim, ExtendedPropertyKey, FaultRule, SimConfig};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, MailboxAddress};
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{ContactUpdate, FolderChange, FolderCursor, Mailbox, NewContact};
use lnsync_core::{Classify, ErrorClass};
use tokio::time::Instant;

use super::codec::schema_check;
use super::*;
use crate::test_fixtures::{contact_stamp, full_contact_fields};

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";

async fn start(config: SimConfig) -> EwsSim {
    let sim = EwsSim::start_with(config).await.expect("simulator starts");
    sim.add_mailbox(ALICE).expect("alice");
    sim.add_mailbox(BOB).expect("bob");
    sim
}

fn client(sim: &EwsSim, tune: impl FnOnce(&mut EwsConfig)) -> EwsMailbox {
    let mut config = EwsConfig::new(
        url::Url::parse(&sim.ews_url()).expect("url"),
        EwsAuth::Basic {
            user: "svc".into(),
            password: Secret::new("secret"),
        },
    );
    config.default_back_off = Duration::from_millis(200);
    tune(&mut config);
    EwsMailbox::with_reqwest(config, Duration::from_secs(30)).expect("client")
}

fn addr(smtp: &str) -> MailboxAddress {
    MailboxAddress::new(smtp)
}

fn stamp(i: usize) -> CrmStamp {
    contact_stamp(i)
}

fn full_fields() -> ContactFields {
    full_contact_fields()
}

fn contacts(n: usize) -> Vec<NewContact> {
    (0..n)
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

fn sim_item(sim: &EwsSim, id: &ExchangeItemId) -> ews_sim::StoredItem {
    sim.item(ALICE, &ews_sim::ItemId(id.as_str().to_owned()))
        .expect("item exists in the simulator")
}

fn tag(t: u16) -> ExtendedPropertyKey {
    ExtendedPropertyKey {
        property_set: None,
        property: ews_sim::model::PropertyRef::Tag(t),
        property_type: "String".into(),
    }
}

#[tokio::test]
async fn contact_lifecycle_against_the_simulator() {
    let sim = start(SimConfig::default()).await;
    let mailbox = client(&sim, |c| {
        c.find_page_size = 100;
        c.sync_page_size = 100;
    });
    let alice = addr(ALICE);

    // Folder: created once, found afterwards.
    let first = mailbox.ensure_contact_folder(&alice).await.expect("folder");
    assert!(first.created);
    let folder = first.id;
    let again = mailbox
        .ensure_contact_folder(&alice)
        .await
        .expect("folder again");
    assert_eq!((again.id, again.created), (folder.clone(), false));
    assert_eq!(sim.count_operation("CreateFolder"), 1);

    // 250 creates = 3 CreateItem calls.
    let created = mailbox
        .create_contacts(&alice, &folder, &contacts(250))
        .await
        .expect("create");
    assert_eq!(sim.count_operation("CreateItem"), 3);
    let refs: Vec<_> = created.into_iter().map(|o| o.expect("created")).collect();
    let stored = sim_item(&sim, &refs[0].id);
    assert_eq!(
        stored
            .item
            .extended(&ExtendedPropertyKey::crm_id())
            .and_then(|v| v.as_single()),
        Some(stamp(0).as_str())
    );
    assert_eq!(
        stored
            .item
            .extended(&tag(0x3A45))
            .and_then(|v| v.as_single()),
        Some("Dr.")
    );
    assert_eq!(
        stored
            .item
            .extended(&tag(0x3A0C))
            .and_then(|v| v.as_single()),
        Some("de")
    );
    let contact = stored.item.as_contact().expect("contact");
    assert_eq!(contact.company_name.as_deref(), Some("Acme & Co"));
    assert!(
        contact
            .department
            .as_deref()
            .is_some_and(|d| d.contains('<')),
        "escaped text arrives: {contact:?}"
    );
    assert_eq!(
        contact
            .email_addresses
            .get("EmailAddress1")
            .map(String::as_str),
        Some("jane@acme.example")
    );
    assert_eq!(
        contact
            .physical_addresses
            .get("Business")
            .and_then(|a| a.city.as_deref()),
        Some("Berlin")
    );

    // A duplicate of C0003 (e.g. left by a crashed run): the original, older one comes first,
    // because the core keeps the first of duplicates.
    let sim_folder = ews_sim::FolderId(folder.as_str().to_owned());
    let duplicate = ews_sim::Item::contact(ews_sim::Contact::default())
        .with_extended(ExtendedPropertyKey::crm_id(), stamp(3).as_str());
    let (dup_id, _) = sim
        .user_create_item(ALICE, &sim_folder, duplicate)
        .expect("duplicate");

    // Stamp lookup: a few by restriction (one call), many by listing (3 pages of 100).
    let few = mailbox
        .find_stamped_contacts(&alice, &folder, &[stamp(3), stamp(7), stamp(999)])
        .await
        .expect("few");
    assert_eq!(
        few.iter().map(|s| s.stamp.clone()).collect::<Vec<_>>(),
        [stamp(3), stamp(7), stamp(3)]
    );
    assert_eq!(few[0].item.id, refs[3].id, "the oldest duplicate first");
    assert_eq!(few[2].item.id.as_str(), dup_id.0);
    assert_eq!(sim.count_operation("FindItem"), 1);
    let all: Vec<CrmStamp> = (0..250).map(stamp).collect();
    let many = mailbox
        .find_stamped_contacts(&alice, &folder, &all)
        .await
        .expect("many");
    assert_eq!(many.len(), 251);
    assert_eq!(sim.count_operation("FindItem"), 1 + 3);

    // Update: R13 clears what LN no longer fills, including the extended properties.
    let update = |item, fields| ContactUpdate {
        item,
        stamp: stamp(0),
        fields,
    };
    let minimal = ContactFields {
        surname: Some("Doe".into()),
        ..ContactFields::default()
    };
    let updated = mailbox
        .update_contacts(&alice, &folder, &[update(refs[0].clone(), minimal.clone())])
        .await
        .expect("update");
    let fresh = updated[0].clone().expect("updated");
    assert_ne!(
        fresh.version, refs[0].version,
        "a write returns the new ChangeKey"
    );
    let stored = sim_item(&sim, &refs[0].id);
    let contact = stored.item.as_contact().expect("contact");
    assert_eq!(contact.surname.as_deref(), Some("Doe"));
    assert_eq!(contact.company_name, None);
    assert!(
        contact.email_addresses.is_empty() && contact.phone_numbers.is_empty(),
        "{contact:?}"
    );
    assert!(
        contact.physical_addresses.values().all(|a| a.is_empty()),
        "{contact:?}"
    );
    assert_eq!(stored.item.extended(&tag(0x3A45)), None);
    assert!(
        stored
            .item
            .extended(&ExtendedPropertyKey::crm_id())
            .is_some(),
        "the stamp stays"
    );

    // A stale ChangeKey is a per-item conflict; the current version fixes it.
    let stale = mailbox
        .update_contacts(&alice, &folder, &[update(refs[0].clone(), full_fields())])
        .await
        .expect("call");
    assert_eq!(stale[0], Err(ItemError::Conflict(refs[0].id.clone())));
    let current = mailbox
        .current_versions(&alice, &folder, &[refs[0].id.clone()])
        .await
        .expect("read");
    assert_eq!(current[0].as_ref().map(|r| &r.version), Ok(&fresh.version));
    let retried = mailbox
        .update_contacts(&alice, &folder, &[update(fresh, full_fields())])
        .await
        .expect("call");
    assert!(retried[0].is_ok(), "{retried:?}");

    // Delete twice: the second time the items are gone.
    let doomed = [refs[1].id.clone(), refs[2].id.clone()];
    assert!(
        mailbox
            .delete_items(&alice, &folder, &doomed)
            .await
            .expect("delete")
            .iter()
            .all(Result::is_ok)
    );
    let again = mailbox
        .delete_items(&alice, &folder, &doomed)
        .await
        .expect("delete again");
    assert_eq!(again[0], Err(ItemError::NotFound(doomed[0].clone())));

    // Sync from scratch pages through everything, then sees only the user's edits.
    let mut cursor: Option<FolderCursor> = None;
    let mut upserts = 0;
    loop {
        let page = mailbox
            .sync_contact_folder(&alice, &folder, cursor.as_ref())
            .await
            .expect("sync");
        upserts += page
            .changes
            .iter()
            .filter(|c| matches!(c, FolderChange::Upsert { stamp: Some(_), .. }))
            .count();
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    assert_eq!(upserts, 248 + 1, "248 of ours left plus the duplicate");
    sim.user_delete_item(ALICE, &ews_sim::ItemId(refs[9].id.as_str().to_owned()))
        .expect("user deletes");
    let page = mailbox
        .sync_contact_folder(&alice, &folder, cursor.as_ref())
        .await
        .expect("sync");
    assert_eq!(
        page.changes,
        vec![FolderChange::Deleted {
            id: refs[9].id.clone()
        }]
    );

    // An expired SyncState is a typed "cursor invalid" (R38).
    sim.invalidate_sync_states(None);
    let err = mailbox
        .sync_contact_folder(&alice, &folder, Some(&page.cursor))
        .await
        .expect_err("invalid");
    assert!(matches!(err, MailboxError::InvalidCursor { .. }), "{err:?}");

    // Every request: impersonation + anchor for alice, our version, Basic auth; schema-valid.
    for r in sim.requests() {
        assert_eq!(r.mailbox.as_deref(), Some(ALICE));
        assert_eq!(r.anchor_mailbox.as_deref(), Some(ALICE));
        assert_eq!(r.server_version.as_deref(), Some("Exchange2013_SP1"));
        assert_eq!(r.auth, ews_sim::AuthKind::Basic { user: "svc".into() });
    }
    assert_eq!(sim.backoff_violations(), 0);
    schema_check::assert_valid(&sim.request_bodies());
}

#[tokio::test]
async fn throttling_is_obeyed_per_mailbox_against_the_simulator() {
    let sim = start(SimConfig::default()).await;
    let mailbox = client(&sim, |_| {});
    let (alice, bob) = (addr(ALICE), addr(BOB));
    let alice_folder = mailbox
        .ensure_contact_folder(&alice)
        .await
        .expect("alice folder")
        .id;
    mailbox
        .ensure_contact_folder(&bob)
        .await
        .expect("bob folder");

    // A server-level ErrorServerBusy for alice: she waits 1.5 s, bob is not held up.
    sim.add_fault(
        FaultRule::server_busy(1500)
            .for_mailbox(ALICE)
            .for_operation("FindItem"),
    );
    let started = Instant::now();
    let (a, b) = tokio::join!(
        async {
            mailbox
                .find_stamped_contacts(&alice, &alice_folder, &[stamp(1)])
                .await
                .expect("alice");
            started.elapsed()
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            mailbox.ensure_contact_folder(&bob).await.expect("bob");
            started.elapsed()
        }
    );
    assert!(a >= Duration::from_millis(1500), "alice waited {a:?}");
    assert!(b < Duration::from_millis(1000), "bob finished after {b:?}");
    assert_eq!(sim.throttled_responses(ALICE).len(), 1);

    // A per-item ErrorServerBusy: only that contact is sent again.
    sim.add_fault(FaultRule::item_error(1, "ErrorServerBusy").for_operation("CreateItem"));
    let before = sim.count_operation("CreateItem");
    let created = mailbox
        .create_contacts(&alice, &alice_folder, &contacts(3))
        .await
        .expect("create");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let calls: Vec<usize> = sim
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("CreateItem"))
        .map(|r| r.item_count)
        .collect();
    assert_eq!(calls[before..], [3, 1]);
    assert_eq!(
        sim.items_in_folder(ALICE, &ews_sim::FolderId(alice_folder.as_str().to_owned()))
            .expect("items")
            .len(),
        3
    );

    // IIS queue full: 503 with Retry-After, then success.
    sim.add_fault(FaultRule::http_503(Some(1)).for_mailbox(ALICE));
    let started = Instant::now();
    mailbox
        .ensure_contact_folder(&alice)
        .await
        .expect("after 503");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Throttled for longer than the client retries: a typed Throttled error naming the mailbox.
    let impatient = client(&sim, |c| c.max_retries = 1);
    sim.add_fault(FaultRule::server_busy(300).for_mailbox(ALICE).times(5));
    let err = impatient
        .ensure_contact_folder(&alice)
        .await
        .expect_err("throttled");
    assert!(
        matches!(&err, MailboxError::Throttled { mailbox, .. } if mailbox == &alice),
        "{err:?}"
    );
    assert!(matches!(err.class(), ErrorClass::Throttled(_)));

    assert_eq!(
        sim.backoff_violations(),
        0,
        "no request arrived inside an announced back-off"
    );
    schema_check::assert_valid(&sim.request_bodies());
}

#[tokio::test]
async fn configuration_problems_are_typed_against_the_simulator() {
    let sim = start(SimConfig {
        allowed_impersonation: Some(vec![ALICE.to_owned()]),
        ..SimConfig::default()
    })
    .await;
    let mailbox = client(&sim, |_| {});
    let err = mailbox
        .ensure_contact_folder(&addr(BOB))
        .await
        .expect_err("denied");
    assert_eq!(err.class(), ErrorClass::Configuration);
    assert!(
        matches!(&err, MailboxError::Configuration { mailbox, code, .. } if mailbox.as_str() == BOB && code == "ErrorImpersonateUserDenied"),
        "{err:?}"
    );

    let err = mailbox
        .ensure_contact_folder(&addr("nobody@corp.example"))
        .await
        .expect_err("no mailbox");
    assert_eq!(err.class(), ErrorClass::Configuration, "{err:?}");

    let wrong = client(&sim, |c| {
        c.auth = EwsAuth::Basic {
            user: "svc".into(),
            password: Secret::new("nope"),
        }
    });
    let err = wrong
        .ensure_contact_folder(&addr(ALICE))
        .await
        .expect_err("401");
    assert!(
        matches!(&err, MailboxError::Configuration { code, .. } if code == "HTTP 401"),
        "{err:?}"
    );
    assert!(!format!("{err:?} {err}").contains("nope"));

    // The user deleted our folder: a typed FolderNotFound, so the core can recreate it.
    let gone = mailbox
        .ensure_contact_folder(&addr(ALICE))
        .await
        .expect("folder")
        .id;
    sim.delete_folder(ALICE, &ews_sim::FolderId(gone.as_str().to_owned()))
        .expect("user deletes the folder");
    let err = mailbox
        .sync_contact_folder(&addr(ALICE), &gone, None)
        .await
        .expect_err("folder gone");
    assert!(
        matches!(err, MailboxError::FolderNotFound { .. }),
        "{err:?}"
    );
}
