//! The `StateStore` contract: what every store (SQLite, DynamoDB, the core's `MemoryStore`)
//! must do, as public async tests that each take a fresh, empty store.
//!
//! Wire an implementation with [`run_all`]:
//!
//! ```no_run
//! use lnsync_adapters::sqlite::SqliteStateStore;
//! use lnsync_core::ports::StateStore;
//! use std::sync::Arc;
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn sqlite() {
//!     lnsync_tests::contract::store::run_all(|| async {
//!         Arc::new(SqliteStateStore::open_in_memory().expect("open")) as Arc<dyn StateStore>
//!     })
//!     .await;
//! }
//! ```
//!
//! What the contract pins down beyond the trait's signatures:
//! - every value round-trips exactly, timestamps included (fixtures use millisecond precision);
//! - `links` returns only the keys that exist, in any order; scopes (env, user, kind) never leak;
//! - `Link.event` round-trips (`None`, and `Some` with or without original start and series);
//!   `all_links`, `links_by_ical_uid` and `links_by_series` return, in any order, exactly the
//!   scope's links whose current values match: a replaced or deleted link is found under its new
//!   values only, or not at all;
//! - `put_cursor`: revision 0 creates and returns 1; revision n updates a cursor stored at n and
//!   returns n + 1; anything else is `StoreError::Conflict` and changes nothing;
//! - a lease or a done-job id is expired when `now >= acquired_at + ttl`;
//! - `last_runs` gives the most recently *recorded* run per (user, kind);
//! - a push token is stored once per environment and never replaced, whoever races to create
//!   it; `touch_subscription` applies only to an existing subscription and a `seen` no older
//!   than its `last_seen` (equal applies), and creates nothing otherwise.
//!
//! Results with no specified order are sorted here before comparing.

use super::Case;
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use lnsync_core::error::StoreError;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::ports::StateStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// The store under test.
pub type Store = Arc<dyn StateStore>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case of the store contract, in the order they are listed in the module.
        pub const CASES: &[Case<Store>] = &[
            $(Case { name: stringify!($name), run: |store| Box::pin($name(store)) },)*
        ];
    };
}

cases!(
    environments_round_trip,
    user_states_round_trip,
    links_returns_only_existing_keys,
    links_are_isolated_by_env_user_and_kind,
    links_handle_large_key_sets,
    put_links_replaces,
    link_by_exchange_id_finds_the_pair,
    link_count_counts_one_scope,
    delete_links_removes_only_named_keys,
    event_round_trips_some_and_none,
    all_links_lists_one_scope,
    links_by_ical_uid_finds_every_copy,
    links_by_series_follows_moves_and_deletes,
    cursor_compare_and_set,
    cursor_scopes_are_independent,
    cursor_race_has_one_winner,
    lease_is_exclusive_and_reentrant,
    lease_expires_and_is_released_only_by_holder,
    lease_race_has_one_winner,
    mark_job_done_once_per_ttl,
    mark_job_done_race_has_one_winner,
    last_runs_are_the_latest_per_user_and_kind,
    problems_put_replace_clear_list,
    push_token_is_created_once_per_environment,
    push_token_race_stores_one_token,
    subscriptions_round_trip_every_field,
    subscriptions_are_isolated_by_environment,
    touch_subscription_only_moves_forward,
    touch_subscription_race_keeps_the_latest,
);

/// Runs every case, each on a fresh empty store from `make`, and panics listing all failures.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Store>,
{
    super::run_cases("StateStore", CASES, |_| make()).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn env(name: &str) -> EnvironmentId {
    EnvironmentId::new(name)
}

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn key(name: &str) -> LnKey {
    LnKey::new(name)
}

/// A fixed instant plus `secs`, with a millisecond fraction to catch truncating stores.
fn at(secs: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("valid fixture time");
    base + ChronoDuration::milliseconds(123) + ChronoDuration::seconds(secs)
}

/// A link with every optional field set.
fn link(e: &str, u: &str, kind: LinkKind, k: &str) -> Link {
    Link {
        env: env(e),
        user: user(u),
        kind,
        ln_key: key(k),
        exchange_id: ExchangeItemId::new(format!("AAMk-{e}-{u}-{}-{k}", kind.as_str())),
        exchange_version: ExchangeVersion::new("CQAAABYA"),
        ln_version: Some(LnVersion::new("W/\"1\"")),
        ln_modified: Some(at(-60)),
        ln_hash: ContentHash(format!("ln-{k}")),
        exchange_hash: ContentHash(format!("ex-{k}")),
        ical_uid: Some(IcalUid::new(format!("uid-{k}"))),
        origin: Origin::Ln,
        organizer: Some(MailboxAddress::new("Organizer@Example.com")),
        last_error: Some("ErrorQuotaExceeded".to_owned()),
        updated_at: at(0),
        event: Some(EventLink {
            original_start: Some(at(3600)),
            series_id: Some(ExchangeItemId::new(format!("AAMk-master-{k}"))),
            end: at(7200),
        }),
    }
}

/// A link with every optional field empty.
fn bare_link(e: &str, u: &str, kind: LinkKind, k: &str) -> Link {
    Link {
        ln_version: None,
        ln_modified: None,
        ical_uid: None,
        origin: Origin::Exchange,
        organizer: None,
        last_error: None,
        event: None,
        ..link(e, u, kind, k)
    }
}

/// A calendar link: occurrence `k` of series `uid` (mastered by `series`), or a single event
/// when `series` is `None`.
fn event_link(e: &str, u: &str, k: &str, uid: &str, series: Option<&str>) -> Link {
    Link {
        ical_uid: Some(IcalUid::new(uid)),
        event: Some(EventLink {
            original_start: series.map(|_| at(86_400)),
            series_id: series.map(ExchangeItemId::new),
            end: at(90_000),
        }),
        ..link(e, u, LinkKind::Event, k)
    }
}

/// The scope's links for `uid`, sorted.
async fn by_uid(store: &Store, e: &str, u: &str, uid: &str) -> Vec<Link> {
    sorted_links(
        store
            .links_by_ical_uid(&env(e), &user(u), LinkKind::Event, &IcalUid::new(uid))
            .await
            .expect("links_by_ical_uid"),
    )
}

/// The scope's links of recurring master `series`, sorted.
async fn by_series(store: &Store, e: &str, u: &str, series: &str) -> Vec<Link> {
    sorted_links(
        store
            .links_by_series(
                &env(e),
                &user(u),
                LinkKind::Event,
                &ExchangeItemId::new(series),
            )
            .await
            .expect("links_by_series"),
    )
}

fn sorted_links(mut links: Vec<Link>) -> Vec<Link> {
    links.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
    links
}

fn cursor(e: &str, u: &str, kind: CursorKind, value: &str, revision: u64) -> Cursor {
    Cursor {
        env: env(e),
        user: user(u),
        kind,
        value: value.to_owned(),
        revision,
    }
}

fn run(e: &str, u: &str, kind: LinkKind, started: i64, outcome: RunOutcome) -> RunRecord {
    RunRecord {
        env: env(e),
        user: user(u),
        kind,
        started_at: at(started),
        finished_at: at(started + 5),
        outcome,
        counts: RunCounts {
            created: 1,
            updated: 2,
            deleted: 3,
            skipped: 4,
            errors: 5,
            held: 6,
        },
        error: (outcome == RunOutcome::Failed).then(|| "LN is unreachable".to_owned()),
    }
}

fn problem(e: &str, u: &str, kind: LinkKind, k: &str, p: ProblemKind, detail: &str) -> ItemProblem {
    ItemProblem {
        env: env(e),
        user: user(u),
        kind,
        ln_key: key(k),
        problem: p,
        detail: detail.to_owned(),
        at: at(0),
    }
}

fn is_conflict(result: &Result<u64, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict { .. }))
}

const TTL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Environments and users
// ---------------------------------------------------------------------------------------------

pub async fn environments_round_trip(store: Store) {
    assert_eq!(store.environment(&env("prod")).await.expect("get"), None);
    assert!(store.environments().await.expect("list").is_empty());

    let prod = EnvironmentState {
        env: env("prod"),
        started: true,
        updated_at: at(0),
    };
    let test = EnvironmentState {
        env: env("test"),
        started: false,
        updated_at: at(1),
    };
    store.put_environment(&prod).await.expect("put prod");
    store.put_environment(&test).await.expect("put test");
    assert_eq!(
        store.environment(&env("prod")).await.expect("get"),
        Some(prod.clone())
    );

    let stopped = EnvironmentState {
        started: false,
        updated_at: at(2),
        ..prod
    };
    store.put_environment(&stopped).await.expect("replace");
    let mut all = store.environments().await.expect("list");
    all.sort_by(|a, b| a.env.cmp(&b.env));
    assert_eq!(all, vec![stopped, test]);
}

pub async fn user_states_round_trip(store: Store) {
    assert_eq!(
        store.user_state(&env("e"), &user("u1")).await.expect("get"),
        None
    );

    let full = UserState {
        contact_folder: Some(FolderId::new("AQMk-folder")),
        release_held_deletions: true,
        next_contact_run: Some(at(900)),
        next_calendar_run: Some(at(1800)),
        ..UserState::new(env("e"), user("u1"), MailboxAddress::new("U1@Example.com"))
    };
    let bare = UserState::new(env("e"), user("u2"), MailboxAddress::new("u2@example.com"));
    let elsewhere = UserState::new(
        env("other"),
        user("u1"),
        MailboxAddress::new("x@example.com"),
    );
    for s in [&full, &bare, &elsewhere] {
        store.put_user_state(s).await.expect("put");
    }

    assert_eq!(
        store.user_state(&env("e"), &user("u1")).await.expect("get"),
        Some(full.clone())
    );
    assert_eq!(
        store.user_state(&env("e"), &user("u2")).await.expect("get"),
        Some(bare.clone())
    );
    let mut listed = store.user_states(&env("e")).await.expect("list");
    listed.sort_by(|a, b| a.user.cmp(&b.user));
    assert_eq!(listed, vec![full.clone(), bare]);

    let cleared = UserState {
        contact_folder: None,
        release_held_deletions: false,
        next_contact_run: None,
        ..full
    };
    store.put_user_state(&cleared).await.expect("replace");
    assert_eq!(
        store.user_state(&env("e"), &user("u1")).await.expect("get"),
        Some(cleared)
    );
    assert_eq!(
        store.user_states(&env("other")).await.expect("list"),
        vec![elsewhere]
    );
    assert!(
        store
            .user_states(&env("none"))
            .await
            .expect("list")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

pub async fn links_returns_only_existing_keys(store: Store) {
    let k1 = link("e", "u", LinkKind::Contact, "C001");
    let k2 = bare_link("e", "u", LinkKind::Contact, "C002");
    let k3 = link("e", "u", LinkKind::Contact, "C003");
    store
        .put_links(&[k1.clone(), k2.clone(), k3.clone()])
        .await
        .expect("put");

    let got = store
        .links(
            &env("e"),
            &user("u"),
            LinkKind::Contact,
            &[key("C003"), key("C404"), key("C002")],
        )
        .await
        .expect("links");
    assert_eq!(sorted_links(got), vec![k2, k3]);

    let none = store
        .links(&env("e"), &user("u"), LinkKind::Contact, &[])
        .await
        .expect("no keys");
    assert!(none.is_empty());
    let missing = store
        .links(&env("e"), &user("u"), LinkKind::Contact, &[key("C404")])
        .await
        .expect("missing");
    assert!(missing.is_empty());
}

pub async fn links_are_isolated_by_env_user_and_kind(store: Store) {
    let mine = link("e", "u", LinkKind::Contact, "K1");
    let others = [
        link("e", "other-user", LinkKind::Contact, "K1"),
        link("e", "u", LinkKind::Event, "K1"),
        link("other-env", "u", LinkKind::Contact, "K1"),
    ];
    store.put_links(&others).await.expect("put others");
    store
        .put_links(std::slice::from_ref(&mine))
        .await
        .expect("put mine");

    for (l, label) in others
        .iter()
        .chain([&mine])
        .zip(["user", "kind", "env", "mine"])
    {
        let got = store
            .links(&l.env, &l.user, l.kind, &[key("K1")])
            .await
            .expect("links");
        assert_eq!(got, vec![l.clone()], "scope {label}");
    }
    assert!(
        store
            .links(&env("e"), &user("nobody"), LinkKind::Contact, &[key("K1")])
            .await
            .expect("links")
            .is_empty()
    );
}

pub async fn links_handle_large_key_sets(store: Store) {
    // More than one batch for any implementation (SQL IN chunks, DynamoDB BatchGetItem of 100).
    let all: Vec<Link> = (0..1200)
        .map(|i| bare_link("e", "u", LinkKind::Contact, &format!("C{i:05}")))
        .collect();
    store.put_links(&all).await.expect("put 1200");
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        1200
    );

    // Every third existing key, plus keys that don't exist, interleaved.
    let mut keys = Vec::new();
    let mut expected = Vec::new();
    for i in (0..1200).step_by(3) {
        keys.push(key(&format!("C{i:05}")));
        keys.push(key(&format!("X{i:05}")));
        expected.push(all[i].clone());
    }
    let got = store
        .links(&env("e"), &user("u"), LinkKind::Contact, &keys)
        .await
        .expect("links");
    assert_eq!(sorted_links(got), expected);
}

pub async fn put_links_replaces(store: Store) {
    let first = link("e", "u", LinkKind::Contact, "C1");
    store
        .put_links(std::slice::from_ref(&first))
        .await
        .expect("put");
    let second = Link {
        exchange_version: ExchangeVersion::new("CQAAABYB"),
        ln_version: None,
        ln_hash: ContentHash("ln-new".to_owned()),
        last_error: None,
        updated_at: at(10),
        ..first.clone()
    };
    store
        .put_links(std::slice::from_ref(&second))
        .await
        .expect("replace");
    let got = store
        .links(&env("e"), &user("u"), LinkKind::Contact, &[key("C1")])
        .await
        .expect("links");
    assert_eq!(got, vec![second]);
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        1
    );
}

pub async fn link_by_exchange_id_finds_the_pair(store: Store) {
    let l = link("e", "u", LinkKind::Event, "A1");
    store
        .put_links(&[
            l.clone(),
            link("e", "u", LinkKind::Event, "A2"),
            link("e", "u", LinkKind::Contact, "A1"),
        ])
        .await
        .expect("put");
    let id = l.exchange_id.clone();
    assert_eq!(
        store
            .link_by_exchange_id(&env("e"), &user("u"), LinkKind::Event, &id)
            .await
            .expect("get"),
        Some(l.clone())
    );
    // The same id in another scope is not this link.
    for (e, u, kind) in [
        ("e", "u", LinkKind::Contact),
        ("e", "other", LinkKind::Event),
        ("other", "u", LinkKind::Event),
    ] {
        assert_eq!(
            store
                .link_by_exchange_id(&env(e), &user(u), kind, &id)
                .await
                .expect("get"),
            None,
            "{e}/{u}/{kind:?}"
        );
    }
    // When the pair moves to a new item, the old id no longer finds it.
    let moved = Link {
        exchange_id: ExchangeItemId::new("AAMk-new"),
        ..l.clone()
    };
    store
        .put_links(std::slice::from_ref(&moved))
        .await
        .expect("replace");
    assert_eq!(
        store
            .link_by_exchange_id(&env("e"), &user("u"), LinkKind::Event, &id)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .link_by_exchange_id(&env("e"), &user("u"), LinkKind::Event, &moved.exchange_id)
            .await
            .expect("get"),
        Some(moved)
    );
}

pub async fn link_count_counts_one_scope(store: Store) {
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        0
    );
    let mut links: Vec<Link> = (0..3)
        .map(|i| link("e", "u", LinkKind::Contact, &format!("C{i}")))
        .collect();
    links.push(link("e", "u", LinkKind::Event, "A1"));
    links.push(link("e", "v", LinkKind::Contact, "C0"));
    links.push(link("f", "u", LinkKind::Contact, "C0"));
    store.put_links(&links).await.expect("put");
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Event)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .link_count(&env("e"), &user("v"), LinkKind::Contact)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .link_count(&env("g"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        0
    );
}

pub async fn delete_links_removes_only_named_keys(store: Store) {
    let links: Vec<Link> = (1..=4)
        .map(|i| link("e", "u", LinkKind::Contact, &format!("C{i}")))
        .collect();
    let neighbours = [
        link("e", "v", LinkKind::Contact, "C1"),
        link("e", "u", LinkKind::Event, "C1"),
        link("f", "u", LinkKind::Contact, "C1"),
    ];
    store.put_links(&links).await.expect("put");
    store.put_links(&neighbours).await.expect("put neighbours");

    store
        .delete_links(
            &env("e"),
            &user("u"),
            LinkKind::Contact,
            &[key("C1"), key("C3"), key("C404")],
        )
        .await
        .expect("delete");
    store
        .delete_links(&env("e"), &user("u"), LinkKind::Contact, &[])
        .await
        .expect("delete nothing");

    let all_keys: Vec<LnKey> = (1..=4).map(|i| key(&format!("C{i}"))).collect();
    let left = store
        .links(&env("e"), &user("u"), LinkKind::Contact, &all_keys)
        .await
        .expect("links");
    assert_eq!(sorted_links(left), vec![links[1].clone(), links[3].clone()]);
    assert_eq!(
        store
            .link_count(&env("e"), &user("u"), LinkKind::Contact)
            .await
            .expect("count"),
        2
    );
    for n in &neighbours {
        let got = store
            .links(&n.env, &n.user, n.kind, &[key("C1")])
            .await
            .expect("links");
        assert_eq!(
            got,
            vec![n.clone()],
            "neighbour {}/{}/{:?} survives",
            n.env,
            n.user,
            n.kind
        );
    }
}

pub async fn event_round_trips_some_and_none(store: Store) {
    let full = link("e", "u", LinkKind::Event, "A1");
    let single = event_link("e", "u", "A2", "uid-single", None);
    let none = bare_link("e", "u", LinkKind::Event, "A3");
    assert!(
        full.event
            .as_ref()
            .is_some_and(|e| e.original_start.is_some())
    );
    assert!(single.event.as_ref().is_some_and(|e| e.series_id.is_none()));
    store
        .put_links(&[full.clone(), single.clone(), none.clone()])
        .await
        .expect("put");
    let keys = [key("A1"), key("A2"), key("A3")];
    let got = store
        .links(&env("e"), &user("u"), LinkKind::Event, &keys)
        .await
        .expect("links");
    assert_eq!(
        sorted_links(got),
        vec![full.clone(), single.clone(), none.clone()]
    );
    for l in [&full, &single, &none] {
        let got = store
            .link_by_exchange_id(&env("e"), &user("u"), LinkKind::Event, &l.exchange_id)
            .await
            .expect("by id");
        assert_eq!(got.as_ref(), Some(l), "{}", l.ln_key);
    }

    // Replacing sets and clears the event like any other field.
    let cleared = Link {
        event: None,
        ..full.clone()
    };
    let moved = Link {
        event: Some(EventLink {
            original_start: None,
            series_id: None,
            end: at(-86_400),
        }),
        ..none.clone()
    };
    store
        .put_links(&[cleared.clone(), moved.clone()])
        .await
        .expect("replace");
    let got = store
        .links(&env("e"), &user("u"), LinkKind::Event, &keys)
        .await
        .expect("links");
    assert_eq!(sorted_links(got), vec![cleared, single, moved]);
}

pub async fn all_links_lists_one_scope(store: Store) {
    let mine: Vec<Link> = (1..=3)
        .map(|i| link("e", "u", LinkKind::Event, &format!("A{i}")))
        .chain([bare_link("e", "u", LinkKind::Event, "A4")])
        .collect();
    let neighbours = [
        link("e", "v", LinkKind::Event, "A1"),
        link("e", "u", LinkKind::Contact, "A1"),
        link("f", "u", LinkKind::Event, "A1"),
    ];
    assert!(
        store
            .all_links(&env("e"), &user("u"), LinkKind::Event)
            .await
            .expect("empty")
            .is_empty()
    );
    store.put_links(&mine).await.expect("put");
    store.put_links(&neighbours).await.expect("put neighbours");

    let got = store
        .all_links(&env("e"), &user("u"), LinkKind::Event)
        .await
        .expect("all");
    assert_eq!(sorted_links(got), mine);
    for n in &neighbours {
        let got = store.all_links(&n.env, &n.user, n.kind).await.expect("all");
        assert_eq!(got, vec![n.clone()], "{}/{}/{:?}", n.env, n.user, n.kind);
    }

    store
        .delete_links(&env("e"), &user("u"), LinkKind::Event, &[key("A2")])
        .await
        .expect("delete");
    let got = store
        .all_links(&env("e"), &user("u"), LinkKind::Event)
        .await
        .expect("all");
    assert_eq!(
        sorted_links(got),
        vec![mine[0].clone(), mine[2].clone(), mine[3].clone()]
    );
    assert!(
        store
            .all_links(&env("e"), &user("nobody"), LinkKind::Event)
            .await
            .expect("nobody")
            .is_empty()
    );
}

pub async fn links_by_ical_uid_finds_every_copy(store: Store) {
    // Three occurrences of one series, a single meeting, and links without a UID.
    let series: Vec<Link> = (1..=3)
        .map(|i| {
            event_link(
                "e",
                "u",
                &format!("A{i}"),
                "uid-series",
                Some("AAMk-master"),
            )
        })
        .collect();
    let single = event_link("e", "u", "A4", "uid-single", None);
    let no_uid = bare_link("e", "u", LinkKind::Event, "A5");
    // The same UID in every neighbouring scope.
    let neighbours = [
        event_link("e", "v", "A1", "uid-series", Some("AAMk-master")),
        event_link("f", "u", "A1", "uid-series", Some("AAMk-master")),
        Link {
            kind: LinkKind::Contact,
            ..event_link("e", "u", "A1", "uid-series", Some("AAMk-master"))
        },
    ];
    store.put_links(&series).await.expect("put series");
    store
        .put_links(&[single.clone(), no_uid])
        .await
        .expect("put others");
    store.put_links(&neighbours).await.expect("put neighbours");

    assert_eq!(by_uid(&store, "e", "u", "uid-series").await, series);
    assert_eq!(by_uid(&store, "e", "u", "uid-single").await, vec![single]);
    assert!(by_uid(&store, "e", "u", "uid-unknown").await.is_empty());
    assert!(by_uid(&store, "e", "nobody", "uid-series").await.is_empty());
    assert_eq!(
        store
            .links_by_ical_uid(
                &env("e"),
                &user("u"),
                LinkKind::Contact,
                &IcalUid::new("uid-series")
            )
            .await
            .expect("contact scope"),
        vec![neighbours[2].clone()]
    );

    // A link whose UID changes is found under the new one only; a deleted one not at all.
    let renamed = Link {
        ical_uid: Some(IcalUid::new("uid-other")),
        ..series[0].clone()
    };
    store
        .put_links(std::slice::from_ref(&renamed))
        .await
        .expect("replace");
    store
        .delete_links(&env("e"), &user("u"), LinkKind::Event, &[key("A2")])
        .await
        .expect("delete");
    assert_eq!(
        by_uid(&store, "e", "u", "uid-series").await,
        vec![series[2].clone()]
    );
    assert_eq!(by_uid(&store, "e", "u", "uid-other").await, vec![renamed]);
}

pub async fn links_by_series_follows_moves_and_deletes(store: Store) {
    let first: Vec<Link> = (1..=3)
        .map(|i| event_link("e", "u", &format!("A{i}"), "uid-1", Some("AAMk-master-1")))
        .collect();
    let second = event_link("e", "u", "B1", "uid-2", Some("AAMk-master-2"));
    let single = event_link("e", "u", "S1", "uid-3", None);
    let no_event = bare_link("e", "u", LinkKind::Event, "N1");
    let neighbours = [
        event_link("e", "v", "A1", "uid-1", Some("AAMk-master-1")),
        event_link("f", "u", "A1", "uid-1", Some("AAMk-master-1")),
    ];
    store.put_links(&first).await.expect("put");
    store
        .put_links(&[second.clone(), single, no_event])
        .await
        .expect("put others");
    store.put_links(&neighbours).await.expect("put neighbours");

    assert_eq!(by_series(&store, "e", "u", "AAMk-master-1").await, first);
    assert_eq!(
        by_series(&store, "e", "u", "AAMk-master-2").await,
        vec![second.clone()]
    );
    assert!(by_series(&store, "e", "u", "AAMk-unknown").await.is_empty());
    assert_eq!(
        by_series(&store, "e", "v", "AAMk-master-1").await,
        vec![neighbours[0].clone()]
    );
    // The series id is not the link's own item id: that lookup is `link_by_exchange_id`.
    assert!(
        by_series(&store, "e", "u", first[0].exchange_id.as_str())
            .await
            .is_empty()
    );

    // One occurrence moves to the other series, one stops being an occurrence, one is deleted.
    let moved = Link {
        event: Some(EventLink {
            series_id: Some(ExchangeItemId::new("AAMk-master-2")),
            ..first[0].event.clone().expect("fixture has an event")
        }),
        ..first[0].clone()
    };
    let detached = Link {
        event: None,
        ..first[1].clone()
    };
    store
        .put_links(&[moved.clone(), detached])
        .await
        .expect("replace");
    assert_eq!(
        by_series(&store, "e", "u", "AAMk-master-1").await,
        vec![first[2].clone()]
    );
    assert_eq!(
        by_series(&store, "e", "u", "AAMk-master-2").await,
        vec![moved.clone(), second.clone()]
    );
    store
        .delete_links(
            &env("e"),
            &user("u"),
            LinkKind::Event,
            &[key("A3"), key("B1")],
        )
        .await
        .expect("delete");
    assert!(
        by_series(&store, "e", "u", "AAMk-master-1")
            .await
            .is_empty()
    );
    assert_eq!(
        by_series(&store, "e", "u", "AAMk-master-2").await,
        vec![moved]
    );
    // The neighbours never moved.
    assert_eq!(
        by_series(&store, "f", "u", "AAMk-master-1").await,
        vec![neighbours[1].clone()]
    );
}

// ---------------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------------

pub async fn cursor_compare_and_set(store: Store) {
    let (e, u, kind) = (env("e"), user("u"), CursorKind::ExchangeContacts);
    assert_eq!(store.cursor(&e, &u, kind).await.expect("get"), None);

    // Revision 0 means "must not exist".
    let r1 = store
        .put_cursor(&cursor("e", "u", kind, "state-1", 0))
        .await
        .expect("create");
    assert_eq!(r1, 1);
    assert_eq!(
        store.cursor(&e, &u, kind).await.expect("get"),
        Some(cursor("e", "u", kind, "state-1", 1))
    );
    assert!(is_conflict(
        &store.put_cursor(&cursor("e", "u", kind, "again", 0)).await
    ));

    // The right revision moves it on; a stale or a future one loses and changes nothing.
    let r2 = store
        .put_cursor(&cursor("e", "u", kind, "state-2", r1))
        .await
        .expect("update");
    assert_eq!(r2, 2);
    assert!(is_conflict(
        &store.put_cursor(&cursor("e", "u", kind, "stale", r1)).await
    ));
    assert!(is_conflict(
        &store.put_cursor(&cursor("e", "u", kind, "future", 7)).await
    ));
    assert_eq!(
        store.cursor(&e, &u, kind).await.expect("get"),
        Some(cursor("e", "u", kind, "state-2", 2))
    );

    // Deleted means absent: revision 0 creates it again, an old revision conflicts. The
    // revision never restarts, so a writer that read it before a reset (R39) cannot win after
    // the cursor was re-created either.
    store.delete_cursor(&e, &u, kind).await.expect("delete");
    assert_eq!(store.cursor(&e, &u, kind).await.expect("get"), None);
    assert!(is_conflict(
        &store.put_cursor(&cursor("e", "u", kind, "old", r2)).await
    ));
    let r3 = store
        .put_cursor(&cursor("e", "u", kind, "fresh", 0))
        .await
        .expect("recreate");
    assert!(r3 > r2, "revision restarted after delete: {r3} <= {r2}");
    assert!(is_conflict(
        &store.put_cursor(&cursor("e", "u", kind, "stale", r2)).await
    ));
    assert_eq!(
        store.cursor(&e, &u, kind).await.expect("get"),
        Some(cursor("e", "u", kind, "fresh", r3))
    );
    store
        .delete_cursor(&e, &user("nobody"), kind)
        .await
        .expect("deleting nothing is fine");
}

pub async fn cursor_scopes_are_independent(store: Store) {
    let big = "x".repeat(64 * 1024); // an EWS SyncState can be tens of kilobytes
    let scopes = [
        ("e", "u", CursorKind::LnContacts),
        ("e", "u", CursorKind::LnActivities),
        ("e", "u", CursorKind::ExchangeContacts),
        ("e", "u", CursorKind::ExchangeCalendar),
        ("e", "v", CursorKind::LnContacts),
        ("f", "u", CursorKind::LnContacts),
    ];
    for (e, u, kind) in scopes {
        let value = format!("{e}/{u}/{}/{big}", kind.as_str());
        assert_eq!(
            store
                .put_cursor(&cursor(e, u, kind, &value, 0))
                .await
                .expect("create"),
            1
        );
    }
    store
        .put_cursor(&cursor("e", "u", CursorKind::LnContacts, "moved", 1))
        .await
        .expect("update");
    store
        .delete_cursor(&env("e"), &user("u"), CursorKind::LnActivities)
        .await
        .expect("delete");
    for (e, u, kind) in scopes {
        let got = store.cursor(&env(e), &user(u), kind).await.expect("get");
        match (e, u, kind) {
            ("e", "u", CursorKind::LnContacts) => {
                assert_eq!(got, Some(cursor(e, u, kind, "moved", 2)));
            }
            ("e", "u", CursorKind::LnActivities) => assert_eq!(got, None),
            _ => {
                let value = format!("{e}/{u}/{}/{big}", kind.as_str());
                assert_eq!(got, Some(cursor(e, u, kind, &value, 1)), "{e}/{u}/{kind:?}");
            }
        }
    }
}

/// Races `n` writers of the same cursor revision; returns how many won.
async fn race_cursor(store: &Store, revision: u64, n: usize) -> usize {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let value = format!("writer-{i}");
                store
                    .put_cursor(&cursor("e", "u", CursorKind::LnContacts, &value, revision))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("writer task") {
            Ok(r) => {
                assert_eq!(r, revision + 1);
                wins += 1;
            }
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("a losing writer must see Conflict, got {other:?}"),
        }
    }
    wins
}

pub async fn cursor_race_has_one_winner(store: Store) {
    // Create race, then several update races on the revision everyone read.
    assert_eq!(race_cursor(&store, 0, 2).await, 1, "two creators");
    for revision in 1..=5 {
        assert_eq!(
            race_cursor(&store, revision, 2).await,
            1,
            "two writers at revision {revision}"
        );
    }
    assert_eq!(race_cursor(&store, 6, 8).await, 1, "eight writers");
    let stored = store
        .cursor(&env("e"), &user("u"), CursorKind::LnContacts)
        .await
        .expect("get")
        .expect("cursor exists");
    assert_eq!(stored.revision, 7);
}

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

pub async fn lease_is_exclusive_and_reentrant(store: Store) {
    let (e, u) = (env("e"), user("u"));
    assert!(
        store
            .acquire_lease(&e, &u, "contacts", "w1", at(0), TTL)
            .await
            .expect("w1")
    );
    assert!(
        !store
            .acquire_lease(&e, &u, "contacts", "w2", at(1), TTL)
            .await
            .expect("w2 waits")
    );
    // Re-acquiring extends w1's lease: at 70 s the original would have expired.
    assert!(
        store
            .acquire_lease(&e, &u, "contacts", "w1", at(50), TTL)
            .await
            .expect("w1 again")
    );
    assert!(
        !store
            .acquire_lease(&e, &u, "contacts", "w2", at(70), TTL)
            .await
            .expect("still w1's")
    );
    // Other kinds, users and environments have their own leases.
    assert!(
        store
            .acquire_lease(&e, &u, "calendar", "w2", at(1), TTL)
            .await
            .expect("kind")
    );
    assert!(
        store
            .acquire_lease(&e, &user("v"), "contacts", "w2", at(1), TTL)
            .await
            .expect("user")
    );
    assert!(
        store
            .acquire_lease(&env("f"), &u, "contacts", "w2", at(1), TTL)
            .await
            .expect("env")
    );
}

pub async fn lease_expires_and_is_released_only_by_holder(store: Store) {
    let (e, u) = (env("e"), user("u"));
    assert!(
        store
            .acquire_lease(&e, &u, "contacts", "w1", at(0), TTL)
            .await
            .expect("w1")
    );
    assert!(
        !store
            .acquire_lease(&e, &u, "contacts", "w2", at(59), TTL)
            .await
            .expect("before")
    );
    // Expired: anyone takes it over, and the old holder has lost it.
    assert!(
        store
            .acquire_lease(&e, &u, "contacts", "w2", at(61), TTL)
            .await
            .expect("after")
    );
    assert!(
        !store
            .acquire_lease(&e, &u, "contacts", "w1", at(62), TTL)
            .await
            .expect("w1 lost")
    );

    // Only the holder's release frees it; a stranger's release is a no-op, not an error.
    store
        .release_lease(&e, &u, "contacts", "w1")
        .await
        .expect("release by non-holder");
    assert!(
        !store
            .acquire_lease(&e, &u, "contacts", "w3", at(63), TTL)
            .await
            .expect("held")
    );
    store
        .release_lease(&e, &u, "contacts", "w2")
        .await
        .expect("release by holder");
    assert!(
        store
            .acquire_lease(&e, &u, "contacts", "w3", at(64), TTL)
            .await
            .expect("freed")
    );
    store
        .release_lease(&e, &user("nobody"), "contacts", "w3")
        .await
        .expect("nothing to release");
}

pub async fn lease_race_has_one_winner(store: Store) {
    for round in 0..5 {
        let kind = format!("kind-{round}");
        let n = 4;
        let barrier = Arc::new(Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (store, barrier, kind) =
                    (Arc::clone(&store), Arc::clone(&barrier), kind.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .acquire_lease(&env("e"), &user("u"), &kind, &format!("w{i}"), at(0), TTL)
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await.expect("task").expect("acquire") {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs, runs, problems
// ---------------------------------------------------------------------------------------------

pub async fn mark_job_done_once_per_ttl(store: Store) {
    let job = JobId::new("job-1");
    assert!(store.mark_job_done(&job, at(0), TTL).await.expect("first"));
    assert!(
        !store
            .mark_job_done(&job, at(1), TTL)
            .await
            .expect("redelivery")
    );
    assert!(
        !store
            .mark_job_done(&job, at(59), TTL)
            .await
            .expect("still within ttl")
    );
    assert!(
        store
            .mark_job_done(&JobId::new("job-2"), at(1), TTL)
            .await
            .expect("other job")
    );
    // Past the ttl the id is forgotten, and the new mark starts a new ttl.
    assert!(
        store
            .mark_job_done(&job, at(61), TTL)
            .await
            .expect("after ttl")
    );
    assert!(
        !store
            .mark_job_done(&job, at(62), TTL)
            .await
            .expect("marked again")
    );
}

pub async fn mark_job_done_race_has_one_winner(store: Store) {
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .mark_job_done(&JobId::new("job-race"), at(0), TTL)
                    .await
            })
        })
        .collect();
    let mut firsts = 0;
    for t in tasks {
        if t.await.expect("task").expect("mark") {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
}

pub async fn last_runs_are_the_latest_per_user_and_kind(store: Store) {
    assert!(store.last_runs(&env("e")).await.expect("none").is_empty());
    let runs = [
        run("e", "u", LinkKind::Contact, 0, RunOutcome::Failed),
        run("e", "u", LinkKind::Event, 10, RunOutcome::Partial),
        run("e", "v", LinkKind::Contact, 20, RunOutcome::Busy),
        run("f", "u", LinkKind::Contact, 30, RunOutcome::Succeeded),
        run("e", "u", LinkKind::Contact, 900, RunOutcome::Succeeded),
    ];
    for r in &runs {
        store.record_run(r).await.expect("record");
    }
    let mut latest = store.last_runs(&env("e")).await.expect("last runs");
    latest.sort_by(|a, b| (&a.user, a.kind).cmp(&(&b.user, b.kind)));
    assert_eq!(
        latest,
        vec![runs[4].clone(), runs[1].clone(), runs[2].clone()]
    );
    assert_eq!(
        store.last_runs(&env("f")).await.expect("f"),
        vec![runs[3].clone()]
    );
}

pub async fn problems_put_replace_clear_list(store: Store) {
    let (e, u) = (env("e"), user("u"));
    assert!(store.problems(&e, &u).await.expect("none").is_empty());

    let c1 = problem(
        "e",
        "u",
        LinkKind::Contact,
        "C1",
        ProblemKind::Skipped,
        "no name",
    );
    let c2 = problem(
        "e",
        "u",
        LinkKind::Contact,
        "C2",
        ProblemKind::Conflict,
        "both changed",
    );
    let a1 = problem(
        "e",
        "u",
        LinkKind::Event,
        "C1",
        ProblemKind::WriteFailed,
        "quota",
    );
    let other_user = problem(
        "e",
        "v",
        LinkKind::Contact,
        "C1",
        ProblemKind::HeldDeletion,
        "held",
    );
    let other_env = problem(
        "f",
        "u",
        LinkKind::Contact,
        "C1",
        ProblemKind::MappingOverflow,
        "3 phones",
    );
    for p in [&c1, &c2, &a1, &other_user, &other_env] {
        store.put_problem(p).await.expect("put");
    }

    // A new problem of the same item replaces the old one.
    let c1_again = ItemProblem {
        problem: ProblemKind::MappingOverflow,
        detail: "4 e-mail addresses".to_owned(),
        at: at(60),
        ..c1.clone()
    };
    store.put_problem(&c1_again).await.expect("replace");

    let sorted = |mut ps: Vec<ItemProblem>| {
        ps.sort_by(|a, b| (a.kind, &a.ln_key).cmp(&(b.kind, &b.ln_key)));
        ps
    };
    assert_eq!(
        sorted(store.problems(&e, &u).await.expect("list")),
        vec![c1_again.clone(), c2.clone(), a1.clone()]
    );

    // Clearing names kind and keys: the event problem of the same key stays.
    store
        .clear_problems(&e, &u, LinkKind::Contact, &[key("C1"), key("C404")])
        .await
        .expect("clear");
    store
        .clear_problems(&e, &u, LinkKind::Contact, &[])
        .await
        .expect("clear nothing");
    assert_eq!(
        sorted(store.problems(&e, &u).await.expect("list")),
        vec![c2, a1]
    );
    assert_eq!(
        store.problems(&e, &user("v")).await.expect("v"),
        vec![other_user]
    );
    assert_eq!(
        store.problems(&env("f"), &u).await.expect("f"),
        vec![other_env]
    );
}

// ---------------------------------------------------------------------------------------------
// Push (R31–R33)
// ---------------------------------------------------------------------------------------------

/// A subscription with every optional field set (a Graph one: it expires).
fn subscription(e: &str, id: &str) -> PushSubscription {
    PushSubscription {
        env: env(e),
        user: user("u"),
        id: SubscriptionId::new(id),
        mailbox: MailboxAddress::new("User.One@Example.com"),
        backend: ExchangeBackend::Graph,
        watermark: Some(format!("AQAAAEmQ-{e}-{id}")),
        status_frequency_minutes: 30,
        created_at: at(-600),
        last_seen: at(0),
        expires_at: Some(at(3 * 86_400)),
        active: true,
    }
}

/// An EWS subscription with every optional field empty, already replaced (inactive).
fn bare_subscription(e: &str, id: &str) -> PushSubscription {
    PushSubscription {
        user: user("v"),
        backend: ExchangeBackend::Ews,
        watermark: None,
        status_frequency_minutes: 1,
        expires_at: None,
        active: false,
        ..subscription(e, id)
    }
}

async fn sorted_subscriptions(store: &Store, e: &str) -> Vec<PushSubscription> {
    let mut subs = store.subscriptions(&env(e)).await.expect("subscriptions");
    subs.sort_by(|a, b| a.id.cmp(&b.id));
    subs
}

async fn get_subscription(store: &Store, e: &str, id: &str) -> Option<PushSubscription> {
    store
        .subscription(&env(e), &SubscriptionId::new(id))
        .await
        .expect("subscription")
}

pub async fn push_token_is_created_once_per_environment(store: Store) {
    let (e, f) = (env("e"), env("e#f"));
    assert_eq!(store.push_token(&e).await.expect("none yet"), None);

    assert_eq!(
        store
            .ensure_push_token(&e, "token-1")
            .await
            .expect("create"),
        "token-1"
    );
    // A later candidate never replaces the stored token.
    assert_eq!(
        store.ensure_push_token(&e, "token-2").await.expect("again"),
        "token-1"
    );
    assert_eq!(
        store.push_token(&e).await.expect("read"),
        Some("token-1".to_owned())
    );

    // Each environment has its own (`e#f` also checks that key escaping keeps them apart).
    assert_eq!(store.push_token(&f).await.expect("other env"), None);
    assert_eq!(
        store
            .ensure_push_token(&f, "token-f")
            .await
            .expect("other env"),
        "token-f"
    );
    assert_eq!(
        store.push_token(&e).await.expect("read e"),
        Some("token-1".to_owned())
    );
    assert_eq!(
        store.push_token(&f).await.expect("read f"),
        Some("token-f".to_owned())
    );
}

pub async fn push_token_race_stores_one_token(store: Store) {
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .ensure_push_token(&env("e"), &format!("candidate-{i}"))
                    .await
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(n);
    for t in tasks {
        tokens.push(t.await.expect("task").expect("ensure"));
    }
    let first = tokens[0].clone();
    assert!(tokens.iter().all(|t| *t == first), "{tokens:?}");
    assert!(
        (0..n).any(|i| first == format!("candidate-{i}")),
        "{first} is none of the candidates"
    );
    assert_eq!(
        store.push_token(&env("e")).await.expect("read"),
        Some(first)
    );
}

pub async fn subscriptions_round_trip_every_field(store: Store) {
    assert!(sorted_subscriptions(&store, "e").await.is_empty());
    assert_eq!(get_subscription(&store, "e", "sub-1").await, None);

    let full = subscription("e", "sub-1");
    let bare = bare_subscription("e", "sub-2");
    store.put_subscription(&full).await.expect("put full");
    store.put_subscription(&bare).await.expect("put bare");
    assert_eq!(
        get_subscription(&store, "e", "sub-1").await,
        Some(full.clone())
    );
    assert_eq!(
        get_subscription(&store, "e", "sub-2").await,
        Some(bare.clone())
    );
    assert_eq!(
        sorted_subscriptions(&store, "e").await,
        vec![full.clone(), bare.clone()]
    );

    // Put replaces by id, every field (here Some → None and back the other way).
    let replaced_full = PushSubscription {
        watermark: None,
        expires_at: None,
        active: false,
        backend: ExchangeBackend::Ews,
        last_seen: at(5),
        ..full.clone()
    };
    let replaced_bare = PushSubscription {
        watermark: Some("AQAAAEmQ-new".to_owned()),
        expires_at: Some(at(86_400)),
        active: true,
        status_frequency_minutes: 1440,
        ..bare.clone()
    };
    store
        .put_subscription(&replaced_full)
        .await
        .expect("replace full");
    store
        .put_subscription(&replaced_bare)
        .await
        .expect("replace bare");
    assert_eq!(
        sorted_subscriptions(&store, "e").await,
        vec![replaced_full.clone(), replaced_bare.clone()]
    );

    // Delete removes one; deleting it again or an unknown id is not an error.
    let e = env("e");
    store
        .delete_subscription(&e, &SubscriptionId::new("sub-1"))
        .await
        .expect("delete");
    store
        .delete_subscription(&e, &SubscriptionId::new("sub-1"))
        .await
        .expect("delete again");
    store
        .delete_subscription(&e, &SubscriptionId::new("sub-404"))
        .await
        .expect("delete unknown");
    assert_eq!(get_subscription(&store, "e", "sub-1").await, None);
    assert_eq!(sorted_subscriptions(&store, "e").await, vec![replaced_bare]);
}

pub async fn subscriptions_are_isolated_by_environment(store: Store) {
    // The same subscription id in two environments is two subscriptions.
    let in_e = subscription("e", "shared-id");
    let in_f = bare_subscription("f", "shared-id");
    let only_e = subscription("e", "only-e");
    for s in [&in_e, &in_f, &only_e] {
        store.put_subscription(s).await.expect("put");
    }
    assert_eq!(
        sorted_subscriptions(&store, "e").await,
        vec![only_e.clone(), in_e.clone()]
    );
    assert_eq!(sorted_subscriptions(&store, "f").await, vec![in_f.clone()]);
    assert_eq!(get_subscription(&store, "f", "only-e").await, None);
    assert!(sorted_subscriptions(&store, "g").await.is_empty());

    // Touching, or deleting, in one environment leaves the other's alone.
    assert!(
        store
            .touch_subscription(
                &env("f"),
                &SubscriptionId::new("shared-id"),
                at(60),
                Some("wm-f")
            )
            .await
            .expect("touch f")
    );
    store
        .delete_subscription(&env("f"), &SubscriptionId::new("only-e"))
        .await
        .expect("delete absent in f");
    assert_eq!(sorted_subscriptions(&store, "e").await, vec![only_e, in_e]);
    store
        .delete_subscription(&env("e"), &SubscriptionId::new("shared-id"))
        .await
        .expect("delete in e");
    assert_eq!(
        get_subscription(&store, "f", "shared-id").await,
        Some(PushSubscription {
            last_seen: at(60),
            watermark: Some("wm-f".to_owned()),
            ..in_f
        })
    );
}

pub async fn touch_subscription_only_moves_forward(store: Store) {
    let (e, id) = (env("e"), SubscriptionId::new("sub-1"));
    let sub = subscription("e", "sub-1");
    store.put_subscription(&sub).await.expect("put");

    // An event with a watermark moves both.
    assert!(
        store
            .touch_subscription(&e, &id, at(10), Some("wm-10"))
            .await
            .expect("touch")
    );
    let after_event = PushSubscription {
        last_seen: at(10),
        watermark: Some("wm-10".to_owned()),
        ..sub.clone()
    };
    assert_eq!(
        get_subscription(&store, "e", "sub-1").await,
        Some(after_event.clone())
    );

    // A status event (no watermark) moves last_seen and keeps the watermark.
    assert!(
        store
            .touch_subscription(&e, &id, at(20), None)
            .await
            .expect("status")
    );
    let after_status = PushSubscription {
        last_seen: at(20),
        ..after_event
    };
    assert_eq!(
        get_subscription(&store, "e", "sub-1").await,
        Some(after_status.clone())
    );

    // A late delivery from before is refused and changes nothing.
    assert!(
        !store
            .touch_subscription(&e, &id, at(15), Some("wm-15"))
            .await
            .expect("late")
    );
    assert!(
        !store
            .touch_subscription(&e, &id, at(20) - ChronoDuration::milliseconds(1), None)
            .await
            .expect("a millisecond late")
    );
    assert_eq!(
        get_subscription(&store, "e", "sub-1").await,
        Some(after_status.clone())
    );

    // The same instant is not older: it applies.
    assert!(
        store
            .touch_subscription(&e, &id, at(20), Some("wm-20"))
            .await
            .expect("same instant")
    );
    let same_instant = PushSubscription {
        watermark: Some("wm-20".to_owned()),
        ..after_status
    };
    assert_eq!(
        get_subscription(&store, "e", "sub-1").await,
        Some(same_instant.clone())
    );

    // An unknown subscription (here or in another environment) is not touched, not created.
    let unknown = SubscriptionId::new("sub-404");
    assert!(
        !store
            .touch_subscription(&e, &unknown, at(30), Some("wm"))
            .await
            .expect("unknown")
    );
    assert!(
        !store
            .touch_subscription(&env("f"), &id, at(30), Some("wm"))
            .await
            .expect("other env")
    );
    assert_eq!(get_subscription(&store, "e", "sub-404").await, None);
    assert_eq!(get_subscription(&store, "f", "sub-1").await, None);
    assert!(sorted_subscriptions(&store, "f").await.is_empty());
    assert_eq!(sorted_subscriptions(&store, "e").await, vec![same_instant]);

    // A subscription without a watermark keeps none on a status event.
    let bare = bare_subscription("e", "sub-2");
    store.put_subscription(&bare).await.expect("put bare");
    assert!(
        store
            .touch_subscription(&e, &bare.id, at(1), None)
            .await
            .expect("touch bare")
    );
    assert_eq!(
        get_subscription(&store, "e", "sub-2").await,
        Some(PushSubscription {
            last_seen: at(1),
            ..bare
        })
    );
}

pub async fn touch_subscription_race_keeps_the_latest(store: Store) {
    let id = SubscriptionId::new("sub-race");
    let sub = subscription("e", "sub-race");
    store.put_subscription(&sub).await.expect("put");
    // Deliveries 1..=8 arrive at once, in whatever order the runtime picks.
    let n: i64 = 8;
    let barrier = Arc::new(Barrier::new(n as usize));
    let tasks: Vec<_> = (1..=n)
        .map(|i| {
            let (store, barrier, id) = (Arc::clone(&store), Arc::clone(&barrier), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let applied = store
                    .touch_subscription(&env("e"), &id, at(i), Some(&format!("wm-{i}")))
                    .await;
                (i, applied)
            })
        })
        .collect();
    for t in tasks {
        let (i, applied) = t.await.expect("task");
        let applied = applied.expect("touch");
        // The newest is never older than anything stored, so it always applies.
        if i == n {
            assert!(applied, "the newest delivery was refused");
        }
    }
    assert_eq!(
        get_subscription(&store, "e", "sub-race").await,
        Some(PushSubscription {
            last_seen: at(n),
            watermark: Some(format!("wm-{n}")),
            ..sub
        })
    );
}
