//! `lnsync demo`: everything a newcomer needs to see lnsync work, on one machine, offline.
//!
//! Starts the bundled LN and Exchange simulators in this process with demo data, writes a real
//! configuration (with secrets in files beside it) and an embedded store, starts the
//! environment, and runs contacts and calendars (what `lnsync run` does) three times:
//!
//! 1. the initial load: every user's "CRM Contacts" folder fills, LN meetings and a call go to
//!    their organizers' mailboxes (Exchange invites the attendees), an Outlook appointment and
//!    a weekly Outlook series (one LN appointment per occurrence) go to LN;
//! 2. after an attendee accepted a meeting in Outlook: the answer becomes LN's attendance
//!    status, and the attendee flags settle;
//! 3. nothing changed: nothing is written anywhere.
//!
//! `--exchange ews|graph` picks how lnsync reaches Exchange, as LN's `exchangeBackend` setting
//! does at a real site: EWS (on premises, the default) or Microsoft Graph (Exchange Online).
//! One simulator serves both protocols over one mailbox store, so the demo's data, runs and
//! output are the same either way; the cost lines count requests per protocol.
//!
//! The calendar part is in [`calendar`]: what it seeds, and the lines that show where it went.

mod calendar;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ews_sim::EwsSim;
use ews_sim::log::Protocol;
use ln_sim::{LnSim, SimConfig as LnSimConfig, demo_seed};
use lnsync_core::ids::EnvironmentId;
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::{Clock, StateStore, SystemClock};
use lnsync_runtime::compose::{LiveConnector, open_store};
use lnsync_runtime::config::Config;
use lnsync_runtime::runner::{self, RunReport, SyncKind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// Active sync users (one inactive user is added as well).
    #[arg(long, default_value_t = 5)]
    users: usize,
    /// LN contacts (a few have Synchronize off).
    #[arg(long, default_value_t = 300)]
    contacts: usize,
    /// Where the demo writes its configuration, secrets and state.
    #[arg(long, default_value = ".state/demo")]
    dir: PathBuf,
    /// Keep the simulators running after the runs, for a look around (Ctrl-C ends).
    #[arg(long)]
    keep_running: bool,
    /// How lnsync reaches Exchange: EWS (on premises) or Microsoft Graph (Exchange Online).
    #[arg(long, value_enum, default_value_t = Exchange::Ews)]
    exchange: Exchange,
}

/// The Exchange backend the demo runs (LN's `exchangeBackend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Exchange {
    Ews,
    Graph,
}

impl Exchange {
    fn protocol(self) -> Protocol {
        match self {
            Exchange::Ews => Protocol::Ews,
            Exchange::Graph => Protocol::Graph,
        }
    }

    fn ln_setting(self) -> ln_sim::model::ExchangeBackend {
        match self {
            Exchange::Ews => ln_sim::model::ExchangeBackend::Ews,
            Exchange::Graph => ln_sim::model::ExchangeBackend::Graph,
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Ews => "EWS",
        Protocol::Graph => "Graph",
    }
}

const COMPANY: &str = "100";
const ENVIRONMENT: &str = "demo";
const EWS_USER: &str = "svc-lnsync";
const EWS_PASSWORD: &str = "demo-password";
/// The Entra app registration the simulator's Graph token endpoint accepts.
const GRAPH_TENANT: &str = "contoso";
const GRAPH_CLIENT_ID: &str = "lnsync";
const GRAPH_SECRET: &str = "graph-secret";

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    // A fresh demo every time: the first run should show the initial load.
    for stale in ["lnsync.sqlite", "lnsync.sqlite-wal", "lnsync.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }

    let mut sim_config = ews_sim::SimConfig {
        credentials: vec![ews_sim::Credential {
            user: EWS_USER.into(),
            password: EWS_PASSWORD.into(),
            mailbox: None,
        }],
        ..ews_sim::SimConfig::default()
    };
    sim_config.graph.clients = vec![ews_sim::config::GraphClient {
        tenant: GRAPH_TENANT.into(),
        client_id: GRAPH_CLIENT_ID.into(),
        secret: GRAPH_SECRET.into(),
    }];
    let ews = EwsSim::start_with(sim_config)
        .await
        .context("starting the Exchange simulator")?;

    let mut seed = demo_seed(COMPANY, args.users, args.contacts);
    let people = calendar::people(&seed);
    for company in &mut seed.companies {
        // LN tells lnsync where Exchange is and how to reach it (ttaad2140m000): the EWS URL
        // (here the simulator's), and for Graph the backend and the app registration.
        company.settings.exchange_url = Some(ews.ews_url());
        company.settings.exchange_backend = args.exchange.ln_setting();
        if args.exchange == Exchange::Graph {
            company.settings.azure_tenant = Some(GRAPH_TENANT.into());
            company.settings.client_id = Some(GRAPH_CLIENT_ID.into());
        }
        for user in &company.sync_users {
            if let Some(email) = &user.email {
                ews.add_mailbox(email).context("adding a demo mailbox")?;
            }
        }
    }
    let ln = LnSim::start(LnSimConfig::default().with_seed(seed))
        .await
        .context("starting the LN simulator")?;
    let meetings = calendar::seed(&ln, &ews, &people, args.contacts, SystemClock.now())
        .context("seeding the demo calendars")?;

    let ionapi = dir.join("demo.ionapi");
    ln.write_ionapi(&ionapi)
        .context("writing the .ionapi file")?;
    std::fs::write(dir.join("ews-password"), EWS_PASSWORD)?;
    let mut text = format!(
        r#"# Written by `lnsync demo`. A real configuration looks the same: see README.md.
[store]
path = "lnsync.sqlite"

[[environment]]
id = "{ENVIRONMENT}"
company = "{COMPANY}"

[environment.ln]
ionapi_file = "demo.ionapi"

[environment.exchange]
# No url: LN's exchangeUrl setting points at the EWS simulator.
username = "{EWS_USER}"
password_file = "ews-password"
"#
    );
    if args.exchange == Exchange::Graph {
        std::fs::write(dir.join("graph-secret"), GRAPH_SECRET)?;
        text.push_str(&format!(
            r#"
[environment.graph]
# LN's exchangeBackend setting is Graph, so this section is the one used; its azureTenant and
# clientId settings name the app registration. The URLs point at the simulator instead of
# graph.microsoft.com and login.microsoftonline.com.
client_secret_file = "graph-secret"
base_url = "{}"
login_url = "{}"
"#,
            ews.graph_url(),
            ews.graph_login_url()
        ));
    }
    let config_path = dir.join("lnsync.toml");
    std::fs::write(&config_path, text)?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(&config)?;
    store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new(ENVIRONMENT),
            started: true,
            updated_at: SystemClock.now(),
        })
        .await?;

    let backend = args.exchange.protocol();
    println!(
        "lnsync demo: {} users, {} LN contacts, {}",
        args.users,
        args.contacts,
        meetings.describe()
    );
    println!("  Exchange backend  {}", protocol_name(backend));
    println!("  LN simulator      {}", ln.service_root());
    match args.exchange {
        Exchange::Ews => println!("  EWS simulator     {}", ews.ews_url()),
        Exchange::Graph => println!(
            "  Graph simulator   {} (tokens at {}/{GRAPH_TENANT}/oauth2/v2.0/token)",
            ews.graph_url(),
            ews.graph_login_url()
        ),
    }
    println!();

    let connector = LiveConnector::default();
    let mut failed = false;
    for (n, title) in [
        (1, "first run: initial load"),
        (2, "second run: an invitation was accepted in Outlook"),
        (3, "third run: nothing changed"),
    ] {
        if n == 2 {
            meetings.accept(&ews)?;
        }
        ln.clear_requests();
        ews.clear_requests();
        let started = Instant::now();
        let report = runner::run(&config, &SyncKind::ALL, &store, &SystemClock, &connector).await;
        let elapsed = started.elapsed();
        println!("== run {n} ({title}), {:.2} s", elapsed.as_secs_f64());
        print!("{}", report.render());
        print_costs(&report, &ln, &ews, backend);
        match n {
            1 => meetings.print_created(&ln, &ews),
            2 => meetings.print_accepted(&ln),
            _ => {}
        }
        println!();
        failed |= report.has_failures();
    }

    println!("state:  {}", config.store_path.display());
    println!("config: {}", config_path.display());
    println!(
        "try:    cargo run -p lnsync -- status --config {}",
        config_path.display()
    );

    if args.keep_running {
        println!("\nsimulators keep running; Ctrl-C ends (admin APIs under /_sim/, see docs/)");
        tokio::signal::ctrl_c().await?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_costs(report: &RunReport, ln: &LnSim, ews: &EwsSim, backend: Protocol) {
    let contacts = report.totals_of(SyncKind::Contacts);
    let calendar = report.totals_of(SyncKind::Calendar);
    // LN reads by what they serve: DeletedObjects serves both feeds, Settings and SyncUsers
    // are read once per environment for both kinds (R14).
    let gets = |sets: &[&str]| -> usize { sets.iter().map(|s| ln.count_calls("GET", s)).sum() };
    let ln_writes = ["POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| ln.count(|r| r.method == *m && r.kind == ln_sim::RequestKind::Data))
        .sum::<usize>();
    // Exchange requests per protocol, the backend's first: the other one's count shows that
    // nothing went there (Graph's include its token requests).
    let requests = ews.requests();
    let other = match backend {
        Protocol::Ews => Protocol::Graph,
        Protocol::Graph => Protocol::Ews,
    };
    let calls = |p: Protocol| requests.iter().filter(|r| r.protocol == p).count();
    let writes = |p: Protocol| {
        requests
            .iter()
            .filter(|r| r.protocol == p && r.is_write())
            .count()
    };
    println!(
        "  cost: LN reads {} contacts + {} calendar + {} deletions + {} settings/users, {} token, {ln_writes} writes; {} {} requests ({} writes), {} {} requests",
        gets(&["Contacts"]),
        gets(&["Activities", "Attendees", "Employees"]),
        gets(&["DeletedObjects"]),
        gets(&["Settings", "SyncUsers"]),
        ln.count_token_calls(),
        protocol_name(backend),
        calls(backend),
        writes(backend),
        protocol_name(other),
        calls(other),
    );
    println!(
        "  written: contacts {} items, calendar {} items",
        contacts.writes(),
        calendar.writes()
    );
}
