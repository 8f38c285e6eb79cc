//! The `Mailbox` contract: what the core relies on from an Exchange backend, checked the same
//! way against `EwsMailbox` and `GraphMailbox`, each on a fresh Exchange simulator that serves
//! both protocols over one mailbox store.
//!
//! ```no_run
//! use lnsync_tests::contract::mailbox::run_all;
//! use lnsync_tests::harness::Backend;
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn graph() {
//!     run_all(Backend::Graph).await;
//! }
//! ```
//!
//! A case gets a [`Fixture`]: the client under test, a client of the other backend (ids and
//! cursors must not cross over), and the simulator, which acts as the user in Outlook and keeps
//! the request log that costs are read from. Listing pages are small ([`PAGE`]) so that paging
//! is exercised. What a case checks in the store it checks as a user would see it (the
//! simulator's items), not through the client under test.

use super::Case;
use crate::harness::{Backend, BoxError, Op, client_id_of, exchange_client, ops_of};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use ews_sim::{EwsSim, ExtendedPropertyKey, StoredItem};
use lnsync_core::calendar::{
    AttendeeRole, CalendarEvent, EventAttendee, EventFields, EventKind, EventRead, EventTime,
    EventUpdate, NewEvent, ResponseType,
};
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, FolderId, MailboxAddress};
use lnsync_core::model::ShowTimeAs;
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{
    ContactUpdate, FolderChange, FolderCursor, ItemRef, Mailbox, NewContact, Window,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const ALICE: &str = "alice@contract.example";
pub const BOB: &str = "bob@contract.example";
/// Listing page size of both clients: small, so that a handful of items takes several pages.
pub const PAGE: u32 = 5;

/// What a case works with.
pub struct Fixture {
    pub backend: Backend,
    /// The client under test.
    pub mailbox: Arc<dyn Mailbox>,
    /// A client of the other backend over the same simulator.
    pub other: Arc<dyn Mailbox>,
    pub sim: EwsSim,
}

impl Fixture {
    /// A fresh simulator with the mailboxes of alice and bob, and a client of each backend.
    pub async fn start(backend: Backend) -> Result<Fixture, BoxError> {
        let sim = EwsSim::start_with(crate::harness::with_harness_credentials(Default::default()))
            .await?;
        sim.add_mailbox(ALICE)?;
        sim.add_mailbox(BOB)?;
        let timeout = std::time::Duration::from_secs(30);
        Ok(Fixture {
            backend,
            mailbox: exchange_client(&sim, backend, Some(PAGE), timeout)?,
            other: exchange_client(&sim, backend.other(), Some(PAGE), timeout)?,
            sim,
        })
    }

    /// The id the client under test knows a stored item by.
    fn id_of(&self, item: &ews_sim::ItemId) -> ExchangeItemId {
        ExchangeItemId::new(client_id_of(self.backend, item))
    }

    /// The stored item behind a client id of the backend under test.
    fn stored(&self, mailbox: &str, id: &ExchangeItemId) -> Option<StoredItem> {
        let item = match self.backend {
            Backend::Ews => ews_sim::ItemId(id.as_str().to_owned()),
            Backend::Graph => ews_sim::graph::parse_graph_item_id(id.as_str()).ok()?,
        };
        self.sim.item(mailbox, &item)
    }

    /// Requests for `mailbox` in the log since it was last cleared.
    fn requests(&self, mailbox: &str) -> Vec<ews_sim::RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| {
                r.mailbox
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
            })
            .collect()
    }

    /// Exchange forgets the incremental cursors it issued to `mailbox` (EWS SyncStates,
    /// Graph delta tokens).
    fn expire_cursors(&self, mailbox: &str) -> usize {
        match self.backend {
            Backend::Ews => self.sim.invalidate_sync_states(Some(mailbox)),
            Backend::Graph => self.sim.invalidate_delta_tokens(Some(mailbox)),
        }
    }

    async fn folder(&self, mailbox: &MailboxAddress) -> FolderId {
        self.mailbox
            .ensure_contact_folder(mailbox)
            .await
            .expect("ensure_contact_folder")
            .id
    }

    async fn create_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        range: std::ops::Range<usize>,
    ) -> Vec<ItemRef> {
        let new: Vec<NewContact> = range.map(new_contact).collect();
        self.mailbox
            .create_contacts(mailbox, folder, &new)
            .await
            .expect("create_contacts")
            .into_iter()
            .map(|o| o.expect("each contact is created"))
            .collect()
    }

    async fn create_events(&self, mailbox: &MailboxAddress, new: &[NewEvent]) -> Vec<ItemRef> {
        self.mailbox
            .create_events(mailbox, new)
            .await
            .expect("create_events")
            .into_iter()
            .map(|o| o.expect("each event is created").item)
            .collect()
    }

    /// Every change of the folder from `cursor` on (all pages) and the final cursor.
    async fn contact_changes(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<FolderCursor>,
    ) -> (Vec<FolderChange>, FolderCursor) {
        let mut cursor = cursor;
        let mut changes = Vec::new();
        loop {
            let page = self
                .mailbox
                .sync_contact_folder(mailbox, folder, cursor.as_ref())
                .await
                .expect("sync_contact_folder");
            changes.extend(page.changes);
            cursor = Some(page.cursor);
            if !page.more {
                break;
            }
        }
        (changes, cursor.expect("a cursor"))
    }

    /// Every change of the calendar from `cursor` on (all pages) and the final cursor.
    async fn calendar_changes(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<FolderCursor>,
    ) -> (Vec<FolderChange>, FolderCursor) {
        let mut cursor = cursor;
        let mut changes = Vec::new();
        loop {
            let page = self
                .mailbox
                .sync_calendar(mailbox, cursor.as_ref(), window())
                .await
                .expect("sync_calendar");
            changes.extend(page.changes);
            cursor = Some(page.cursor);
            if !page.more {
                break;
            }
        }
        (changes, cursor.expect("a cursor"))
    }

    /// The events `get_events` reads for the ids a sync reported, flattened (a series gives
    /// its occurrences), by key; and the ids read as gone.
    async fn read_changes(
        &self,
        mailbox: &MailboxAddress,
        changes: &[FolderChange],
    ) -> (BTreeMap<String, CalendarEvent>, BTreeSet<ExchangeItemId>) {
        let mut gone: BTreeSet<ExchangeItemId> = BTreeSet::new();
        let mut ids: Vec<ExchangeItemId> = Vec::new();
        for c in changes {
            match c {
                FolderChange::Upsert { item, .. } => ids.push(item.id.clone()),
                FolderChange::Deleted { id } => {
                    gone.insert(id.clone());
                }
            }
        }
        ids.sort();
        ids.dedup();
        let mut events = BTreeMap::new();
        for chunk in ids.chunks(self.mailbox.max_batch()) {
            let reads = self
                .mailbox
                .get_events(mailbox, chunk, window())
                .await
                .expect("get_events");
            for (id, read) in chunk.iter().zip(reads) {
                match read {
                    Ok(EventRead::Event(e)) => {
                        events.insert(e.key.external_reference(), *e);
                    }
                    Ok(EventRead::Series { occurrences, .. }) => {
                        for e in occurrences {
                            events.insert(e.key.external_reference(), e);
                        }
                    }
                    Err(ItemError::NotFound(_)) => {
                        gone.insert(id.clone());
                    }
                    Err(e) => panic!("get_events of {id}: {e}"),
                }
            }
        }
        (events, gone)
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case of the Mailbox contract.
        pub const CASES: &[Case<Fixture>] = &[
            $(Case { name: stringify!($name), run: |f| Box::pin($name(f)) },)*
        ];
    };
}

cases!(
    a_full_batch_is_one_write_request,
    the_contact_folder_is_ensured_once,
    created_contacts_are_stamped_and_found_by_stamp,
    contacts_are_updated_by_version_and_a_stale_version_conflicts,
    deleted_contacts_are_gone_and_then_not_found,
    the_contact_folder_syncs_in_full_then_incrementally,
    an_expired_or_foreign_contact_cursor_is_invalid,
    created_meetings_are_stamped_and_the_invitations_delivered,
    the_calendar_view_lists_the_windows_singles_and_occurrences,
    the_calendar_syncs_in_full_then_incrementally_and_idles_in_one_request,
    get_events_reads_singles_occurrences_and_series,
    events_are_updated_by_version_and_a_stale_version_conflicts,
    cancelling_a_meeting_removes_it_and_notifies_the_attendees,
    find_stamped_events_finds_exactly_the_stamped_events,
    an_expired_or_foreign_calendar_cursor_is_invalid,
    ids_of_the_other_backend_are_not_found,
    items_deleted_in_outlook_are_gone_even_by_their_id_in_deleted_items,
);

/// Runs every case against `backend`'s client, each on a fresh simulator, and panics listing
/// all failures.
pub async fn run_all(backend: Backend) {
    super::run_cases("Mailbox", CASES, |_| async move {
        Fixture::start(backend)
            .await
            .expect("the simulator and the clients start")
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn alice() -> MailboxAddress {
    MailboxAddress::new(ALICE)
}

fn bob() -> MailboxAddress {
    MailboxAddress::new(BOB)
}

fn contact_stamp(i: usize) -> CrmStamp {
    CrmStamp::from_raw(format!("ln:contract:contact:C{i:03}"))
}

fn event_stamp(i: usize) -> CrmStamp {
    CrmStamp::from_raw(format!("ln:contract:activity:A{i:03}"))
}

fn new_contact(i: usize) -> NewContact {
    NewContact {
        stamp: contact_stamp(i),
        fields: ContactFields {
            given_name: Some(format!("Given{i}")),
            surname: Some(format!("Surname {i}")),
            display_name: Some(format!("Given{i} Surname {i}")),
            job_title: Some("Buyer".into()),
            email: Some(format!("c{i}@customer.example")),
            birthday: NaiveDate::from_ymd_opt(1980, 1, 1 + (i % 28) as u32),
            ..ContactFields::default()
        },
    }
}

fn stamp_of(item: &StoredItem) -> Option<String> {
    item.item
        .extended(&ExtendedPropertyKey::crm_id())
        .and_then(|v| v.as_single())
        .map(str::to_owned)
}

fn surname_of(item: &StoredItem) -> Option<String> {
    item.item.as_contact().and_then(|c| c.surname.clone())
}

/// Midnight UTC today: events are placed on whole days from it.
fn today() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// The sync window of every calendar case: yesterday to 60 days ahead.
fn window() -> Window {
    Window {
        start: today() - Duration::days(1),
        end: today() + Duration::days(60),
    }
}

/// Day `d` from today at `h` o'clock UTC.
fn at(d: i64, h: i64) -> DateTime<Utc> {
    today() + Duration::days(d) + Duration::hours(h)
}

fn fields(subject: &str, start: DateTime<Utc>) -> EventFields {
    EventFields {
        subject: Some(subject.to_owned()),
        location: Some("Room 1".into()),
        body: Some("Agenda".into()),
        time: EventTime::Timed {
            start,
            end: start + Duration::hours(1),
        },
        reminder_minutes: Some(15),
        show_as: ShowTimeAs::Busy,
        is_call: false,
    }
}

fn required(email: &str) -> EventAttendee {
    EventAttendee {
        email: email.to_owned(),
        name: None,
        role: AttendeeRole::Required,
        response: ResponseType::None,
    }
}

fn new_event(i: usize, subject: &str, start: DateTime<Utc>, attendees: &[&str]) -> NewEvent {
    NewEvent {
        stamp: event_stamp(i),
        fields: fields(subject, start),
        time_zone: "UTC".into(),
        attendees: attendees.iter().map(|a| required(a)).collect(),
    }
}

/// An Outlook event: one hour at `start` (UTC), no invitations sent.
fn outlook_event(subject: &str, start: DateTime<Utc>) -> ews_sim::NewEvent {
    let mut e = ews_sim::NewEvent::new(
        subject,
        start.naive_utc(),
        (start + Duration::hours(1)).naive_utc(),
    );
    e.send = false;
    e
}

/// A weekly Outlook series of `n` occurrences from `start`.
fn outlook_series(subject: &str, start: DateTime<Utc>, n: u32) -> ews_sim::NewEvent {
    let mut e = outlook_event(subject, start);
    e.recurrence = Some(ews_sim::Recurrence {
        pattern: ews_sim::Pattern::Weekly {
            interval: 1,
            days_of_week: vec![start.format("%A").to_string()],
            first_day_of_week: None,
        },
        range: ews_sim::Range::Numbered {
            start_date: start.date_naive(),
            number_of_occurrences: n,
        },
    });
    e
}

fn is_not_found<T: std::fmt::Debug>(outcome: &Result<T, ItemError>) -> bool {
    matches!(outcome, Err(ItemError::NotFound(_)))
}

fn upsert_ids(changes: &[FolderChange]) -> BTreeSet<ExchangeItemId> {
    changes
        .iter()
        .filter_map(|c| match c {
            FolderChange::Upsert { item, .. } => Some(item.id.clone()),
            FolderChange::Deleted { .. } => None,
        })
        .collect()
}

fn deleted_ids(changes: &[FolderChange]) -> BTreeSet<ExchangeItemId> {
    changes
        .iter()
        .filter_map(|c| match c {
            FolderChange::Deleted { id } => Some(id.clone()),
            FolderChange::Upsert { .. } => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------------------------

/// The core sizes its writes by `max_batch`: that many contacts, or appointments, must be one
/// write request (EWS: one CreateItem of 100; Graph: one `$batch` of 20).
async fn a_full_batch_is_one_write_request(f: Fixture) {
    let full = f.backend.max_batch();
    assert_eq!(f.mailbox.max_batch(), full);
    let folder = f.folder(&alice()).await;
    f.sim.clear_requests();
    let refs = f.create_contacts(&alice(), &folder, 0..full).await;
    assert_eq!(refs.len(), full);
    let events: Vec<NewEvent> = (0..full)
        .map(|i| new_event(i, &format!("Visit {i}"), at(1 + (i % 50) as i64, 9), &[]))
        .collect();
    assert_eq!(f.create_events(&alice(), &events).await.len(), full);
    // Reads may follow (EWS reads the new events' UIDs back), writes may not.
    let log = f.requests(ALICE);
    assert_eq!(
        ops_of(&log).get(&Op::Create),
        Some(&2),
        "{}",
        crate::harness::describe(&log)
    );
    assert_eq!(f.sim.write_calls(), 2, "{}", crate::harness::describe(&log));
}

async fn the_contact_folder_is_ensured_once(f: Fixture) {
    let first = f
        .mailbox
        .ensure_contact_folder(&alice())
        .await
        .expect("first ensure");
    assert!(first.created, "a mailbox without the folder gets it");
    let stored = f
        .sim
        .find_folder_by_name(ALICE, "CRM Contacts")
        .expect("the folder exists in alice's mailbox");
    let own = f
        .sim
        .folder_id(ALICE, ews_sim::DistinguishedFolder::Contacts)
        .expect("contacts folder");
    assert_eq!(
        stored.parent.as_ref(),
        Some(&own),
        "under the user's Contacts"
    );

    f.sim.clear_requests();
    let again = f
        .mailbox
        .ensure_contact_folder(&alice())
        .await
        .expect("second ensure");
    assert_eq!(again.id, first.id, "the same folder");
    assert!(!again.created);
    assert_eq!(f.sim.write_calls(), 0, "nothing created the second time");
    let named = f
        .sim
        .folders(ALICE)
        .expect("folders")
        .into_iter()
        .filter(|x| x.display_name == "CRM Contacts")
        .count();
    assert_eq!(named, 1, "one CRM Contacts folder");

    let bobs = f
        .mailbox
        .ensure_contact_folder(&bob())
        .await
        .expect("bob's ensure");
    assert!(bobs.created);
    assert_ne!(bobs.id, first.id, "each mailbox has its own");
}

async fn created_contacts_are_stamped_and_found_by_stamp(f: Fixture) {
    let folder = f.folder(&alice()).await;
    let refs = f.create_contacts(&alice(), &folder, 0..3).await;
    for (i, r) in refs.iter().enumerate() {
        let item = f.stored(ALICE, &r.id).expect("the contact is in the store");
        assert_eq!(
            stamp_of(&item).as_deref(),
            Some(contact_stamp(i).as_str()),
            "stamped"
        );
        assert_eq!(surname_of(&item), Some(format!("Surname {i}")));
        let folder_of = f
            .sim
            .find_folder_by_name(ALICE, "CRM Contacts")
            .map(|x| x.id);
        assert_eq!(Some(item.folder.clone()), folder_of, "in CRM Contacts");
    }
    // A hand-made twin of contact 1, without our stamp, is never taken for ours.
    let crm = f
        .sim
        .find_folder_by_name(ALICE, "CRM Contacts")
        .expect("folder")
        .id;
    f.sim
        .user_create_item(
            ALICE,
            &crm,
            ews_sim::Item::contact(ews_sim::Contact {
                given_name: Some("Given1".into()),
                surname: Some("Surname 1".into()),
                ..Default::default()
            }),
        )
        .expect("hand-made contact");

    let wanted = [
        contact_stamp(0),
        contact_stamp(2),
        contact_stamp(99), // never created
    ];
    let mut found = f
        .mailbox
        .find_stamped_contacts(&alice(), &folder, &wanted)
        .await
        .expect("find_stamped_contacts");
    found.sort_by(|a, b| a.stamp.as_str().cmp(b.stamp.as_str()));
    let got: Vec<(String, ItemRef)> = found
        .into_iter()
        .map(|s| (s.stamp.as_str().to_owned(), s.item))
        .collect();
    assert_eq!(
        got,
        vec![
            (contact_stamp(0).as_str().to_owned(), refs[0].clone()),
            (contact_stamp(2).as_str().to_owned(), refs[2].clone()),
        ],
        "exactly the stamped items asked for, at their current versions"
    );
}

async fn contacts_are_updated_by_version_and_a_stale_version_conflicts(f: Fixture) {
    let folder = f.folder(&alice()).await;
    let refs = f.create_contacts(&alice(), &folder, 0..1).await;
    let original = refs[0].clone();
    let mut changed = new_contact(0);
    changed.fields.surname = Some("Renamed".into());
    changed.fields.job_title = None;
    let update = |item: ItemRef| ContactUpdate {
        item,
        stamp: changed.stamp.clone(),
        fields: changed.fields.clone(),
    };

    let outcome = f
        .mailbox
        .update_contacts(&alice(), &folder, &[update(original.clone())])
        .await
        .expect("update_contacts");
    let updated = outcome[0].clone().expect("updated");
    assert_eq!(updated.id, original.id, "updated in place");
    assert_ne!(updated.version, original.version, "the version moved");
    let item = f.stored(ALICE, &original.id).expect("still there");
    assert_eq!(surname_of(&item).as_deref(), Some("Renamed"));
    assert_eq!(
        item.item.as_contact().and_then(|c| c.job_title.clone()),
        None,
        "a cleared field is cleared"
    );

    // The old version is stale now.
    let stale = f
        .mailbox
        .update_contacts(&alice(), &folder, &[update(original.clone())])
        .await
        .expect("update_contacts");
    assert!(
        matches!(&stale[0], Err(ItemError::Conflict(id)) if *id == original.id),
        "{stale:?}"
    );

    // An edit in Outlook moves the version too; current_versions tells the new one.
    let stored = f.stored(ALICE, &original.id).expect("stored");
    f.sim
        .user_update_item(ALICE, &stored.id, |i| {
            if let Some(c) = i.as_contact_mut() {
                c.job_title = Some("Edited in Outlook".into());
            }
        })
        .expect("Outlook edit");
    let current = f
        .mailbox
        .current_versions(&alice(), &folder, std::slice::from_ref(&original.id))
        .await
        .expect("current_versions");
    let now = current[0].clone().expect("current version");
    assert_eq!(now.id, original.id);
    assert_ne!(now.version, updated.version);
    let stale = f
        .mailbox
        .update_contacts(&alice(), &folder, &[update(updated)])
        .await
        .expect("update_contacts");
    assert!(
        matches!(&stale[0], Err(ItemError::Conflict(_))),
        "{stale:?}"
    );
    let ok = f
        .mailbox
        .update_contacts(&alice(), &folder, &[update(now)])
        .await
        .expect("update_contacts");
    assert!(ok[0].is_ok(), "{ok:?}");
}

async fn deleted_contacts_are_gone_and_then_not_found(f: Fixture) {
    let folder = f.folder(&alice()).await;
    let refs = f.create_contacts(&alice(), &folder, 0..3).await;
    let ids: Vec<ExchangeItemId> = refs[..2].iter().map(|r| r.id.clone()).collect();
    let outcome = f
        .mailbox
        .delete_items(&alice(), &folder, &ids)
        .await
        .expect("delete_items");
    assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    for id in &ids {
        assert!(f.stored(ALICE, id).is_none(), "{id} is gone for good");
    }
    assert!(
        f.stored(ALICE, &refs[2].id).is_some(),
        "the third one stays"
    );

    let again = f
        .mailbox
        .delete_items(&alice(), &folder, &ids)
        .await
        .expect("delete_items");
    assert!(again.iter().all(is_not_found), "{again:?}");
    let versions = f
        .mailbox
        .current_versions(&alice(), &folder, &ids)
        .await
        .expect("current_versions");
    assert!(versions.iter().all(is_not_found), "{versions:?}");
    let update = f
        .mailbox
        .update_contacts(
            &alice(),
            &folder,
            &[ContactUpdate {
                item: refs[0].clone(),
                stamp: contact_stamp(0),
                fields: new_contact(0).fields,
            }],
        )
        .await
        .expect("update_contacts");
    assert!(is_not_found(&update[0]), "{update:?}");
}

async fn the_contact_folder_syncs_in_full_then_incrementally(f: Fixture) {
    let folder = f.folder(&alice()).await;
    let n = 2 * PAGE as usize + 1;
    let refs = f.create_contacts(&alice(), &folder, 0..n).await;

    // In full: every item once, with its stamp, over several pages.
    let (full, cursor) = f.contact_changes(&alice(), &folder, None).await;
    let mut seen: BTreeMap<ExchangeItemId, Option<CrmStamp>> = BTreeMap::new();
    for c in &full {
        match c {
            FolderChange::Upsert { item, stamp } => {
                assert!(
                    seen.insert(item.id.clone(), stamp.clone()).is_none(),
                    "{} reported twice",
                    item.id
                );
            }
            FolderChange::Deleted { id } => panic!("a full sync reports no deletion: {id}"),
        }
    }
    let expected: BTreeMap<ExchangeItemId, Option<CrmStamp>> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), Some(contact_stamp(i))))
        .collect();
    assert_eq!(seen, expected);

    // Idle: one request, nothing reported.
    f.sim.clear_requests();
    let (idle, cursor) = f.contact_changes(&alice(), &folder, Some(cursor)).await;
    assert!(idle.is_empty(), "{idle:?}");
    assert_eq!(f.requests(ALICE).len(), 1, "an idle sync is one request");

    // The user edits one, deletes one and adds one of their own.
    let edited = f.stored(ALICE, &refs[0].id).expect("stored");
    f.sim
        .user_update_item(ALICE, &edited.id, |i| {
            if let Some(c) = i.as_contact_mut() {
                c.job_title = Some("Edited".into());
            }
        })
        .expect("edit");
    let deleted = f.stored(ALICE, &refs[1].id).expect("stored");
    f.sim.user_delete_item(ALICE, &deleted.id).expect("delete");
    let crm = f
        .sim
        .find_folder_by_name(ALICE, "CRM Contacts")
        .expect("folder")
        .id;
    let (mine, _) = f
        .sim
        .user_create_item(
            ALICE,
            &crm,
            ews_sim::Item::contact(ews_sim::Contact {
                surname: Some("Mine".into()),
                ..Default::default()
            }),
        )
        .expect("hand-made");

    let (changes, _) = f.contact_changes(&alice(), &folder, Some(cursor)).await;
    assert_eq!(
        upsert_ids(&changes),
        BTreeSet::from([refs[0].id.clone(), f.id_of(&mine)]),
        "{changes:?}"
    );
    assert_eq!(deleted_ids(&changes), BTreeSet::from([refs[1].id.clone()]));
    for c in &changes {
        if let FolderChange::Upsert { item, stamp } = c {
            let want = (item.id == refs[0].id).then(|| contact_stamp(0));
            assert_eq!(stamp, &want, "the stamp of {}", item.id);
        }
    }
}

async fn an_expired_or_foreign_contact_cursor_is_invalid(f: Fixture) {
    let folder = f.folder(&alice()).await;
    f.create_contacts(&alice(), &folder, 0..2).await;
    let (_, cursor) = f.contact_changes(&alice(), &folder, None).await;
    assert!(f.expire_cursors(ALICE) > 0);
    let expired = f
        .mailbox
        .sync_contact_folder(&alice(), &folder, Some(&cursor))
        .await;
    assert!(
        matches!(expired, Err(MailboxError::InvalidCursor { .. })),
        "{expired:?}"
    );

    // The other backend's cursor for the same folder means nothing here.
    let other_folder = f
        .other
        .ensure_contact_folder(&alice())
        .await
        .expect("the other backend finds the folder")
        .id;
    let foreign = f
        .other
        .sync_contact_folder(&alice(), &other_folder, None)
        .await
        .expect("the other backend syncs")
        .cursor;
    for cursor in [foreign, FolderCursor("not a cursor".into())] {
        let answer = f
            .mailbox
            .sync_contact_folder(&alice(), &folder, Some(&cursor))
            .await;
        assert!(
            matches!(answer, Err(MailboxError::InvalidCursor { .. })),
            "{cursor:?}: {answer:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar
// ---------------------------------------------------------------------------------------------

async fn created_meetings_are_stamped_and_the_invitations_delivered(f: Fixture) {
    let new = [
        new_event(1, "Review", at(3, 10), &[BOB]),
        new_event(2, "Focus time", at(4, 10), &[]),
    ];
    let created = f
        .mailbox
        .create_events(&alice(), &new)
        .await
        .expect("create_events");
    let created: Vec<_> = created.into_iter().map(|o| o.expect("created")).collect();
    for (c, n) in created.iter().zip(&new) {
        let item = f
            .sim
            .event_by_uid(ALICE, c.uid.as_str())
            .expect("in alice's calendar under the answered UID");
        assert_eq!(f.id_of(&item.id), c.item.id, "the answered id");
        assert_eq!(stamp_of(&item).as_deref(), Some(n.stamp.as_str()));
        assert_eq!(item.item.subject, n.fields.subject);
    }
    let org = f
        .sim
        .calendar_view(ALICE, window().start, window().end)
        .expect("view");
    let review = org
        .iter()
        .find(|e| e.uid == created[0].uid.as_str())
        .expect("the meeting");
    assert!(review.is_organizer);
    assert_eq!(review.start, at(3, 10));
    let invited: Vec<&str> = review.attendees.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(invited, [BOB]);
    let bobs = f
        .sim
        .calendar_view(BOB, window().start, window().end)
        .expect("view");
    assert_eq!(
        bobs.iter()
            .filter(|e| e.uid == created[0].uid.as_str() && !e.is_organizer)
            .count(),
        1,
        "bob received the invitation"
    );
    assert!(
        bobs.iter().all(|e| e.uid != created[1].uid.as_str()),
        "a plain appointment invites nobody"
    );
}

async fn the_calendar_view_lists_the_windows_singles_and_occurrences(f: Fixture) {
    let single = f
        .sim
        .user_create_event(ALICE, outlook_event("Dentist", at(2, 8)))
        .expect("single");
    f.sim
        .user_create_event(ALICE, outlook_event("Far away", at(90, 8)))
        .expect("outside the window");
    f.sim
        .user_create_event(ALICE, outlook_event("Long ago", at(-30, 8)))
        .expect("before the window");
    let series = f
        .sim
        .user_create_event(ALICE, outlook_series("Weekly", at(7, 9), 3))
        .expect("series");
    // More than a page of singles, so the view is paged.
    for d in 0..PAGE as i64 {
        f.sim
            .user_create_event(ALICE, outlook_event(&format!("Filler {d}"), at(20 + d, 15)))
            .expect("filler");
    }

    let events = f
        .mailbox
        .calendar_view(&alice(), window())
        .await
        .expect("calendar_view");
    let mut keys: Vec<String> = events.iter().map(|e| e.key.external_reference()).collect();
    keys.sort();
    let total = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), total, "each event once: {keys:?}");
    assert_eq!(total, 1 + 3 + PAGE as usize, "{keys:?}");
    let dentist = events
        .iter()
        .find(|e| e.key.uid.as_str() == single.uid)
        .expect("the single");
    assert_eq!(dentist.kind, EventKind::Single);
    assert_eq!(dentist.item.id, f.id_of(&single.id));
    assert_eq!(dentist.fields.subject.as_deref(), Some("Dentist"));
    assert_eq!(
        dentist.fields.time,
        EventTime::Timed {
            start: at(2, 8),
            end: at(2, 9)
        }
    );
    let occurrences: BTreeSet<Option<DateTime<Utc>>> = events
        .iter()
        .filter(|e| e.key.uid.as_str() == series.uid)
        .inspect(|e| {
            assert_eq!(e.kind, EventKind::Occurrence);
            assert_eq!(e.series_id, Some(f.id_of(&series.id)), "its master");
        })
        .map(|e| e.key.original_start)
        .collect();
    assert_eq!(
        occurrences,
        BTreeSet::from([Some(at(7, 9)), Some(at(14, 9)), Some(at(21, 9))])
    );
}

async fn the_calendar_syncs_in_full_then_incrementally_and_idles_in_one_request(f: Fixture) {
    let single = f
        .sim
        .user_create_event(ALICE, outlook_event("Dentist", at(2, 8)))
        .expect("single");
    let gone = f
        .sim
        .user_create_event(ALICE, outlook_event("Cancelled later", at(3, 8)))
        .expect("single");
    let series = f
        .sim
        .user_create_event(ALICE, outlook_series("Weekly", at(7, 9), 3))
        .expect("series");

    // In full, what the sync names reads back as every event of the window.
    let (full, cursor) = f.calendar_changes(&alice(), None).await;
    let (events, _) = f.read_changes(&alice(), &full).await;
    let expected: BTreeSet<String> = [
        single.uid.clone(),
        gone.uid.clone(),
        format!("{}/{}", series.uid, rfc(at(7, 9))),
        format!("{}/{}", series.uid, rfc(at(14, 9))),
        format!("{}/{}", series.uid, rfc(at(21, 9))),
    ]
    .into();
    assert_eq!(events.keys().cloned().collect::<BTreeSet<_>>(), expected);

    // Idle: one request, nothing to read.
    f.sim.clear_requests();
    let (idle, cursor) = f.calendar_changes(&alice(), Some(cursor)).await;
    assert!(idle.is_empty(), "{idle:?}");
    let log = f.requests(ALICE);
    assert_eq!(
        ops_of(&log),
        BTreeMap::from([(Op::Delta, 1)]),
        "{}",
        crate::harness::describe(&log)
    );

    // The user renames one event and deletes another.
    f.sim
        .user_edit_event(
            ALICE,
            &single.id,
            ews_sim::EventEdit {
                subject: Some("Dentist (moved)".into()),
                ..Default::default()
            },
        )
        .expect("edit");
    f.sim
        .user_delete_event(ALICE, &gone.id, false)
        .expect("delete");
    let (changes, _) = f.calendar_changes(&alice(), Some(cursor)).await;
    let (read, deleted) = f.read_changes(&alice(), &changes).await;
    assert_eq!(
        read.get(&single.uid)
            .and_then(|e| e.fields.subject.as_deref()),
        Some("Dentist (moved)"),
        "{changes:?}"
    );
    assert!(
        !read.contains_key(&gone.uid) && deleted.contains(&f.id_of(&gone.id)),
        "the deletion is reported: {changes:?}"
    );
    assert!(
        read.keys().all(|k| !k.starts_with(&series.uid)),
        "the untouched series is not reported: {changes:?}"
    );
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn get_events_reads_singles_occurrences_and_series(f: Fixture) {
    let single = f
        .sim
        .user_create_event(ALICE, outlook_event("Dentist", at(2, 8)))
        .expect("single");
    let series = f
        .sim
        .user_create_event(ALICE, outlook_series("Weekly", at(7, 9), 3))
        .expect("series");
    let view = f
        .mailbox
        .calendar_view(&alice(), window())
        .await
        .expect("calendar_view");
    let second = view
        .iter()
        .find(|e| e.key.original_start == Some(at(14, 9)))
        .expect("the second occurrence")
        .clone();

    let ids = [
        f.id_of(&single.id),
        second.item.id.clone(),
        f.id_of(&series.id),
    ];
    let reads = f
        .mailbox
        .get_events(&alice(), &ids, window())
        .await
        .expect("get_events");
    assert_eq!(reads.len(), 3);
    match &reads[0] {
        Ok(EventRead::Event(e)) => {
            assert_eq!(e.key.uid.as_str(), single.uid);
            assert_eq!(e.kind, EventKind::Single);
            assert_eq!(e.fields.subject.as_deref(), Some("Dentist"));
        }
        other => panic!("the single: {other:?}"),
    }
    match &reads[1] {
        Ok(EventRead::Event(e)) => {
            assert_eq!(e.key, second.key, "the occurrence, by its key");
            assert_eq!(e.kind, EventKind::Occurrence);
        }
        other => panic!("the occurrence: {other:?}"),
    }
    match &reads[2] {
        Ok(EventRead::Series {
            master,
            uid,
            occurrences,
        }) => {
            assert_eq!(master.id, ids[2]);
            assert_eq!(uid.as_str(), series.uid);
            let starts: BTreeSet<_> = occurrences.iter().map(|o| o.key.original_start).collect();
            assert_eq!(
                starts,
                BTreeSet::from([Some(at(7, 9)), Some(at(14, 9)), Some(at(21, 9))])
            );
        }
        other => panic!("the series: {other:?}"),
    }
}

async fn events_are_updated_by_version_and_a_stale_version_conflicts(f: Fixture) {
    let created = f
        .create_events(&alice(), &[new_event(1, "Review", at(3, 10), &[BOB])])
        .await;
    let original = created[0].clone();
    let update = |item: ItemRef, subject: &str| EventUpdate {
        item,
        fields: fields(subject, at(3, 11)),
        time_zone: "UTC".into(),
        attendees: None,
        notify_attendees: true,
    };

    let outcome = f
        .mailbox
        .update_events(&alice(), &[update(original.clone(), "Review (later)")])
        .await
        .expect("update_events");
    let updated = outcome[0].clone().expect("updated");
    assert_eq!(updated.id, original.id);
    assert_ne!(updated.version, original.version);
    let item = f.stored(ALICE, &original.id).expect("still there");
    assert_eq!(item.item.subject.as_deref(), Some("Review (later)"));
    let uid = item.item.as_calendar().map(|c| c.uid.clone()).expect("uid");
    let copy = f.sim.event_by_uid(BOB, &uid).expect("bob's copy");
    assert_eq!(
        copy.item.subject.as_deref(),
        Some("Review (later)"),
        "the attendee got the update"
    );

    let stale = f
        .mailbox
        .update_events(&alice(), &[update(original.clone(), "Lost write")])
        .await
        .expect("update_events");
    assert!(
        matches!(&stale[0], Err(ItemError::Conflict(id)) if *id == original.id),
        "{stale:?}"
    );
    let item = f.stored(ALICE, &original.id).expect("still there");
    assert_eq!(item.item.subject.as_deref(), Some("Review (later)"));
}

async fn cancelling_a_meeting_removes_it_and_notifies_the_attendees(f: Fixture) {
    let created = f
        .mailbox
        .create_events(&alice(), &[new_event(1, "Review", at(3, 10), &[BOB])])
        .await
        .expect("create_events")
        .remove(0)
        .expect("created");
    let id = created.item.id.clone();
    let outcome = f
        .mailbox
        .cancel_events(&alice(), std::slice::from_ref(&id))
        .await
        .expect("cancel_events");
    assert!(outcome[0].is_ok(), "{outcome:?}");
    assert!(f.stored(ALICE, &id).is_none(), "gone from alice's calendar");
    let copy = f
        .sim
        .calendar_view(BOB, window().start, window().end)
        .expect("view")
        .into_iter()
        .find(|e| e.uid == created.uid.as_str())
        .expect("bob's copy stays");
    assert!(copy.is_cancelled, "bob's copy shows the cancellation");

    let again = f
        .mailbox
        .cancel_events(&alice(), std::slice::from_ref(&id))
        .await
        .expect("cancel_events");
    assert!(is_not_found(&again[0]), "{again:?}");
}

async fn find_stamped_events_finds_exactly_the_stamped_events(f: Fixture) {
    let created = f
        .create_events(
            &alice(),
            &[
                new_event(1, "Review", at(3, 10), &[]),
                new_event(2, "Planning", at(4, 10), &[]),
            ],
        )
        .await;
    // The same subject made by hand carries no stamp.
    f.sim
        .user_create_event(ALICE, outlook_event("Review", at(3, 10)))
        .expect("hand-made");
    let found = f
        .mailbox
        .find_stamped_events(&alice(), &[event_stamp(1), event_stamp(9)])
        .await
        .expect("find_stamped_events");
    let got: Vec<(String, ExchangeItemId)> = found
        .into_iter()
        .map(|s| (s.stamp.as_str().to_owned(), s.item.id))
        .collect();
    assert_eq!(
        got,
        vec![(event_stamp(1).as_str().to_owned(), created[0].id.clone())]
    );
    let none = f
        .mailbox
        .find_stamped_events(&bob(), &[event_stamp(1)])
        .await
        .expect("find_stamped_events");
    assert!(none.is_empty(), "another mailbox has none: {none:?}");
}

async fn an_expired_or_foreign_calendar_cursor_is_invalid(f: Fixture) {
    f.sim
        .user_create_event(ALICE, outlook_event("Dentist", at(2, 8)))
        .expect("single");
    let (_, cursor) = f.calendar_changes(&alice(), None).await;
    assert!(f.expire_cursors(ALICE) > 0);
    let expired = f
        .mailbox
        .sync_calendar(&alice(), Some(&cursor), window())
        .await;
    assert!(
        matches!(expired, Err(MailboxError::InvalidCursor { .. })),
        "{expired:?}"
    );
    let foreign = f
        .other
        .sync_calendar(&alice(), None, window())
        .await
        .expect("the other backend syncs")
        .cursor;
    for cursor in [foreign, FolderCursor("not a cursor".into())] {
        let answer = f
            .mailbox
            .sync_calendar(&alice(), Some(&cursor), window())
            .await;
        assert!(
            matches!(answer, Err(MailboxError::InvalidCursor { .. })),
            "{cursor:?}: {answer:?}"
        );
    }
}

/// After a backend switch the core still holds the old backend's ids; they must read as
/// "not found" (so the core finds the item again by its stamp or key), never as an error
/// that fails the run, and must change nothing.
async fn ids_of_the_other_backend_are_not_found(f: Fixture) {
    let folder = f
        .other
        .ensure_contact_folder(&alice())
        .await
        .expect("ensure")
        .id;
    let contact = f
        .other
        .create_contacts(&alice(), &folder, &[new_contact(0)])
        .await
        .expect("create_contacts")
        .remove(0)
        .expect("created");
    let created = f
        .other
        .create_events(&alice(), &[new_event(1, "Review", at(3, 10), &[BOB])])
        .await
        .expect("create_events")
        .remove(0)
        .expect("created");
    let event = created.item.clone();
    // What the store holds, by change key: nothing below may change it.
    let snapshot = || -> Vec<(String, String)> {
        let contacts = f
            .sim
            .find_folder_by_name(ALICE, "CRM Contacts")
            .and_then(|x| f.sim.items_in_folder(ALICE, &x.id).ok())
            .unwrap_or_default();
        contacts
            .into_iter()
            .chain(f.sim.event_by_uid(ALICE, created.uid.as_str()))
            .map(|i| (i.id.0, i.change_key.0))
            .collect()
    };
    let before = snapshot();
    assert_eq!(before.len(), 2);

    let versions = f
        .mailbox
        .current_versions(&alice(), &folder, std::slice::from_ref(&contact.id))
        .await
        .expect("current_versions");
    assert!(is_not_found(&versions[0]), "{versions:?}");
    let updated = f
        .mailbox
        .update_contacts(
            &alice(),
            &folder,
            &[ContactUpdate {
                item: contact.clone(),
                stamp: contact_stamp(0),
                fields: ContactFields::default(),
            }],
        )
        .await
        .expect("update_contacts");
    assert!(is_not_found(&updated[0]), "{updated:?}");
    let deleted = f
        .mailbox
        .delete_items(&alice(), &folder, std::slice::from_ref(&contact.id))
        .await
        .expect("delete_items");
    assert!(is_not_found(&deleted[0]), "{deleted:?}");
    let read = f
        .mailbox
        .get_events(&alice(), std::slice::from_ref(&event.id), window())
        .await
        .expect("get_events");
    assert!(is_not_found(&read[0]), "{read:?}");
    let changed = f
        .mailbox
        .update_events(
            &alice(),
            &[EventUpdate {
                item: event.clone(),
                fields: fields("Lost", at(3, 10)),
                time_zone: "UTC".into(),
                attendees: None,
                notify_attendees: true,
            }],
        )
        .await
        .expect("update_events");
    assert!(is_not_found(&changed[0]), "{changed:?}");
    let cancelled = f
        .mailbox
        .cancel_events(&alice(), std::slice::from_ref(&event.id))
        .await
        .expect("cancel_events");
    assert!(is_not_found(&cancelled[0]), "{cancelled:?}");
    assert_eq!(snapshot(), before, "nothing was changed");

    // The items themselves are fine: the stamps find them under this backend's ids.
    let found = f
        .mailbox
        .find_stamped_contacts(&alice(), &f.folder(&alice()).await, &[contact_stamp(0)])
        .await
        .expect("find_stamped_contacts");
    assert_eq!(found.len(), 1);
    assert_ne!(found[0].item.id, contact.id, "known by another id here");
    assert!(f.stored(ALICE, &found[0].item.id).is_some());
    let found = f
        .mailbox
        .find_stamped_events(&alice(), &[event_stamp(1)])
        .await
        .expect("find_stamped_events");
    assert_eq!(found.len(), 1);
    assert!(f.stored(ALICE, &found[0].item.id).is_some());
}

/// Outlook's Delete moves an item to Deleted Items. EWS gives it a new id there; Graph's
/// immutable id stays. Either way the item is no longer in the calendar or in "CRM Contacts",
/// and must read as gone by the id the core holds: `NotFound`, so a deletion reaches LN
/// (calendar) and the contact comes back (R12) instead of being updated in the bin.
async fn items_deleted_in_outlook_are_gone_even_by_their_id_in_deleted_items(f: Fixture) {
    let folder = f.folder(&alice()).await;
    let contact = f.create_contacts(&alice(), &folder, 0..1).await.remove(0);
    let event = f
        .create_events(
            &alice(),
            &[new_event(0, "Deleted in Outlook", at(2, 9), &[])],
        )
        .await
        .remove(0);
    let bin = |id: &ExchangeItemId| {
        let stored = f.stored(ALICE, id).expect("stored");
        let moved = f
            .sim
            .user_move_to_deleted_items(ALICE, &stored.id)
            .expect("move")
            .expect("moved");
        // The id the core still holds: EWS's changed with the move (the old one is dead);
        // Graph's immutable id would not have, which the simulator's new id stands for.
        match f.backend {
            Backend::Ews => id.clone(),
            Backend::Graph => f.id_of(&moved),
        }
    };
    let contact_in_bin = bin(&contact.id);
    let event_in_bin = bin(&event.id);

    let versions = f
        .mailbox
        .current_versions(&alice(), &folder, std::slice::from_ref(&contact_in_bin))
        .await
        .expect("current_versions");
    assert!(is_not_found(&versions[0]), "{versions:?}");
    let update = f
        .mailbox
        .update_contacts(
            &alice(),
            &folder,
            &[ContactUpdate {
                item: ItemRef {
                    id: contact_in_bin.clone(),
                    version: versions[0]
                        .clone()
                        .map(|r| r.version)
                        .unwrap_or(contact.version),
                },
                stamp: contact_stamp(0),
                fields: new_contact(0).fields,
            }],
        )
        .await
        .expect("update_contacts");
    assert!(is_not_found(&update[0]), "{update:?}");
    let read = f
        .mailbox
        .get_events(&alice(), std::slice::from_ref(&event_in_bin), window())
        .await
        .expect("get_events");
    assert!(is_not_found(&read[0]), "{read:?}");
    let cancel = f
        .mailbox
        .cancel_events(&alice(), std::slice::from_ref(&event_in_bin))
        .await
        .expect("cancel_events");
    assert!(is_not_found(&cancel[0]), "{cancel:?}");
    // Nor is it found by its stamp, which it keeps in the bin.
    let stamped = f
        .mailbox
        .find_stamped_events(&alice(), &[event_stamp(0)])
        .await
        .expect("find_stamped_events");
    assert!(stamped.is_empty(), "{stamped:?}");
    // Untouched in the bin.
    let in_bin = |folder: &ews_sim::FolderId| {
        f.sim
            .items_in_folder(ALICE, folder)
            .expect("Deleted Items")
            .len()
    };
    let bin = f
        .sim
        .folder_id(ALICE, ews_sim::DistinguishedFolder::DeletedItems)
        .expect("Deleted Items");
    assert_eq!(in_bin(&bin), 2, "both still in Deleted Items");
}
