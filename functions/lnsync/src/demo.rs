//! `lnsync demo`: everything a newcomer needs to see lnsync work, on one machine, offline.
//!
//! Starts the bundled LN and EWS simulators in this process with demo data, writes a real
//! configuration (with secrets in files beside it) and an embedded store, starts the
//! environment, and runs the contact sync twice: the first run fills every user's
//! "CRM Contacts" folder, the second finds nothing to do and writes nothing.

use anyhow::{Context, Result};
use clap::Args;
use ews_sim::EwsSim;
use ln_sim::{LnSim, SimConfig as LnSimConfig, demo_seed};
use lnsync_core::ids::EnvironmentId;
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::{Clock, StateStore, SystemClock};
use lnsync_runtime::compose::{LiveConnector, open_store};
use lnsync_runtime::config::Config;
use lnsync_runtime::runner::{RunReport, run_contacts};
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
        "lnsync demo: {} users, {} LN contacts",
        args.users, args.contacts
    );
    println!("  LN simulator   {}", ln.service_root());
    println!("  EWS simulator  {}", ews.ews_url());
    println!();

    let connector = LiveConnector::default();
    let mut failed = false;
    for (n, title) in [
        (1, "first run: initial load"),
        (2, "second run: nothing changed"),
    ] {
        ln.clear_requests();
        ews.clear_requests();
        let started = Instant::now();
        let report = run_contacts(&config, &store, &SystemClock, &connector).await;
        let elapsed = started.elapsed();
        println!("== run {n} ({title}), {:.2} s", elapsed.as_secs_f64());
        print!("{}", report.render());
        print_costs(&report, &ln, &ews);
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
    let totals = report.totals();
    let feed = ln.count_calls("GET", "Contacts") + ln.count_calls("GET", "DeletedObjects");
    let config_reads = ln.count_calls("GET", "Settings") + ln.count_calls("GET", "SyncUsers");
    println!(
        "  cost: LN {} change-feed + {} settings/users + {} token requests; EWS {} requests ({} writes); {} items written",
        feed,
        config_reads,
        ln.count_token_calls(),
        ews.requests().len(),
        ews.write_calls(),
        totals.writes()
    );
}
