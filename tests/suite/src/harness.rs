//! End-to-end harness: the LN simulator and the Exchange simulator on local ports, a
//! configuration file and a SQLite store in a temporary directory, and lnsync's real runner in
//! between.
//!
//! A world talks to Exchange through one [`Backend`]: EWS (the default) or Microsoft Graph,
//! both served by the same simulator over the same mailbox store, as Exchange Online serves
//! both from one store. The backend is what LN's `exchangeBackend` setting says, so switching
//! it ([`World::switch_backend`]) is what an administrator does. Tests assert costs in words
//! both protocols share ([`Op`], [`World::ops_for`], [`World::writes_for`]…), and
//! [`both_backends!`](crate::both_backends) runs one scenario body on each backend.
//!
//! ```no_run
//! # use lnsync_tests::harness::{BoxError, World, qualifying_contacts};
//! # async fn example() -> Result<(), BoxError> {
//! let world = World::builder().env("prod", "100", 2, qualifying_contacts(50)).start().await?;
//! let report = world.run().await?;          // every EWS request of the run is XSD-validated
//! assert_eq!(world.crm_items(world.mailbox(0, 0)).len(), 50);
//! # let _ = report;
//! # Ok(())
//! # }
//! ```
//!
//! [`World::run`] clears both simulators' request logs first, so after it the logs hold exactly
//! that run's requests, and checks them afterwards ([`World::check_exchange_requests`]): no
//! request went to the protocol the world does not use; every EWS request body is validated
//! against Microsoft's schemas (with `CI=true` a missing schema directory or xmllint fails the
//! test, elsewhere the validation is skipped with a printed note); every Graph request carried
//! `Prefer: outlook.timezone="UTC"` and `Prefer: IdType="ImmutableId"`.

use chrono::{DateTime, Utc};
use ews_sim::log::Protocol;
use ews_sim::{EwsSim, ExtendedPropertyKey, RequestRecord, StoredItem};
use ln_sim::model::Contact as LnContact;
use ln_sim::{CompanySeed, IfMatch, LnSim, RequestKind, Seed, SimConfig};
use lnsync_adapters::ews::{EwsAuth, EwsConfig, EwsMailbox, Secret};
use lnsync_adapters::graph::{GraphConfig, GraphMailbox};
use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{EnvironmentState, ItemProblem, Link, LinkKind, LnKey, UserState};
use lnsync_core::ports::{Clock, Mailbox, StateStore, SystemClock};
use lnsync_runtime::compose::LiveConnector;
use lnsync_runtime::config::Config;
use lnsync_runtime::runner::{Connector, EnvironmentReport, RunReport, UserReport, run_contacts};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), BoxError>;

/// Names of the active sync users of an environment, in order.
pub const USER_NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
/// The inactive sync user every environment has (R4); its mailbox exists in the EWS simulator.
pub const INACTIVE_USER: &str = "former";
/// The EWS service account the simulator accepts (set by the harness whatever `ews_config` says).
pub const EWS_USER: &str = "svc";
pub const EWS_PASSWORD: &str = "e2e-Ews-Pa55w0rd";
/// The Entra app registration the simulator's Graph token endpoint accepts; LN's `azureTenant`
/// and `clientId` settings name it in a Graph world, the secret is in a file next to the
/// configuration.
pub const GRAPH_TENANT: &str = "contoso";
pub const GRAPH_CLIENT_ID: &str = "lnsync";
pub const GRAPH_SECRET: &str = "e2e-Graph-S3cret";
/// The longest throttling hint a client waits out in-process (`max_backoff_seconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Backends and what their requests do
// ---------------------------------------------------------------------------------------------

/// The Exchange protocol a world's environments use (LN's `exchangeBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Exchange Web Services (on-premises Exchange).
    #[default]
    Ews,
    /// Microsoft Graph (Exchange Online).
    Graph,
}

impl Backend {
    /// Which front-end of the simulator this backend's requests go to.
    pub fn protocol(self) -> Protocol {
        match self {
            Backend::Ews => Protocol::Ews,
            Backend::Graph => Protocol::Graph,
        }
    }

    /// The other backend (for ids and cursors that must not cross over).
    pub fn other(self) -> Backend {
        match self {
            Backend::Ews => Backend::Graph,
            Backend::Graph => Backend::Ews,
        }
    }

    /// The most items one write request carries: an EWS CreateItem takes 100 items, a Graph
    /// `$batch` 20 requests. The Mailbox contract suite checks the adapters say the same.
    pub fn max_batch(self) -> usize {
        match self {
            Backend::Ews => 100,
            Backend::Graph => 20,
        }
    }

    /// How many write requests `items` items cost: ⌈items / max_batch⌉.
    pub fn batches(self, items: usize) -> usize {
        items.div_ceil(self.max_batch())
    }

    /// The answer that tells a mailbox outside the service identity's reach: EWS refuses the
    /// impersonation, Graph's application access policy refuses the app.
    pub fn access_denied_code(self) -> &'static str {
        match self {
            Backend::Ews => "ErrorImpersonateUserDenied",
            Backend::Graph => "ErrorAccessDenied",
        }
    }

    fn ln_setting(self) -> ln_sim::model::ExchangeBackend {
        match self {
            Backend::Ews => ln_sim::model::ExchangeBackend::Ews,
            Backend::Graph => ln_sim::model::ExchangeBackend::Graph,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Ews => "EWS",
            Backend::Graph => "Graph",
        })
    }
}

/// Runs one scenario body on both backends: `both_backends!(name)` next to
/// `async fn name(backend: Backend) -> TestResult` generates the tests `name::ews` and
/// `name::graph`; `both_backends!(name, multi_thread)` runs them on a two-worker runtime.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        $crate::both_backends!(@tests $name, #[tokio::test]);
    };
    ($name:ident, multi_thread) => {
        $crate::both_backends!(
            @tests $name, #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        );
    };
    (@tests $name:ident, #[$test:meta]) => {
        mod $name {
            #[$test]
            async fn ews() -> $crate::harness::TestResult {
                super::$name($crate::harness::Backend::Ews).await
            }
            #[$test]
            async fn graph() -> $crate::harness::TestResult {
                super::$name($crate::harness::Backend::Graph).await
            }
        }
    };
}

/// What an Exchange request does, in words both protocols share. A Graph `$batch` does what
/// its inner requests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Graph's token endpoint (EWS authenticates every request instead).
    Token,
    /// EWS FindFolder/GetFolder; Graph `contactFolders.list|get`.
    FolderLookup,
    /// EWS CreateFolder; Graph `contactFolders.create`.
    FolderCreate,
    /// EWS DeleteFolder; Graph `contactFolders.delete`.
    FolderDelete,
    /// EWS CreateItem; Graph `events.create`, `contacts.create`.
    Create,
    /// EWS UpdateItem; Graph `events.update`, `contacts.update`.
    Update,
    /// EWS DeleteItem; Graph `events.delete`, `contacts.delete`.
    Delete,
    /// Reading items by id: EWS GetItem; Graph `events.get`, `contacts.get`, `instances`.
    Read,
    /// Searching or listing a folder: EWS FindItem; Graph `events.list`, `contacts.list`.
    Find,
    /// The calendar window: EWS FindItem with a CalendarView; Graph `calendarView`.
    View,
    /// Incremental changes: EWS SyncFolderItems; Graph `calendarView.delta`, `contacts.delta`.
    Delta,
    /// Push subscriptions of either protocol.
    Subscription,
    /// Graph `mailboxSettings.get` (the mailbox time zone).
    Settings,
    Other,
}

impl Op {
    /// The operations a request performs, one per inner request of a Graph `$batch`.
    pub fn of(record: &RequestRecord) -> Vec<Op> {
        let op = record.operation.as_deref().unwrap_or_default();
        match record.protocol {
            Protocol::Ews => vec![match op {
                "FindFolder" | "GetFolder" => Op::FolderLookup,
                "CreateFolder" => Op::FolderCreate,
                "DeleteFolder" => Op::FolderDelete,
                "CreateItem" => Op::Create,
                "UpdateItem" => Op::Update,
                "DeleteItem" => Op::Delete,
                "GetItem" => Op::Read,
                "FindItem" if record.body.contains("CalendarView") => Op::View,
                "FindItem" => Op::Find,
                "SyncFolderItems" => Op::Delta,
                "Subscribe" | "Unsubscribe" | "GetStreamingEvents" => Op::Subscription,
                _ => Op::Other,
            }],
            Protocol::Graph if op == "$batch" => record
                .inner_operations
                .iter()
                .map(|o| Op::graph(o))
                .collect(),
            Protocol::Graph => vec![Op::graph(op)],
        }
    }

    fn graph(op: &str) -> Op {
        match op {
            "token" => Op::Token,
            "contactFolders.list" | "contactFolders.get" => Op::FolderLookup,
            "contactFolders.create" => Op::FolderCreate,
            "contactFolders.delete" => Op::FolderDelete,
            "events.create" | "contacts.create" => Op::Create,
            "events.update" | "contacts.update" => Op::Update,
            "events.delete" | "contacts.delete" => Op::Delete,
            "events.get" | "contacts.get" | "instances" => Op::Read,
            "events.list" | "contacts.list" => Op::Find,
            "calendarView" => Op::View,
            "calendarView.delta" | "contacts.delta" => Op::Delta,
            "mailboxSettings.get" => Op::Settings,
            s if s.starts_with("subscriptions") => Op::Subscription,
            _ => Op::Other,
        }
    }

    /// How many items a request's `op` touches: the items of an EWS request, the inner
    /// requests of a Graph `$batch` doing `op`, 1 for a plain Graph request doing it.
    pub fn items_in(self, record: &RequestRecord) -> usize {
        match record.protocol {
            Protocol::Ews if Op::of(record) == [self] => record.item_count,
            Protocol::Ews => 0,
            Protocol::Graph => Op::of(record).into_iter().filter(|o| *o == self).count(),
        }
    }
}

/// One line per request, for assertion messages: `GraphOp [inner ops] status`.
pub fn describe(requests: &[RequestRecord]) -> String {
    requests
        .iter()
        .map(|r| {
            let op = r.operation.as_deref().unwrap_or("?");
            let inner = if r.inner_operations.is_empty() {
                String::new()
            } else {
                format!(" {:?}", r.inner_operations)
            };
            let path = r
                .path
                .as_deref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            format!(
                "{:?} {op}{inner}{path} {} {}",
                r.protocol,
                r.http_status,
                r.mailbox.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// HTTP requests by what they do; a `$batch` counts once for each kind of operation it
/// carries.
pub fn ops_of(requests: &[RequestRecord]) -> BTreeMap<Op, usize> {
    let mut ops = BTreeMap::new();
    for r in requests {
        let mut kinds = Op::of(r);
        kinds.sort();
        kinds.dedup();
        for op in kinds {
            *ops.entry(op).or_insert(0) += 1;
        }
    }
    ops
}

/// An answer that asked the client to back off: EWS ErrorServerBusy (or a 503), Graph
/// 429/503/504.
pub fn is_throttled(r: &RequestRecord) -> bool {
    r.fault_code.as_deref() == Some("ErrorServerBusy") || matches!(r.http_status, 429 | 503 | 504)
}

/// Graph answers in the mailbox's own zone without an offset unless told UTC, and with ids
/// that change on a folder move unless told immutable (exchange.md §3.2): every Graph
/// request but the token request must carry both `Prefer` values.
pub fn assert_graph_prefer_headers(requests: &[RequestRecord]) {
    let squash = |v: &str| v.replace(' ', "").to_ascii_lowercase();
    let wanted = [r#"outlook.timezone="utc""#, r#"idtype="immutableid""#];
    let missing: Vec<RequestRecord> = requests
        .iter()
        .filter(|r| r.protocol == Protocol::Graph && r.operation.as_deref() != Some("token"))
        .filter(|r| {
            let sent: Vec<String> = r.prefer.iter().map(|v| squash(v)).collect();
            !wanted
                .iter()
                .all(|w| sent.iter().any(|v| v.split(',').any(|p| p == *w)))
        })
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "Graph requests without Prefer: outlook.timezone=\"UTC\" and IdType=\"ImmutableId\":\n{}\nsent: {:?}",
        describe(&missing),
        missing.iter().map(|r| &r.prefer).collect::<Vec<_>>()
    );
}

/// A client of `backend` for the simulator at `sim`, configured as the runtime configures one
/// (`max_backoff_seconds = 30`); `page_size` overrides the listing page size (EWS FindItem,
/// Graph `odata.maxpagesize`).
pub fn exchange_client(
    sim: &EwsSim,
    backend: Backend,
    page_size: Option<u32>,
    timeout: Duration,
) -> Result<Arc<dyn Mailbox>, BoxError> {
    Ok(match backend {
        Backend::Ews => {
            let mut config = EwsConfig::new(
                url::Url::parse(&sim.ews_url())?,
                EwsAuth::Basic {
                    user: EWS_USER.into(),
                    password: Secret::new(EWS_PASSWORD),
                },
            );
            config.max_back_off = MAX_BACKOFF;
            if let Some(n) = page_size {
                config.find_page_size = n;
            }
            Arc::new(EwsMailbox::with_reqwest(config, timeout)?)
        }
        Backend::Graph => {
            let mut config =
                GraphConfig::new(GRAPH_TENANT, GRAPH_CLIENT_ID, Secret::new(GRAPH_SECRET));
            config.base_url = url::Url::parse(&sim.graph_url())?;
            config.login_url = url::Url::parse(&sim.graph_login_url())?;
            config.max_back_off = MAX_BACKOFF;
            if let Some(n) = page_size {
                config.page_size = n;
            }
            Arc::new(GraphMailbox::new(config, timeout)?)
        }
    })
}

/// The simulator configured with the harness's EWS service account and Graph app
/// registration (whatever `config` says about either).
pub fn with_harness_credentials(mut config: ews_sim::SimConfig) -> ews_sim::SimConfig {
    config.credentials = vec![ews_sim::Credential {
        user: EWS_USER.into(),
        password: EWS_PASSWORD.into(),
        mailbox: None,
    }];
    config.graph.clients = vec![ews_sim::config::GraphClient {
        tenant: GRAPH_TENANT.into(),
        client_id: GRAPH_CLIENT_ID.into(),
        secret: GRAPH_SECRET.into(),
    }];
    config
}

/// The id a backend's client knows a stored item by: the EWS id, or its Graph id.
pub fn client_id_of(backend: Backend, id: &ews_sim::ItemId) -> String {
    match backend {
        Backend::Ews => id.0.clone(),
        Backend::Graph => ews_sim::graph::graph_item_id(id),
    }
}

/// A sync user of an environment and their mailbox.
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub user: String,
    pub email: String,
}

/// One environment: an LN company and its users.
#[derive(Debug, Clone)]
pub struct EnvSpec {
    pub id: String,
    pub company: String,
    pub users: Vec<UserSpec>,
    pub inactive: UserSpec,
    /// Overrides the EWS URL written to the configuration (default: the EWS simulator).
    pub exchange_url: Option<String>,
    /// Overrides the Graph service root written to the configuration (default: the
    /// simulator's `/v1.0`).
    pub graph_url: Option<String>,
}

impl EnvSpec {
    pub fn ionapi_file(&self) -> String {
        format!("{}.ionapi", self.id)
    }
}

/// The `i`-th demo contact of the LN simulator, forced to qualify (Synchronize set, active).
pub fn qualifying_contact(i: usize) -> LnContact {
    let mut c = ln_sim::demo_contact(i);
    c.synchronize = true;
    c.active = true;
    c.opted_out = false;
    c
}

/// `n` contacts `CON000001`… that all qualify for synchronization.
pub fn qualifying_contacts(n: usize) -> Vec<LnContact> {
    (0..n).map(qualifying_contact).collect()
}

/// The code of the `i`-th demo contact (`CON000001` for 0).
pub fn contact_code(i: usize) -> String {
    format!("CON{:06}", i + 1)
}

/// The stamp lnsync writes on a contact (R10).
pub fn stamp(env: &str, code: &str) -> String {
    format!("ln:{env}:contact:{code}")
}

/// The CrmId stamp an Exchange item carries, if any.
pub fn stamp_of(item: &StoredItem) -> Option<String> {
    item.item
        .extended(&ExtendedPropertyKey::crm_id())
        .and_then(|v| v.as_single())
        .map(str::to_owned)
}

/// A MAPI property by tag (title `0x3A45`, language `0x3A0C`), as a string.
pub fn tag_property(item: &StoredItem, tag: u16) -> Option<String> {
    let key = ExtendedPropertyKey {
        property_set: None,
        property: ews_sim::model::PropertyRef::Tag(tag),
        property_type: "String".into(),
    };
    item.item
        .extended(&key)
        .and_then(|v| v.as_single())
        .map(str::to_owned)
}

/// One user's line of a report, or a panic that shows the whole report.
pub fn user_report<'a>(report: &'a RunReport, env: &str, user: &str) -> &'a UserReport {
    report
        .environments
        .iter()
        .filter(|e| e.env.as_str() == env)
        .flat_map(|e| &e.users)
        .find(|u| u.user.as_str() == user)
        .unwrap_or_else(|| panic!("no report line for {env}/{user}:\n{}", report.render()))
}

pub fn env_report<'a>(report: &'a RunReport, env: &str) -> &'a EnvironmentReport {
    report
        .environments
        .iter()
        .find(|e| e.env.as_str() == env)
        .unwrap_or_else(|| panic!("no report for environment {env}:\n{}", report.render()))
}

/// A live connector as `lnsync` builds it (a new one is a new process: no cached clients).
pub fn live_connector() -> LiveConnector {
    let mut connector = LiveConnector::default();
    connector.http_timeout = Duration::from_secs(10);
    connector
}

/// A local TCP address nothing listens on (bound, then released).
pub fn dead_address() -> Result<String, BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("127.0.0.1:{}", addr.port()))
}

/// A clock running `offset` ahead of the system clock ("the process restarted later").
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub chrono::Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Building a world
// ---------------------------------------------------------------------------------------------

struct EnvSeed {
    id: String,
    company: String,
    users: usize,
    contacts: Vec<LnContact>,
}

/// Which sections the configuration file gives each environment: `[environment.exchange]`
/// (EWS) and `[environment.graph]`. LN's `exchangeBackend` picks the one that is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sections {
    ews: bool,
    graph: bool,
}

/// Describes the world before it starts.
pub struct WorldBuilder {
    envs: Vec<EnvSeed>,
    sync_lines: Vec<String>,
    started: bool,
    ews_config: ews_sim::SimConfig,
    backend: Backend,
    both_sections: bool,
}

impl WorldBuilder {
    /// An environment `id` over LN company `company` with `users` active sync users (plus the
    /// inactive one) and these LN contacts.
    pub fn env(mut self, id: &str, company: &str, users: usize, contacts: Vec<LnContact>) -> Self {
        assert!(
            users <= USER_NAMES.len(),
            "at most {} users",
            USER_NAMES.len()
        );
        self.envs.push(EnvSeed {
            id: id.to_owned(),
            company: company.to_owned(),
            users,
            contacts,
        });
        self
    }

    /// A line under `[sync]` of the configuration file, e.g. `max_deletions = 5`.
    pub fn sync_option(mut self, line: &str) -> Self {
        self.sync_lines.push(line.to_owned());
        self
    }

    /// Leave the environments stopped in the store (for `lnsync env start`).
    pub fn stopped(mut self) -> Self {
        self.started = false;
        self
    }

    /// The Exchange simulator's configuration (e.g. `allowed_impersonation`, which is also
    /// Graph's application access policy).
    pub fn ews_config(mut self, config: ews_sim::SimConfig) -> Self {
        self.ews_config = config;
        self
    }

    /// The backend every environment uses (LN's `exchangeBackend`); default EWS.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Configure both backends for every environment (`[environment.exchange]` and
    /// `[environment.graph]`), so that LN's setting alone can switch between them.
    pub fn both_backends_configured(mut self) -> Self {
        self.both_sections = true;
        self
    }

    pub async fn start(self) -> Result<World, BoxError> {
        let schemas = resolve_schema_dir()?;
        let ews = EwsSim::start_with(with_harness_credentials(self.ews_config)).await?;
        let mut seed = Seed::default();
        let mut envs = Vec::new();
        for (n, e) in self.envs.iter().enumerate() {
            let domain = if n == 0 {
                "corp.example".to_owned()
            } else {
                format!("{}.corp.example", e.id)
            };
            let spec = |name: &str| UserSpec {
                user: name.to_owned(),
                email: format!("{name}@{domain}"),
            };
            let users: Vec<UserSpec> = USER_NAMES[..e.users].iter().map(|n| spec(n)).collect();
            let inactive = spec(INACTIVE_USER);
            let mut company = CompanySeed::new(e.company.clone());
            for (u, active) in users.iter().map(|u| (u, true)).chain([(&inactive, false)]) {
                ews.add_mailbox(&u.email)?;
                company.sync_users.push(ln_sim::model::SyncUser {
                    user: u.user.clone(),
                    name: Some(format!("{} (sync user)", u.user)),
                    active,
                    email: Some(u.email.clone()),
                });
            }
            company.contacts = e.contacts.iter().cloned().map(Into::into).collect();
            set_backend_settings(&mut company.settings, self.backend);
            seed.companies.push(company);
            envs.push(EnvSpec {
                id: e.id.clone(),
                company: e.company.clone(),
                users,
                inactive,
                exchange_url: None,
                graph_url: None,
            });
        }
        let ln = LnSim::start(SimConfig::default().with_seed(seed)).await?;
        let dir = tempfile::tempdir()?;
        for env in &envs {
            ln.write_ionapi(&dir.path().join(env.ionapi_file()))?;
        }
        std::fs::write(dir.path().join("ews.password"), format!("{EWS_PASSWORD}\n"))?;
        std::fs::write(dir.path().join("graph.secret"), format!("{GRAPH_SECRET}\n"))?;
        let sections = Sections {
            ews: self.backend == Backend::Ews || self.both_sections,
            graph: self.backend == Backend::Graph || self.both_sections,
        };
        let config_path = dir.path().join("lnsync.toml");
        let text = config_text(&envs, &self.sync_lines, &ews, sections);
        std::fs::write(&config_path, text)?;
        let config = Config::load(&config_path)?;
        let store = Arc::new(lnsync_runtime::compose::open_store(&config)?);
        if self.started {
            for env in &envs {
                store
                    .put_environment(&EnvironmentState {
                        env: EnvironmentId::new(env.id.clone()),
                        started: true,
                        updated_at: Utc::now(),
                    })
                    .await?;
            }
        }
        Ok(World {
            ln,
            ews,
            dir,
            config_path,
            config,
            store,
            envs,
            sync_lines: self.sync_lines,
            connector: live_connector(),
            schemas,
            backend: self.backend,
            sections,
        })
    }
}

/// LN's settings for a backend: `exchangeBackend`, and for Graph the app registration
/// (`azureTenant`, `clientId`) the simulator accepts.
fn set_backend_settings(settings: &mut ln_sim::model::Settings, backend: Backend) {
    settings.exchange_backend = backend.ln_setting();
    if backend == Backend::Graph {
        settings.azure_tenant = Some(GRAPH_TENANT.into());
        settings.client_id = Some(GRAPH_CLIENT_ID.into());
    }
}

fn config_text(
    envs: &[EnvSpec],
    sync_lines: &[String],
    sim: &EwsSim,
    sections: Sections,
) -> String {
    let mut t = String::from("[store]\npath = \"state/lnsync.sqlite\"\n\n[sync]\n");
    for line in sync_lines {
        t.push_str(line);
        t.push('\n');
    }
    let backoff = MAX_BACKOFF.as_secs();
    for env in envs {
        t.push_str(&format!(
            "\n[[environment]]\nid = \"{}\"\ncompany = \"{}\"\n[environment.ln]\nionapi_file = \"{}\"\n",
            env.id,
            env.company,
            env.ionapi_file()
        ));
        if sections.ews {
            let url = env.exchange_url.clone().unwrap_or_else(|| sim.ews_url());
            t.push_str(&format!(
                "[environment.exchange]\nurl = \"{url}\"\nusername = \"{EWS_USER}\"\n\
                 password_file = \"ews.password\"\nmax_backoff_seconds = {backoff}\n"
            ));
        }
        if sections.graph {
            // Tenant and client id come from LN's settings; only the secret and the
            // endpoints (the simulator instead of Microsoft's) are local.
            let url = env.graph_url.clone().unwrap_or_else(|| sim.graph_url());
            t.push_str(&format!(
                "[environment.graph]\nclient_secret_file = \"graph.secret\"\nbase_url = \"{url}\"\n\
                 login_url = \"{}\"\nmax_backoff_seconds = {backoff}\n",
                sim.graph_login_url()
            ));
        }
    }
    t
}

/// The schema directory, `None` (with a note) outside CI when it or xmllint is missing.
fn resolve_schema_dir() -> Result<Option<PathBuf>, BoxError> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match ews_sim::schema::schema_dir() {
        Ok(dir) => {
            let xmllint = std::env::var_os("XMLLINT").unwrap_or_else(|| "xmllint".into());
            let found = std::process::Command::new(&xmllint)
                .arg("--version")
                .output()
                .is_ok();
            if found {
                Ok(Some(dir))
            } else if ci {
                Err(format!(
                    "xmllint ({}) is not installed; CI must validate EWS requests",
                    xmllint.to_string_lossy()
                )
                .into())
            } else {
                eprintln!(
                    "note: xmllint not found; EWS requests are NOT schema-validated in this run"
                );
                Ok(None)
            }
        }
        Err(e) if ci => Err(e.into()),
        Err(e) => {
            eprintln!("note: {e}; EWS requests are NOT schema-validated in this run");
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------

pub struct World {
    pub ln: LnSim,
    pub ews: EwsSim,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Config,
    pub store: Arc<SqliteStateStore>,
    pub envs: Vec<EnvSpec>,
    sync_lines: Vec<String>,
    /// Kept across runs, as a long-running process would.
    pub connector: LiveConnector,
    schemas: Option<PathBuf>,
    backend: Backend,
    sections: Sections,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            envs: Vec::new(),
            sync_lines: Vec::new(),
            started: true,
            ews_config: ews_sim::SimConfig::default(),
            backend: Backend::Ews,
            both_sections: false,
        }
    }

    /// One environment `prod` over company `100`.
    pub async fn single(users: usize, contacts: Vec<LnContact>) -> Result<World, BoxError> {
        Self::single_on(Backend::Ews, users, contacts).await
    }

    /// One environment `prod` over company `100`, on `backend`.
    pub async fn single_on(
        backend: Backend,
        users: usize,
        contacts: Vec<LnContact>,
    ) -> Result<World, BoxError> {
        Self::builder()
            .backend(backend)
            .env("prod", "100", users, contacts)
            .start()
            .await
    }

    /// The backend the environments use now.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A client of `backend` for this world's Exchange simulator (not the runner's: tests use
    /// it to drive a mailbox directly).
    pub fn exchange_client(
        &self,
        backend: Backend,
        page_size: Option<u32>,
    ) -> Result<Arc<dyn Mailbox>, BoxError> {
        exchange_client(&self.ews, backend, page_size, self.connector.http_timeout)
    }

    /// The administrator switches every environment to `backend`: LN's `exchangeBackend`
    /// (and, for Graph, the app registration) changes, and the configuration file gains the
    /// backend's section if it lacked one. The connector is kept, as a running process keeps
    /// its clients.
    pub fn switch_backend(&mut self, backend: Backend) -> TestResult {
        for env in &self.envs {
            let mut settings = self
                .ln
                .store()
                .read(&env.company, |d| d.settings.data.clone())?;
            set_backend_settings(&mut settings, backend);
            self.ln.store().set_settings(&env.company, settings)?;
        }
        self.backend = backend;
        match backend {
            Backend::Ews => self.sections.ews = true,
            Backend::Graph => self.sections.graph = true,
        }
        self.rewrite_config()
    }

    pub fn env(&self, id: &str) -> &EnvSpec {
        self.envs
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("no environment {id}"))
    }

    /// The mailbox of active user `user` of the `env`-th environment.
    pub fn mailbox(&self, env: usize, user: usize) -> &str {
        &self.envs[env].users[user].email
    }

    pub fn user(&self, env: usize, user: usize) -> &str {
        &self.envs[env].users[user].user
    }

    /// One run with the live connector and the system clock.
    pub async fn run(&self) -> Result<RunReport, BoxError> {
        self.run_with(self.store.as_ref(), &SystemClock, &self.connector)
            .await
    }

    /// One run over any store, clock and connector. Clears both request logs first, and
    /// validates every EWS request of the run against the schemas afterwards.
    pub async fn run_with(
        &self,
        store: &dyn StateStore,
        clock: &dyn Clock,
        connector: &dyn Connector,
    ) -> Result<RunReport, BoxError> {
        self.clear_logs();
        let report = run_contacts(&self.config, store, clock, connector).await;
        self.check_exchange_requests()?;
        Ok(report)
    }

    pub fn clear_logs(&self) {
        self.ln.clear_requests();
        self.ews.clear_requests();
    }

    /// Checks the requests in the simulator's log (see the module docs): none went to the
    /// protocol the world does not use, EWS bodies are schema-valid, Graph requests carried
    /// the two `Prefer` headers.
    pub fn check_exchange_requests(&self) -> TestResult {
        let foreign: Vec<RequestRecord> = self
            .ews
            .requests()
            .into_iter()
            .filter(|r| r.protocol != self.backend.protocol())
            .collect();
        assert!(
            foreign.is_empty(),
            "a {} world made {} requests through the other protocol:\n{}",
            self.backend,
            foreign.len(),
            describe(&foreign)
        );
        self.validate_ews_requests()?;
        assert_graph_prefer_headers(&self.ews.requests());
        Ok(())
    }

    /// Validates every EWS request in the simulator's log (see the module docs); Graph
    /// requests are JSON and are not this check's business.
    pub fn validate_ews_requests(&self) -> Result<(), BoxError> {
        let Some(dir) = &self.schemas else {
            return Ok(());
        };
        let bodies: Vec<String> = self
            .ews
            .requests()
            .into_iter()
            .filter(|r| r.protocol == Protocol::Ews)
            .map(|r| r.body)
            .collect();
        ews_sim::schema::validate_requests(&bodies, dir)
            .map_err(|e| format!("lnsync sent EWS requests that violate the schemas: {e}"))?;
        Ok(())
    }

    /// Rewrites the configuration file from the current specs and reloads it.
    pub fn rewrite_config(&mut self) -> Result<(), BoxError> {
        let text = config_text(&self.envs, &self.sync_lines, &self.ews, self.sections);
        std::fs::write(&self.config_path, text)?;
        self.config = Config::load(&self.config_path)?;
        Ok(())
    }

    /// Points an environment at another EWS URL.
    pub fn set_exchange_url(&mut self, env: &str, url: &str) -> Result<(), BoxError> {
        for e in &mut self.envs {
            if e.id == env {
                e.exchange_url = Some(url.to_owned());
            }
        }
        self.rewrite_config()
    }

    /// Points an environment's active backend at a local address nothing listens on (the
    /// Graph token endpoint stays reachable: the service is down, not the sign-in) and
    /// returns the dead URL.
    pub fn break_exchange(&mut self, env: &str) -> Result<String, BoxError> {
        let dead = format!("http://{}", dead_address()?);
        let url = match self.backend {
            Backend::Ews => format!("{dead}{}", ews_sim::EWS_PATH),
            Backend::Graph => format!("{dead}/v1.0"),
        };
        for e in &mut self.envs {
            if e.id == env {
                match self.backend {
                    Backend::Ews => e.exchange_url = Some(url.clone()),
                    Backend::Graph => e.graph_url = Some(url.clone()),
                }
            }
        }
        self.rewrite_config()?;
        Ok(url)
    }

    /// Rewrites an environment's `.ionapi` so the gateway and token URLs point at `base`.
    pub fn point_ln_at(&self, env: &str, base: &str) -> Result<(), BoxError> {
        let mut file = self.ln.ionapi();
        file.iu = base.to_owned();
        file.pu = format!("{base}/as/");
        let path = self.dir.path().join(self.env(env).ionapi_file());
        std::fs::write(path, file.to_json())?;
        Ok(())
    }

    // ---- LN, as an LN user edits it

    pub fn ln_patch(&self, company: &str, code: &str, patch: serde_json::Value) -> TestResult {
        self.ln
            .store()
            .patch_contact(company, code, &patch, &IfMatch::Any)?;
        Ok(())
    }

    pub fn ln_delete(&self, company: &str, code: &str) -> TestResult {
        self.ln
            .store()
            .delete_contact(company, code, &IfMatch::Any)?;
        Ok(())
    }

    pub fn ln_contact(&self, company: &str, code: &str) -> Result<LnContact, BoxError> {
        Ok(self
            .ln
            .store()
            .contact(company, code)?
            .ok_or_else(|| format!("no LN contact {code}"))?
            .data)
    }

    /// LN data requests (GET) to an entity set of one company in the current log.
    pub fn ln_gets(&self, company: &str, set: &str) -> Vec<ln_sim::RequestRecord> {
        self.ln
            .requests()
            .into_iter()
            .filter(|r| {
                r.kind == RequestKind::Data
                    && r.method == "GET"
                    && r.is_set(set)
                    && r.company.as_deref() == Some(company)
            })
            .collect()
    }

    /// LN requests that would change LN data (anything but GET on the data service).
    pub fn ln_writes(&self) -> usize {
        self.ln
            .count(|r| r.kind == RequestKind::Data && r.method != "GET")
    }

    // ---- Exchange, as the user sees it

    pub fn crm_folder(&self, mailbox: &str) -> Option<ews_sim::FolderId> {
        self.ews
            .find_folder_by_name(mailbox, "CRM Contacts")
            .map(|f| f.id)
    }

    /// Items in the mailbox's "CRM Contacts" folder (none when it doesn't exist).
    pub fn crm_items(&self, mailbox: &str) -> Vec<StoredItem> {
        self.crm_folder(mailbox)
            .and_then(|f| self.ews.items_in_folder(mailbox, &f).ok())
            .unwrap_or_default()
    }

    /// How many items of the CRM folder carry each stamp.
    pub fn stamp_counts(&self, mailbox: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for item in self.crm_items(mailbox) {
            if let Some(s) = stamp_of(&item) {
                *counts.entry(s).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The one CRM item stamped with `code` of `env`; panics on duplicates.
    pub fn crm_item(&self, mailbox: &str, env: &str, code: &str) -> Option<StoredItem> {
        let want = stamp(env, code);
        let mut found: Vec<StoredItem> = self
            .crm_items(mailbox)
            .into_iter()
            .filter(|i| stamp_of(i).as_deref() == Some(want.as_str()))
            .collect();
        assert!(
            found.len() <= 1,
            "{} items stamped {want} in {mailbox}",
            found.len()
        );
        found.pop()
    }

    /// Requests of the current EWS log for a mailbox.
    pub fn ews_requests_for(&self, mailbox: &str) -> Vec<ews_sim::RequestRecord> {
        self.ews
            .requests()
            .into_iter()
            .filter(|r| {
                r.mailbox
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
            })
            .collect()
    }

    // ---- Exchange, as the request log measures it (backend-neutral)

    /// Every request lnsync made to Exchange in the current log, either protocol, token
    /// requests included.
    pub fn exchange_requests(&self) -> Vec<RequestRecord> {
        self.ews.requests()
    }

    /// The requests for one mailbox (Graph token requests name no mailbox).
    pub fn exchange_requests_for(&self, mailbox: &str) -> Vec<RequestRecord> {
        self.ews_requests_for(mailbox)
    }

    /// How many HTTP requests went to Exchange for a mailbox.
    pub fn exchange_calls(&self, mailbox: &str) -> usize {
        self.exchange_requests_for(mailbox).len()
    }

    /// HTTP requests for a mailbox by what they do; a `$batch` counts once for each kind of
    /// operation it carries.
    pub fn ops_for(&self, mailbox: &str) -> BTreeMap<Op, usize> {
        ops_of(&self.exchange_requests_for(mailbox))
    }

    /// HTTP requests for a mailbox that do `op` (a `$batch` counts once).
    pub fn requests_doing(&self, mailbox: &str, op: Op) -> usize {
        self.ops_for(mailbox).get(&op).copied().unwrap_or(0)
    }

    /// HTTP requests over every mailbox that do `op`.
    pub fn all_requests_doing(&self, op: Op) -> usize {
        self.exchange_requests()
            .iter()
            .filter(|r| Op::of(r).contains(&op))
            .count()
    }

    /// Items `op` touched in a mailbox (see [`Op::items_in`]).
    pub fn items_doing(&self, mailbox: &str, op: Op) -> usize {
        self.exchange_requests_for(mailbox)
            .iter()
            .map(|r| op.items_in(r))
            .sum()
    }

    /// Items per request doing `op` in a mailbox, in order (the batching of a bulk write).
    pub fn batch_sizes(&self, mailbox: &str, op: Op) -> Vec<usize> {
        self.exchange_requests_for(mailbox)
            .iter()
            .filter(|r| Op::of(r).contains(&op))
            .map(|r| op.items_in(r))
            .collect()
    }

    /// HTTP requests that changed a mailbox (a `$batch` with a write counts once).
    pub fn writes_for(&self, mailbox: &str) -> usize {
        self.ews.write_calls_for_mailbox(mailbox)
    }

    /// Incremental-change reads of a mailbox: EWS SyncFolderItems, Graph delta rounds.
    pub fn delta_calls_for(&self, mailbox: &str) -> usize {
        self.requests_doing(mailbox, Op::Delta)
    }

    /// Graph token requests in the current log.
    pub fn token_calls(&self) -> usize {
        self.all_requests_doing(Op::Token)
    }

    /// Makes Exchange throttle the next request for `mailbox` with a back-off hint of `hint`
    /// (EWS ErrorServerBusy with BackOffMilliseconds; Graph 429 with `Retry-After`, whole
    /// seconds rounded up).
    pub fn throttle_once(&self, mailbox: &str, hint: Duration) {
        let rule = match self.backend {
            Backend::Ews => {
                ews_sim::FaultRule::server_busy(u64::try_from(hint.as_millis()).unwrap_or(u64::MAX))
            }
            Backend::Graph => ews_sim::FaultRule::graph_throttle(hint.as_secs_f64().ceil() as u64),
        };
        self.ews.add_fault(rule.for_mailbox(mailbox));
    }

    /// Scenario 30 as the request log shows it: `mailbox` got exactly one throttling answer
    /// and called again no sooner than `hint` after it, nobody called inside an announced
    /// back-off window, and every mailbox of `others` was served, unthrottled, before that
    /// retry: the wait held up nobody else.
    pub fn assert_waited_out_throttling(
        &self,
        mailbox: &str,
        others: &[&str],
        hint: Duration,
    ) -> TestResult {
        assert_eq!(
            self.backoff_violations(),
            0,
            "nobody called inside the back-off window"
        );
        let log = self.exchange_requests_for(mailbox);
        let throttled: Vec<usize> = (0..log.len()).filter(|i| is_throttled(&log[*i])).collect();
        let [busy] = throttled[..] else {
            panic!("{mailbox} was to be throttled once:\n{}", describe(&log));
        };
        let retry = log
            .get(busy + 1)
            .ok_or_else(|| format!("{mailbox}'s throttled call was not retried"))?;
        let waited = (retry.time - log[busy].time).to_std()?;
        assert!(
            waited >= hint,
            "{mailbox} called again {waited:?} after a hint of {hint:?}"
        );
        for other in others {
            let theirs = self.exchange_requests_for(other);
            assert!(!theirs.is_empty(), "{other} was not served");
            assert!(
                !theirs.iter().any(is_throttled),
                "{other} was throttled too:\n{}",
                describe(&theirs)
            );
            let last = theirs.iter().map(|r| r.time).max().unwrap_or(retry.time);
            assert!(
                last < retry.time,
                "{other} was still being served when {mailbox} retried: it was held up"
            );
        }
        Ok(())
    }

    /// Requests that arrived inside an announced back-off window (0 for a good client).
    pub fn backoff_violations(&self) -> usize {
        self.ews.backoff_violations()
    }

    /// Exchange forgets the incremental cursors it issued to a mailbox (EWS SyncStates, Graph
    /// delta tokens): the next incremental read with an old one is refused. Returns how many
    /// were dropped.
    pub fn invalidate_cursors(&self, mailbox: &str) -> usize {
        match self.backend {
            Backend::Ews => self.ews.invalidate_sync_states(Some(mailbox)),
            Backend::Graph => self.ews.invalidate_delta_tokens(Some(mailbox)),
        }
    }

    /// The id the active backend's client knows a stored item by.
    pub fn client_id(&self, id: &ews_sim::ItemId) -> String {
        client_id_of(self.backend, id)
    }

    // ---- the store

    pub async fn link_count(&self, env: &str, user: &str) -> Result<u64, BoxError> {
        Ok(self
            .store
            .link_count(
                &EnvironmentId::new(env),
                &UserId::new(user),
                LinkKind::Contact,
            )
            .await?)
    }

    pub async fn links(
        &self,
        env: &str,
        user: &str,
        codes: &[String],
    ) -> Result<Vec<Link>, BoxError> {
        let keys: Vec<LnKey> = codes.iter().map(|c| LnKey::new(c.clone())).collect();
        Ok(self
            .store
            .links(
                &EnvironmentId::new(env),
                &UserId::new(user),
                LinkKind::Contact,
                &keys,
            )
            .await?)
    }

    pub async fn problems(&self, env: &str, user: &str) -> Result<Vec<ItemProblem>, BoxError> {
        Ok(self
            .store
            .problems(&EnvironmentId::new(env), &UserId::new(user))
            .await?)
    }

    pub async fn user_state(&self, env: &str, user: &str) -> Result<UserState, BoxError> {
        Ok(self
            .store
            .user_state(&EnvironmentId::new(env), &UserId::new(user))
            .await?
            .ok_or_else(|| format!("no user state for {env}/{user}"))?)
    }

    /// Checks that the user's links and the CRM folder agree one to one: every code in `codes`
    /// has exactly one stamped item, a real link (not a create intent) to that very item, and no
    /// other stamped item exists.
    pub async fn assert_in_sync(&self, env: &str, user: usize, codes: &[String]) -> TestResult {
        let e = self.env(env);
        let (login, mailbox) = (&e.users[user].user, &e.users[user].email);
        let counts = self.stamp_counts(mailbox);
        let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dupes.is_empty(), "duplicates in {mailbox}: {dupes:?}");
        let expected: BTreeMap<String, usize> = codes.iter().map(|c| (stamp(env, c), 1)).collect();
        assert_eq!(
            counts.len(),
            expected.len(),
            "stamped items in {mailbox} vs expected contacts"
        );
        assert!(
            counts == expected,
            "the stamped items of {mailbox} are not the expected contacts"
        );
        assert_eq!(
            self.link_count(env, login).await?,
            codes.len() as u64,
            "links of {login}"
        );
        let ids: BTreeMap<String, String> = self
            .crm_items(mailbox)
            .into_iter()
            .filter_map(|i| stamp_of(&i).map(|s| (s, self.client_id(&i.id))))
            .collect();
        for link in self.links(env, login, codes).await? {
            assert!(
                !link.is_intent(),
                "{} is still a create intent",
                link.ln_key
            );
            let item = ids.get(&stamp(env, link.ln_key.as_str()));
            assert_eq!(
                item.map(String::as_str),
                Some(link.exchange_id.as_str()),
                "link of {} points at its item",
                link.ln_key
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// A connector whose process "dies" mid-run
// ---------------------------------------------------------------------------------------------

/// Wraps the live connector; the mailbox's `kill_at`-th `create_contacts` call completes in
/// Exchange and then never returns, and `reached` is notified, so a test can drop the run's
/// future there: the process was killed after Exchange wrote and before lnsync saw the answer.
pub struct KillingConnector {
    pub live: LiveConnector,
    pub kill_at: usize,
    pub reached: Arc<tokio::sync::Notify>,
}

impl Connector for KillingConnector {
    fn ln(
        &self,
        env: &lnsync_runtime::config::EnvironmentConfig,
    ) -> Result<Arc<dyn lnsync_core::ports::LnGateway>, String> {
        self.live.ln(env)
    }

    fn mailbox(
        &self,
        env: &lnsync_runtime::config::EnvironmentConfig,
        settings: &lnsync_core::model::Settings,
    ) -> Result<Arc<dyn lnsync_core::ports::Mailbox>, String> {
        Ok(Arc::new(KillingMailbox {
            inner: self.live.mailbox(env, settings)?,
            kill_at: self.kill_at,
            creates: AtomicUsize::new(0),
            reached: self.reached.clone(),
        }))
    }
}

struct KillingMailbox {
    inner: Arc<dyn lnsync_core::ports::Mailbox>,
    kill_at: usize,
    creates: AtomicUsize,
    reached: Arc<tokio::sync::Notify>,
}

mod killing {
    use super::KillingMailbox;
    use async_trait::async_trait;
    use lnsync_core::error::MailboxError;
    use lnsync_core::ids::{CrmStamp, ExchangeItemId, FolderId, MailboxAddress};
    use lnsync_core::ports::{
        ContactUpdate, FolderChanges, FolderCursor, ItemOutcome, ItemRef, Mailbox, NewContact,
        StampedItem,
    };
    use std::sync::atomic::Ordering;

    #[async_trait]
    impl Mailbox for KillingMailbox {
        async fn ensure_contact_folder(
            &self,
            mailbox: &MailboxAddress,
        ) -> Result<lnsync_core::ports::ContactFolder, MailboxError> {
            self.inner.ensure_contact_folder(mailbox).await
        }
        async fn find_stamped_contacts(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            stamps: &[CrmStamp],
        ) -> Result<Vec<StampedItem>, MailboxError> {
            self.inner
                .find_stamped_contacts(mailbox, folder, stamps)
                .await
        }
        async fn create_contacts(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            contacts: &[NewContact],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            let outcome = self.inner.create_contacts(mailbox, folder, contacts).await;
            if self.creates.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_at {
                self.reached.notify_one();
                std::future::pending::<()>().await;
            }
            outcome
        }
        async fn update_contacts(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            updates: &[ContactUpdate],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            self.inner.update_contacts(mailbox, folder, updates).await
        }
        async fn delete_items(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            ids: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
            self.inner.delete_items(mailbox, folder, ids).await
        }
        async fn current_versions(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            ids: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            self.inner.current_versions(mailbox, folder, ids).await
        }
        async fn sync_contact_folder(
            &self,
            mailbox: &MailboxAddress,
            folder: &FolderId,
            cursor: Option<&FolderCursor>,
        ) -> Result<FolderChanges, MailboxError> {
            self.inner
                .sync_contact_folder(mailbox, folder, cursor)
                .await
        }
        fn max_batch(&self) -> usize {
            self.inner.max_batch()
        }
    }
}
