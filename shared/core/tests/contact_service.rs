//! The contact service over in-memory ports: rules that are about the run rather than the plan.

use futures::executor::block_on;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{Clock, StateStore};
use lnsync_core::service::{ContactSync, SyncOptions, UserRun};
use lnsync_core::testing::{ManualClock, MemoryLn, MemoryMailbox, MemoryStore};
use std::sync::atomic::Ordering;
use std::time::Duration;

struct World {
    env: EnvironmentId,
    ln: MemoryLn,
    mailbox: MemoryMailbox,
    store: MemoryStore,
    clock: ManualClock,
    options: SyncOptions,
    users: Vec<SyncUser>,
}

fn user(name: &str) -> SyncUser {
    SyncUser {
        user: UserId::new(name),
        name: name.into(),
        active: true,
        email: MailboxAddress::new(format!("{name}@corp.example")),
    }
}

fn contact(i: usize, job: &str) -> Contact {
    Contact {
        contact: ContactCode::new(format!("C{i}")),
        first_name: Some("Ann".into()),
        middle_name: None,
        last_name: Some(format!("Lee{i}")),
        full_name: None,
        title: None,
        suffix: None,
        initials: None,
        job_title: Some(job.into()),
        department: None,
        assistant: None,
        birthday: None,
        business_partner: None,
        business_partner_name: None,
        email: None,
        primary_phone: None,
        mobile_phone: None,
        fax: None,
        address: None,
        language: None,
        synchronize: true,
        active: true,
        opted_out: false,
        last_modified: chrono::DateTime::default(),
        version: LnVersion::new(""),
    }
}

impl World {
    fn new(users: &[&str], contacts: usize) -> Self {
        let w = Self {
            env: EnvironmentId::new("e"),
            ln: MemoryLn::default(),
            mailbox: MemoryMailbox::default(),
            store: MemoryStore::default(),
            clock: ManualClock::new(chrono::DateTime::default()),
            options: SyncOptions::default(),
            users: users.iter().map(|u| user(u)).collect(),
        };
        for i in 0..contacts {
            w.ln.upsert(contact(i, "Buyer"));
        }
        w
    }

    fn run(&self) -> Vec<UserRun> {
        let sync = ContactSync {
            env: &self.env,
            store: &self.store,
            clock: &self.clock,
            options: &self.options,
        };
        let mut runs =
            block_on(sync.run(&self.ln, &self.mailbox, &self.users, "test")).unwrap_or_default();
        runs.sort_by(|a, b| a.user.cmp(&b.user));
        runs
    }

    fn mailbox_of(&self, i: usize) -> &MailboxAddress {
        &self.users[i].email
    }
}

#[test]
fn the_feed_is_read_once_per_environment_not_per_user() {
    let w = World::new(&["a", "b", "c"], 5);
    let runs = w.run();
    assert!(runs.iter().all(|r| r.counts.created == 5));
    assert_eq!(
        w.ln.feed_reads.load(Ordering::SeqCst),
        2,
        "one contacts read + one deletions read"
    );
}

#[test]
fn one_failing_mailbox_fails_only_its_user_and_is_caught_up_next_run() {
    let w = World::new(&["a", "b"], 3);
    w.mailbox.fail_next_call(w.mailbox_of(0));
    let runs = w.run();
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert!(
        runs[0]
            .error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("unreachable"))
    );
    assert_eq!(runs[1].outcome, RunOutcome::Succeeded);
    assert_eq!(runs[1].counts.created, 3);
    // The failed user's watermark did not move: the next run creates its contacts.
    let runs = w.run();
    assert_eq!(runs[0].counts.created, 3);
    assert_eq!(runs[1].counts.writes(), 0);
    assert_eq!(w.mailbox.contacts(w.mailbox_of(0)).len(), 3);
}

#[test]
fn a_user_whose_lease_is_held_is_reported_busy_and_untouched() {
    let w = World::new(&["a"], 2);
    let taken = block_on(w.store.acquire_lease(
        &w.env,
        &UserId::new("a"),
        "contacts",
        "other-run",
        w.clock.now(),
        Duration::from_secs(60),
    ));
    assert_eq!(taken.ok(), Some(true));
    let runs = w.run();
    assert_eq!(runs[0].outcome, RunOutcome::Busy);
    assert!(w.mailbox.contacts(w.mailbox_of(0)).is_empty());
    assert_eq!(w.mailbox.total_calls(), 0);
    // Once the other run's lease expires, the next run proceeds (R7: one catch-up run).
    w.clock.advance(chrono::Duration::minutes(2));
    let runs = w.run();
    assert_eq!(runs[0].counts.created, 2);
}

#[test]
fn repair_mode_restores_outlook_edits_and_deletions_without_an_ln_change() {
    let mut w = World::new(&["a"], 3);
    w.options.repair = true;
    w.run();
    let mb = w.mailbox_of(0).clone();
    let items = w.mailbox.contacts(&mb);
    w.mailbox.user_edit(&mb, &items[0].id, |f| {
        f.job_title = Some("changed in Outlook".into())
    });
    w.mailbox.user_delete(&mb, &items[1].id);
    let by_hand = w.mailbox.user_create(
        &mb,
        &items[0].folder,
        ContactFields {
            display_name: Some("Mine".into()),
            ..ContactFields::default()
        },
    );

    let runs = w.run();
    assert_eq!(runs[0].outcome, RunOutcome::Succeeded);
    let items = w.mailbox.contacts(&mb);
    let stamped: Vec<_> = items.iter().filter(|c| c.stamp.is_some()).collect();
    assert_eq!(stamped.len(), 3, "the deleted contact is back, once");
    assert!(
        stamped
            .iter()
            .all(|c| c.fields.job_title.as_deref() == Some("Buyer")),
        "LN values restored"
    );
    assert!(
        items
            .iter()
            .any(|c| c.id == by_hand && c.fields.display_name.as_deref() == Some("Mine")),
        "hand-made item untouched"
    );

    // Our own repair writes are not seen as Outlook edits: the next run only reads the folder.
    let before = w.mailbox.calls(&mb).len();
    let runs = w.run();
    assert_eq!(runs[0].counts.writes(), 0);
    assert_eq!(&w.mailbox.calls(&mb)[before..], ["sync"]);
}

#[test]
fn without_repair_an_idle_run_does_not_call_exchange() {
    let w = World::new(&["a", "b"], 4);
    w.run();
    let before = w.mailbox.total_calls();
    let runs = w.run();
    assert!(
        runs.iter()
            .all(|r| r.counts.writes() == 0 && r.outcome == RunOutcome::Succeeded)
    );
    assert_eq!(w.mailbox.total_calls(), before);
}

#[test]
fn held_deletions_wait_for_release() {
    let w = World::new(&["a"], 30);
    w.run();
    for i in 0..25 {
        w.ln.delete(&ContactCode::new(format!("C{i}")));
    }
    let runs = w.run();
    assert_eq!(runs[0].counts.held, 25);
    assert_eq!(runs[0].outcome, RunOutcome::Partial);
    assert_eq!(
        w.mailbox.contacts(w.mailbox_of(0)).len(),
        30,
        "nothing deleted"
    );
    let problems = block_on(w.store.problems(&w.env, &UserId::new("a"))).unwrap_or_default();
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.problem == ProblemKind::HeldDeletion)
            .count(),
        25
    );
    // Held again on the next run: the deletions are not lost.
    assert_eq!(w.run()[0].counts.held, 25);

    let mut state = block_on(w.store.user_state(&w.env, &UserId::new("a")))
        .ok()
        .flatten()
        .expect("user state");
    state.release_held_deletions = true;
    block_on(w.store.put_user_state(&state)).expect("saved");
    let runs = w.run();
    assert_eq!(runs[0].counts.deleted, 25);
    assert_eq!(w.mailbox.contacts(w.mailbox_of(0)).len(), 5);
    let problems = block_on(w.store.problems(&w.env, &UserId::new("a"))).unwrap_or_default();
    assert!(problems.is_empty(), "{problems:?}");
    let state = block_on(w.store.user_state(&w.env, &UserId::new("a")))
        .ok()
        .flatten()
        .expect("user state");
    assert!(!state.release_held_deletions, "a release applies once");
}

#[test]
fn an_active_user_without_an_email_fails_alone_with_the_reason() {
    let mut w = World::new(&["a", "b"], 2);
    w.users[1].email = MailboxAddress::new("");
    let runs = w.run();
    assert_eq!(runs[0].counts.created, 2);
    assert_eq!(runs[1].outcome, RunOutcome::Failed);
    let error = runs[1]
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        error.contains("sync user b") && error.contains("no e-mail"),
        "{error}"
    );
    assert_eq!(w.mailbox.calls(&MailboxAddress::new("")).len(), 0);
}

/// A mailbox whose ids all change (moved, or its environment switched from EWS to Graph)
/// keeps its contacts: LN edits find them by stamp, LN deletions remove them, nothing is
/// duplicated.
#[test]
fn contacts_whose_ids_changed_are_found_again_by_their_stamp() {
    let w = World::new(&["a"], 4);
    w.run();
    let mb = w.mailbox_of(0).clone();
    w.mailbox.move_mailbox(&mb);
    let moved: Vec<ExchangeItemId> = w
        .mailbox
        .contacts(&mb)
        .iter()
        .map(|c| c.id.clone())
        .collect();

    w.clock.advance(chrono::Duration::seconds(10));
    let mut edited = contact(1, "Head of buying");
    edited.last_modified = w.clock.now();
    edited.version = LnVersion::new("v2");
    w.ln.upsert(edited);
    w.ln.delete(&ContactCode::new("C2"));
    let runs = w.run();
    assert_eq!(
        runs[0].outcome,
        RunOutcome::Succeeded,
        "{:?}",
        runs[0].error
    );
    assert_eq!(
        (
            runs[0].counts.created,
            runs[0].counts.updated,
            runs[0].counts.deleted
        ),
        (0, 1, 1)
    );

    let items = w.mailbox.contacts(&mb);
    assert_eq!(items.len(), 3, "one deleted, none duplicated");
    assert!(
        items.iter().all(|c| moved.contains(&c.id)),
        "the moved items themselves"
    );
    let c1 = CrmStamp::contact(&w.env, &ContactCode::new("C1"));
    assert!(items.iter().any(|c| c.stamp.as_ref() == Some(&c1)
        && c.fields.job_title.as_deref() == Some("Head of buying")));
    let c2 = CrmStamp::contact(&w.env, &ContactCode::new("C2"));
    assert!(items.iter().all(|c| c.stamp.as_ref() != Some(&c2)));

    // The edited contact's link follows its new id, so its next edit costs no lookup; links
    // of untouched contacts are corrected when they next change.
    let links = w.store.all_links(&w.env, &w.users[0].user);
    let c1_link = links
        .iter()
        .find(|l| l.ln_key.as_str() == "C1")
        .map(|l| l.exchange_id.clone());
    assert!(c1_link.is_some_and(|id| moved.contains(&id)));
    assert!(links.iter().all(|l| l.ln_key.as_str() != "C2"));
}
