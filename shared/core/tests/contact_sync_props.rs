//! Property-based state machine over the contact sync: random LN edits, deletions and
//! Synchronize flips, Outlook edits and deletions, and crashes between an Exchange write and
//! saving its link. After every completed run it checks convergence, no duplicates, links =
//! synced items, and that a second run plans nothing.

use futures::executor::block_on;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::normalize::ContactFields;
use lnsync_core::service::{ContactSync, SyncOptions};
use lnsync_core::testing::{CrashingStore, ManualClock, MemoryLn, MemoryMailbox, MemoryStore};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const CONTACTS: usize = 6;
const USERS: [&str; 2] = ["anna", "ben"];

#[derive(Debug, Clone)]
enum Op {
    LnUpsert {
        contact: usize,
        title: u8,
        synchronize: bool,
        active: bool,
    },
    LnDelete {
        contact: usize,
    },
    OutlookEdit {
        user: usize,
        contact: usize,
    },
    OutlookDelete {
        user: usize,
        contact: usize,
    },
    Sync,
    /// A run that dies when saving the n-th batch of links.
    CrashingSync {
        at: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CONTACTS, 0u8..3, prop::bool::weighted(0.8), prop::bool::weighted(0.9))
            .prop_map(|(contact, title, synchronize, active)| Op::LnUpsert { contact, title, synchronize, active }),
        1 => (0..CONTACTS).prop_map(|contact| Op::LnDelete { contact }),
        1 => (0..USERS.len(), 0..CONTACTS).prop_map(|(user, contact)| Op::OutlookEdit { user, contact }),
        1 => (0..USERS.len(), 0..CONTACTS).prop_map(|(user, contact)| Op::OutlookDelete { user, contact }),
        2 => Just(Op::Sync),
        1 => (1u32..4).prop_map(|at| Op::CrashingSync { at }),
    ]
}

fn code(i: usize) -> ContactCode {
    ContactCode::new(format!("C{i:03}"))
}

fn contact(i: usize, title: u8, synchronize: bool, active: bool) -> Contact {
    Contact {
        contact: code(i),
        first_name: Some(format!("First{i}")),
        middle_name: None,
        last_name: Some(format!("Last{i}")),
        full_name: None,
        title: None,
        suffix: None,
        initials: None,
        job_title: Some(["Buyer", "CTO", "Engineer"][usize::from(title)].to_owned()),
        department: None,
        assistant: None,
        birthday: None,
        business_partner: None,
        business_partner_name: Some("Acme".into()),
        email: Some(format!("c{i}@acme.example")),
        primary_phone: None,
        mobile_phone: None,
        fax: None,
        address: None,
        language: None,
        synchronize,
        active,
        opted_out: false,
        last_modified: chrono::DateTime::default(),
        version: LnVersion::new(""),
    }
}

struct World {
    env: EnvironmentId,
    ln: MemoryLn,
    mailbox: MemoryMailbox,
    store: CrashingStore<MemoryStore>,
    clock: ManualClock,
    options: SyncOptions,
    users: Vec<SyncUser>,
    /// (user, contact) the user edited or deleted in Outlook at some point. One way means LN wins
    /// only at LN's next change (R12): such an item may differ from LN as long as LN's mapped
    /// content is still what its link recorded.
    touched: HashSet<(usize, usize)>,
}

impl World {
    fn new() -> Self {
        let users = USERS
            .iter()
            .map(|u| SyncUser {
                user: UserId::new(*u),
                name: u.to_string(),
                active: true,
                email: MailboxAddress::new(format!("{u}@corp.example")),
            })
            .collect();
        Self {
            env: EnvironmentId::new("test"),
            ln: MemoryLn::default(),
            mailbox: MemoryMailbox::default(),
            store: CrashingStore::new(MemoryStore::default()),
            clock: ManualClock::new(chrono::DateTime::default()),
            options: SyncOptions::default(),
            users,
            touched: HashSet::new(),
        }
    }

    fn sync(&self) -> (bool, u32) {
        let service = ContactSync {
            env: &self.env,
            store: &self.store,
            clock: &self.clock,
            options: &self.options,
        };
        let runs =
            block_on(service.run(&self.ln, &self.mailbox, &self.users, "prop")).unwrap_or_default();
        let ok = runs.len() == self.users.len() && runs.iter().all(|r| r.error.is_none());
        (ok, runs.iter().map(|r| r.counts.writes()).sum())
    }

    fn item_of(&self, user: usize, i: usize) -> Option<ExchangeItemId> {
        let stamp = CrmStamp::contact(&self.env, &code(i));
        self.mailbox
            .contacts(&self.users[user].email)
            .into_iter()
            .find(|c| c.stamp.as_ref() == Some(&stamp))
            .map(|c| c.id)
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::LnUpsert {
                contact: i,
                title,
                synchronize,
                active,
            } => {
                self.ln.upsert(contact(i, title, synchronize, active));
            }
            Op::LnDelete { contact: i } => self.ln.delete(&code(i)),
            Op::OutlookEdit { user, contact: i } => {
                if let Some(id) = self.item_of(user, i) {
                    self.mailbox.user_edit(&self.users[user].email, &id, |f| {
                        f.job_title = Some("edited in Outlook".into())
                    });
                    self.touched.insert((user, i));
                }
            }
            Op::OutlookDelete { user, contact: i } => {
                if let Some(id) = self.item_of(user, i) {
                    self.mailbox.user_delete(&self.users[user].email, &id);
                    self.touched.insert((user, i));
                }
            }
            Op::Sync => {
                let (ok, _) = self.sync();
                assert!(ok, "a clean run failed");
                self.check();
            }
            Op::CrashingSync { at } => {
                self.store.crash_on_put_links(at, false);
                let _ = self.sync();
                // A crash that didn't happen (fewer batches than `at`) must not linger.
                self.store.disarm();
            }
        }
    }

    fn check(&self) {
        let ln: HashMap<ContactCode, Contact> = self
            .ln
            .contacts()
            .into_iter()
            .map(|c| (c.contact.clone(), c))
            .collect();
        for (u, user) in self.users.iter().enumerate() {
            let links: HashMap<ContactCode, Link> = self
                .store
                .inner
                .all_links(&self.env, &user.user)
                .into_iter()
                .filter(|l| l.kind == LinkKind::Contact)
                .map(|l| (ContactCode::new(l.ln_key.as_str()), l))
                .collect();
            assert!(
                links.values().all(|l| !l.is_intent()),
                "unfinished create left after a clean run"
            );
            // May this item differ from LN? Only if the user touched it and LN did not change since.
            let excused = |i: usize, c: &Contact| {
                self.touched.contains(&(u, i))
                    && links
                        .get(&c.contact)
                        .is_some_and(|l| l.ln_hash == ContactFields::from_ln(c).hash())
            };
            let items = self.mailbox.contacts(&user.email);
            let mut seen = HashSet::new();
            for item in &items {
                let stamp = item.stamp.clone().expect("only lnsync creates items here");
                let code = stamp.contact_code(&self.env).expect("stamp of this env");
                assert!(
                    seen.insert(code.clone()),
                    "duplicate item for {code} in {}",
                    user.email
                );
                let i: usize = code.as_str()[1..].parse().expect("code");
                let lc = ln.get(&code).filter(|c| c.qualifies());
                let lc = lc
                    .unwrap_or_else(|| panic!("{code} in {} but not qualifying in LN", user.email));
                assert!(
                    links.contains_key(&code),
                    "item {code} without link in {}",
                    user.email
                );
                if item.fields != ContactFields::from_ln(lc) {
                    assert!(excused(i, lc), "{code} differs from LN in {}", user.email);
                }
            }
            for c in ln.values().filter(|c| c.qualifies()) {
                let i: usize = c.contact.as_str()[1..].parse().expect("code");
                if !seen.contains(&c.contact) {
                    assert!(excused(i, c), "{} missing in {}", c.contact, user.email);
                }
            }
            for code in links.keys() {
                assert!(
                    seen.contains(code)
                        || ln
                            .get(code)
                            .is_some_and(|c| excused(code.as_str()[1..].parse().unwrap_or(0), c)),
                    "link {code} without item in {}",
                    user.email
                );
            }
        }
        // A second run plans nothing and does not even talk to Exchange.
        let before = self.mailbox.total_calls();
        let (ok, writes) = self.sync();
        assert!(ok);
        assert_eq!(writes, 0, "second run wrote");
        assert_eq!(
            self.mailbox.total_calls(),
            before,
            "idle run called Exchange"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn contact_sync_converges_without_duplicates(ops in prop::collection::vec(op(), 1..40)) {
        let mut world = World::new();
        world.ln.set_users(world.users.clone());
        for op in &ops {
            world.apply(op);
        }
        world.apply(&Op::Sync);
    }
}
