//! `lnsync demo`: everything a newcomer needs to see lnsync work, on one machine, offline.
//!
//! Starts the bundled LN and EWS simulators in this process with demo data, writes a real
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
//! The calendar part is in [`calendar`]: what it seeds, and the lines that show where it went.

mod calendar;

use anyhow::{Context, Result};
use clap::Args;
use ews_sim::EwsSim;
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
}

const COMPANY: &str = "100";
const ENVIRONMENT: &str = "demo";
const EWS_USER: &str = "svc-lnsync";
const EWS_PASSWORD: &str = "demo-password";

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    // A fresh demo every time: the first run should show the initial load.
    for stale in ["lnsync.sqlite", "lnsync.sqlite-wal", "lnsync.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }

    let ews = EwsSim::start_with(ews_sim::SimConfig {
        credentials: vec![ews_sim::Credential {
            user: EWS_USER.into(),
            password: EWS_PASSWORD.into(),
            mailbox: None,
        }],
        ..ews_sim::SimConfig::default()
    })
    .await
    .context("starting the EWS simulator")?;

    let mut seed = demo_seed(COMPANY, args.users, args.contacts);
    let people = calendar::people(&seed);
    for company in &mut seed.companies {
        // LN tells lnsync where Exchange is (ttaad2140m000); here it is the EWS simulator.
        company.settings.exchange_url = Some(ews.ews_url());
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
    let config_path = dir.join("lnsync.toml");
    std::fs::write(
        &config_path,
        format!(
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
        ),
    )?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(&config)?;
    store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new(ENVIRONMENT),
            started: true,
            updated_at: SystemClock.now(),
        })
        .await?;

    println!(
        "lnsync demo: {} users, {} LN contacts, {}",
        args.users,
        args.contacts,
        meetings.describe()
    );
    println!("  LN simulator   {}", ln.service_root());
    println!("  EWS simulator  {}", ews.ews_url());
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
        print_costs(&report, &ln, &ews);
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

fn print_costs(report: &RunReport, ln: &LnSim, ews: &EwsSim) {
    let contacts = report.totals_of(SyncKind::Contacts);
    let calendar = report.totals_of(SyncKind::Calendar);
    // LN reads by what they serve: DeletedObjects serves both feeds, Settings and SyncUsers
    // are read once per environment for both kinds (R14).
    let gets = |sets: &[&str]| -> usize { sets.iter().map(|s| ln.count_calls("GET", s)).sum() };
    let ln_writes = ["POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| ln.count(|r| r.method == *m && r.kind == ln_sim::RequestKind::Data))
        .sum::<usize>();
    println!(
        "  cost: LN reads {} contacts + {} calendar + {} deletions + {} settings/users, {} token, {ln_writes} writes; EWS {} requests ({} writes)",
        gets(&["Contacts"]),
        gets(&["Activities", "Attendees", "Employees"]),
        gets(&["DeletedObjects"]),
        gets(&["Settings", "SyncUsers"]),
        ln.count_token_calls(),
        ews.requests().len(),
        ews.write_calls(),
    );
    println!(
        "  written: contacts {} items, calendar {} items",
        contacts.writes(),
        calendar.writes()
    );
}
