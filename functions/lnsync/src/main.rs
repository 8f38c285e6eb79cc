//! `lnsync`: the single-process runner and administration CLI.
//!
//! - `run`: one contact run for every active user of every started environment.
//! - `env start|stop`, `status`, `release-deletions`: administration on the embedded store.
//! - `demo`: the simulators in-process with demo data, two runs, and where the state lives.

mod demo;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::{Clock, StateStore, SystemClock};
use lnsync_runtime::compose::{LiveConnector, open_store};
use lnsync_runtime::config::Config;
use lnsync_runtime::runner::run_contacts;
use lnsync_runtime::telemetry::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lnsync",
    version,
    about = "Synchronizes Infor LN CRM with Microsoft Exchange"
)]
struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One contact run for every active user of every started environment.
    Run {
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
    },
    /// Start or stop an environment (R1).
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Environments, users, their last runs and open problems.
    Status {
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
    },
    /// Let the next run apply deletions the safety gate held for a user (R30).
    ReleaseDeletions {
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        env: String,
        #[arg(long)]
        user: String,
    },
    /// The LN and EWS simulators in-process with demo data; syncs twice and shows the result.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
enum EnvAction {
    Start {
        env: String,
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
    },
    Stop {
        env: String,
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(if cli.json_logs {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    match dispatch(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let config = load(&config)?;
            let store = open_store(&config).context("opening the state store")?;
            let report =
                run_contacts(&config, &store, &SystemClock, &LiveConnector::default()).await;
            print!("{}", report.render());
            Ok(if report.has_failures() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Env { action } => {
            let (env, config, started) = match action {
                EnvAction::Start { env, config } => (env, config, true),
                EnvAction::Stop { env, config } => (env, config, false),
            };
            let config = load(&config)?;
            let id = EnvironmentId::new(env);
            if config.environment(&id).is_none() {
                bail!("environment {id} is not in the configuration");
            }
            let store = open_store(&config)?;
            store
                .put_environment(&EnvironmentState {
                    env: id.clone(),
                    started,
                    updated_at: SystemClock.now(),
                })
                .await?;
            println!(
                "environment {id} {}",
                if started { "started" } else { "stopped" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let config = load(&config)?;
            let store = open_store(&config)?;
            print!("{}", status(&config, &store).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ReleaseDeletions { config, env, user } => {
            let config = load(&config)?;
            let store = open_store(&config)?;
            let (env, user) = (EnvironmentId::new(env), UserId::new(user));
            let Some(mut state) = store.user_state(&env, &user).await? else {
                bail!("user {user} of environment {env} has not run yet");
            };
            state.release_held_deletions = true;
            store.put_user_state(&state).await?;
            println!("the next run of {user} in {env} applies its held deletions");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(args).await,
    }
}

fn load(path: &std::path::Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The console's view (R39, R40), as text.
pub async fn status(config: &Config, store: &dyn StateStore) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    for env in &config.environments {
        let state = store.environment(&env.id).await?;
        let started = state.as_ref().is_some_and(|s| s.started);
        writeln!(
            out,
            "environment {} (company {}): {}",
            env.id,
            env.company,
            if started { "started" } else { "stopped" }
        )?;
        let runs = store.last_runs(&env.id).await?;
        for user in store.user_states(&env.id).await? {
            writeln!(out, "  user {} <{}>", user.user, user.mailbox)?;
            for run in runs.iter().filter(|r| r.user == user.user) {
                let c = run.counts;
                writeln!(
                    out,
                    "    last {} run {}: {:?} (created {}, updated {}, deleted {}, skipped {}, errors {}, held {})",
                    run.kind.as_str(),
                    run.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    run.outcome,
                    c.created,
                    c.updated,
                    c.deleted,
                    c.skipped,
                    c.errors,
                    c.held
                )?;
                if let Some(e) = &run.error {
                    writeln!(out, "      error: {e}")?;
                }
            }
            for p in store.problems(&env.id, &user.user).await? {
                writeln!(
                    out,
                    "    problem {} {}: {:?}: {}",
                    p.kind.as_str(),
                    p.ln_key,
                    p.problem,
                    p.detail
                )?;
            }
        }
    }
    Ok(out)
}
