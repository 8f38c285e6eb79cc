//! End-to-end harness: the LN simulator and the EWS simulator on local ports, a configuration
//! file and a SQLite store in a temporary directory, and lnsync's real runner in between.
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
//! that run's requests. Every EWS request body is validated against Microsoft's schemas after each
//! run; with `CI=true` a missing schema directory (or xmllint) fails the test, elsewhere the
//! validation is skipped with a printed note.

use chrono::{DateTime, Utc};
use ews_sim::{EwsSim, ExtendedPropertyKey, StoredItem};
use ln_sim::model::Contact as LnContact;
use ln_sim::{CompanySeed, IfMatch, LnSim, RequestKind, Seed, SimConfig};
use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{EnvironmentState, ItemProblem, Link, LinkKind, LnKey, UserState};
use lnsync_core::ports::{Clock, StateStore, SystemClock};
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

/// Describes the world before it starts.
pub struct WorldBuilder {
    envs: Vec<EnvSeed>,
    sync_lines: Vec<String>,
    started: bool,
    ews_config: ews_sim::SimConfig,
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

    /// The EWS simulator's configuration (e.g. `allowed_impersonation`).
    pub fn ews_config(mut self, config: ews_sim::SimConfig) -> Self {
        self.ews_config = config;
        self
    }

    pub async fn start(self) -> Result<World, BoxError> {
        let schemas = resolve_schema_dir()?;
        let mut ews_config = self.ews_config;
        ews_config.credentials = vec![ews_sim::Credential {
            user: EWS_USER.into(),
            password: EWS_PASSWORD.into(),
            mailbox: None,
        }];
        let ews = EwsSim::start_with(ews_config).await?;
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
            seed.companies.push(company);
            envs.push(EnvSpec {
                id: e.id.clone(),
                company: e.company.clone(),
                users,
                inactive,
                exchange_url: None,
            });
        }
        let ln = LnSim::start(SimConfig::default().with_seed(seed)).await?;
        let dir = tempfile::tempdir()?;
        for env in &envs {
            ln.write_ionapi(&dir.path().join(env.ionapi_file()))?;
        }
        std::fs::write(dir.path().join("ews.password"), format!("{EWS_PASSWORD}\n"))?;
        let config_path = dir.path().join("lnsync.toml");
        let text = config_text(&envs, &self.sync_lines, &ews.ews_url());
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
        })
    }
}

fn config_text(envs: &[EnvSpec], sync_lines: &[String], ews_url: &str) -> String {
    let mut t = String::from("[store]\npath = \"state/lnsync.sqlite\"\n\n[sync]\n");
    for line in sync_lines {
        t.push_str(line);
        t.push('\n');
    }
    for env in envs {
        let url = env.exchange_url.as_deref().unwrap_or(ews_url);
        t.push_str(&format!(
            "\n[[environment]]\nid = \"{}\"\ncompany = \"{}\"\n[environment.ln]\nionapi_file = \"{}\"\n\
             [environment.exchange]\nurl = \"{url}\"\nusername = \"{EWS_USER}\"\n\
             password_file = \"ews.password\"\nmax_backoff_seconds = 30\n",
            env.id,
            env.company,
            env.ionapi_file()
        ));
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
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            envs: Vec::new(),
            sync_lines: Vec::new(),
            started: true,
            ews_config: ews_sim::SimConfig::default(),
        }
    }

    /// One environment `prod` over company `100`.
    pub async fn single(users: usize, contacts: Vec<LnContact>) -> Result<World, BoxError> {
        Self::builder()
            .env("prod", "100", users, contacts)
            .start()
            .await
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
        self.validate_ews_requests()?;
        Ok(report)
    }

    pub fn clear_logs(&self) {
        self.ln.clear_requests();
        self.ews.clear_requests();
    }

    /// Validates every EWS request in the simulator's log (see the module docs).
    pub fn validate_ews_requests(&self) -> Result<(), BoxError> {
        let Some(dir) = &self.schemas else {
            return Ok(());
        };
        let bodies = self.ews.request_bodies();
        ews_sim::schema::validate_requests(&bodies, dir)
            .map_err(|e| format!("lnsync sent EWS requests that violate the schemas: {e}"))?;
        Ok(())
    }

    /// Rewrites the configuration file from the current specs and reloads it.
    pub fn rewrite_config(&mut self) -> Result<(), BoxError> {
        let text = config_text(&self.envs, &self.sync_lines, &self.ews.ews_url());
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
            .filter_map(|i| stamp_of(&i).map(|s| (s, i.id.0)))
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
            updates: &[ContactUpdate],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            self.inner.update_contacts(mailbox, updates).await
        }
        async fn delete_items(
            &self,
            mailbox: &MailboxAddress,
            ids: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
            self.inner.delete_items(mailbox, ids).await
        }
        async fn current_versions(
            &self,
            mailbox: &MailboxAddress,
            ids: &[ExchangeItemId],
        ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
            self.inner.current_versions(mailbox, ids).await
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
