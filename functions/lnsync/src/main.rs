//! `lnsync`: the single-process runner and administration CLI.
//!
//! - `serve`: `run --schedule` plus the push endpoint (EWS and Graph notifications, LN webhook).
//! - `run`: one contact and calendar run for every active user of every started environment;
//!   `run --schedule` keeps running and pulls each kind on LN's own intervals.
//! - `env add|start|stop`, `status`, `release-deletions`: administration on the embedded store,
//!   or with `--store dynamodb://TABLE [--queue sqs://QUEUE_URL]` on a serverless deployment.
//! - `demo`: the simulators in-process with demo data, three runs, and where the state lives.

mod demo;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::{Clock, JobQueue, StateStore, SystemClock};
use lnsync_runtime::compose::{LiveConnector, open_store};
use lnsync_runtime::config::Config;
use lnsync_runtime::jobs::JobOutcome;
use lnsync_runtime::runner::{self, SyncKind};
use lnsync_runtime::scheduled::{SchedulePacing, run_scheduled};
use lnsync_runtime::telemetry::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// The state store: `dynamodb://TABLE` for a serverless deployment (AWS credentials and
    /// region from the usual SDK environment). Default: the configuration's SQLite file.
    #[arg(long, global = true, env = "LNSYNC_STORE", value_name = "URL")]
    store: Option<String>,
    /// The job queue of a serverless deployment, `sqs://QUEUE_URL` (`status` lists its
    /// dead letters; the DLQ URL comes from `--dlq` or the queue's redrive policy).
    #[arg(long, global = true, env = "LNSYNC_QUEUE", value_name = "URL")]
    queue: Option<String>,
    /// The dead-letter queue's URL, when `--queue` is given.
    #[arg(long, global = true, env = "LNSYNC_DLQ", value_name = "URL")]
    dlq: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Contacts and calendars, once, for every active user of every started environment.
    Run {
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
        /// Keep running: each user's contacts and calendar are pulled on LN's contact and
        /// calendar pull intervals (aligned to their boundaries), until Ctrl-C or SIGTERM.
        #[arg(long)]
        schedule: bool,
        /// With `--schedule`: how often to look for due users.
        #[arg(
            long,
            default_value_t = 60,
            requires = "schedule",
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        tick_seconds: u64,
    },
    /// `run --schedule` plus the push endpoint: Exchange notifications and LN webhooks sync
    /// single events at once (R31). Listens on `[push] listen` (default 127.0.0.1:8787);
    /// `[push] public_url` is where Exchange reaches it, usually through a reverse proxy.
    Serve {
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: PathBuf,
        /// Overrides `[push] listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// How often to look for due users.
        #[arg(
            long,
            default_value_t = 60,
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        tick_seconds: u64,
    },
    /// Start or stop an environment (R1).
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Environments, users, their last runs and open problems.
    Status {
        /// Required unless `--store` names a deployment's store.
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: Option<PathBuf>,
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
    /// The LN and EWS simulators in-process with demo contacts and meetings; runs contacts and
    /// calendars three times and shows where everything went.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
enum EnvAction {
    /// Registers an environment in the store, stopped (a deployment's functions must also
    /// list it in `LNSYNC_ENVIRONMENTS`).
    Add {
        env: String,
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
    Start {
        env: String,
        /// Required unless `--store` names a deployment's store.
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
    Stop {
        env: String,
        #[arg(long, short, env = "LNSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Where administration commands act: the store, and the environments known to it.
struct Target {
    store: Arc<dyn StateStore>,
    config: Option<Config>,
    queue: Option<Arc<dyn JobQueue>>,
}

impl Target {
    async fn open(
        store: Option<&str>,
        queue: Option<&str>,
        dlq: Option<&str>,
        config: Option<&std::path::Path>,
    ) -> Result<Self> {
        let config = config.map(load).transpose()?;
        let store: Arc<dyn StateStore> = match (store, &config) {
            (Some(url), _) => lnsync_runtime::aws::open_store_url(url)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            (None, Some(config)) => {
                Arc::new(open_store(config).context("opening the state store")?)
            }
            (None, None) => bail!("give --config FILE, or --store dynamodb://TABLE"),
        };
        let queue = match queue {
            Some(url) => Some(
                lnsync_runtime::aws::open_queue_url(url, dlq)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            store,
            config,
            queue,
        })
    }

    /// Environments to show: the configuration's, or (for a deployment) the store's.
    async fn environments(&self) -> Result<Vec<(EnvironmentId, Option<String>)>> {
        Ok(match &self.config {
            Some(config) => config
                .environments
                .iter()
                .map(|e| (e.id.clone(), Some(e.company.clone())))
                .collect(),
            None => self
                .store
                .environments()
                .await?
                .into_iter()
                .map(|e| (e.env, None))
                .collect(),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(if cli.json_logs {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    let globals = Globals {
        store: cli.store,
        queue: cli.queue,
        dlq: cli.dlq,
    };
    match dispatch(cli.command, globals).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The global options that choose the store and queue.
struct Globals {
    store: Option<String>,
    queue: Option<String>,
    dlq: Option<String>,
}

impl Globals {
    async fn open(&self, config: Option<&std::path::Path>) -> Result<Target> {
        Target::open(
            self.store.as_deref(),
            self.queue.as_deref(),
            self.dlq.as_deref(),
            config,
        )
        .await
    }
}

async fn dispatch(command: Command, globals: Globals) -> Result<ExitCode> {
    match command {
        Command::Serve {
            config,
            listen,
            tick_seconds,
        } => {
            let config = load(&config)?;
            let store: Arc<dyn StateStore> =
                Arc::new(open_store(&config).context("opening the state store")?);
            let addr = listen.unwrap_or(config.push.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let pacing = SchedulePacing {
                tick_every: std::time::Duration::from_secs(tick_seconds),
                ..SchedulePacing::default()
            };
            match &config.push.public_url {
                Some(url) => println!(
                    "lnsync: push endpoint on http://{addr} (Exchange and LN reach it as {url}); pulling on LN's intervals, looking every {tick_seconds} s"
                ),
                None => println!(
                    "lnsync: push endpoint on http://{addr}; no [push] public_url, so no Exchange subscriptions are made (LN webhooks are accepted)"
                ),
            }
            let summary = lnsync_runtime::serve::serve(
                &config,
                store,
                Arc::new(LiveConnector::default()),
                Arc::new(SystemClock),
                listener,
                pacing,
                shutdown_signal(),
                print_job,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "lnsync: stopped after {} ticks, {} failed jobs",
                summary.ticks, summary.failed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            schedule: true,
            tick_seconds,
        } => {
            let config = load(&config)?;
            let store: Arc<dyn StateStore> =
                Arc::new(open_store(&config).context("opening the state store")?);
            let pacing = SchedulePacing {
                tick_every: std::time::Duration::from_secs(tick_seconds),
                ..SchedulePacing::default()
            };
            println!(
                "lnsync: pulling contacts and calendars on LN's intervals, looking every {tick_seconds} s; Ctrl-C stops after the jobs in progress"
            );
            let summary = run_scheduled(
                &config,
                store,
                Arc::new(LiveConnector::default()),
                Arc::new(SystemClock),
                pacing,
                shutdown_signal(),
                print_job,
            )
            .await;
            let ran = |k: SyncKind| summary.ran.get(&k).copied().unwrap_or(0);
            println!(
                "lnsync: stopped after {} ticks: {} contact runs, {} calendar runs, {} failed jobs",
                summary.ticks,
                ran(SyncKind::Contacts),
                ran(SyncKind::Calendar),
                summary.failed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, .. } => {
            let config = load(&config)?;
            let store = open_store(&config).context("opening the state store")?;
            let report = runner::run(
                &config,
                &SyncKind::ALL,
                &store,
                &SystemClock,
                &LiveConnector::default(),
            )
            .await;
            print!("{}", report.render());
            Ok(if report.has_failures() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Env { action } => {
            let (env, config, started) = match action {
                EnvAction::Add { env, config } => (env, config, None),
                EnvAction::Start { env, config } => (env, config, Some(true)),
                EnvAction::Stop { env, config } => (env, config, Some(false)),
            };
            let target = globals.open(config.as_deref()).await?;
            let id = EnvironmentId::new(env);
            if let Some(config) = &target.config
                && config.environment(&id).is_none()
            {
                bail!("environment {id} is not in the configuration");
            }
            let existing = target.store.environment(&id).await?;
            let started = match (started, &existing) {
                (Some(started), _) => started,
                (None, Some(state)) => {
                    println!(
                        "environment {id} is already registered ({})",
                        if state.started { "started" } else { "stopped" }
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                (None, None) => false,
            };
            target
                .store
                .put_environment(&EnvironmentState {
                    env: id.clone(),
                    started,
                    updated_at: SystemClock.now(),
                })
                .await?;
            println!(
                "environment {id} {}",
                match (existing.is_none(), started) {
                    (true, false) => "added (stopped; start it with `lnsync env start`)",
                    (_, true) => "started",
                    (_, false) => "stopped",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let target = globals.open(config.as_deref()).await?;
            print!("{}", status(&target).await?);
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                _ = term.recv() => {}
            }
            return;
        }
    }
    // Without a signal handler there is no way to be asked to stop: keep running.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One line per job of `run --schedule`.
fn print_job(job: &lnsync_core::model::Job, outcome: &JobOutcome) {
    let at = SystemClock.now().format("%Y-%m-%d %H:%M:%S");
    let what = match outcome {
        JobOutcome::Done { outcome, counts } => format!(
            "{} (created {}, updated {}, deleted {}, skipped {}, errors {}, held {})",
            match outcome {
                lnsync_core::model::RunOutcome::Partial => "partial",
                _ => "ok",
            },
            counts.created,
            counts.updated,
            counts.deleted,
            counts.skipped,
            counts.errors,
            counts.held
        ),
        JobOutcome::AlreadyDone => "already done".to_owned(),
        JobOutcome::Dropped(why) => format!("skipped: {why}"),
        JobOutcome::Retry { error, .. } => format!("FAILED, will retry: {error}"),
        JobOutcome::Failed(error) => format!("FAILED: {error}"),
    };
    println!("{at} {}/{} {}: {what}", job.env, job.user, job.kind.label());
}

fn load(path: &std::path::Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The console's view (R39, R40), as text.
async fn status(target: &Target) -> Result<String> {
    use std::fmt::Write as _;
    let store = target.store.as_ref();
    let mut out = String::new();
    for (env, company) in target.environments().await? {
        let state = store.environment(&env).await?;
        let started = state.as_ref().is_some_and(|s| s.started);
        let company = company
            .map(|c| format!(" (company {c})"))
            .unwrap_or_default();
        writeln!(
            out,
            "environment {env}{company}: {}",
            if started { "started" } else { "stopped" }
        )?;
        let runs = store.last_runs(&env).await?;
        for user in store.user_states(&env).await? {
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
            for (kind, next) in [
                ("contact", user.next_contact_run),
                ("calendar", user.next_calendar_run),
            ] {
                if let Some(next) = next {
                    writeln!(
                        out,
                        "    next {kind} run {}",
                        next.format("%Y-%m-%d %H:%M:%S UTC")
                    )?;
                }
            }
            for p in store.problems(&env, &user.user).await? {
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
    if let Some(queue) = &target.queue {
        let dead = queue.dead_letters().await?;
        writeln!(out, "dead-letter queue: {} job(s)", dead.len())?;
        for job in dead {
            writeln!(
                out,
                "  {} {} {} {} (queued {})",
                job.id,
                job.env,
                job.user,
                job.kind.label(),
                job.enqueued_at.format("%Y-%m-%d %H:%M:%S UTC")
            )?;
        }
    }
    Ok(out)
}
