//! Standalone simulator: `ews-sim --port 8082 [--seed FILE] [--push-minute-ms N]`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use ews_sim::{Credential, PushConfig, Seed, SimConfig, SimHandle};

#[derive(Parser, Debug)]
#[command(
    name = "ews-sim",
    about = "Exchange Web Services simulator for lnsync tests"
)]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8082, env = "EWS_SIM_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "EWS_SIM_HOST")]
    host: String,
    /// JSON seed file (credentials, mailboxes, folders, contacts).
    #[arg(long, env = "EWS_SIM_SEED")]
    seed: Option<std::path::PathBuf>,
    /// Basic-auth service account user.
    #[arg(long, default_value = "svc")]
    user: String,
    /// Basic-auth service account password.
    #[arg(long, default_value = "secret")]
    password: String,
    /// Accepted bearer token (repeatable).
    #[arg(long)]
    token: Vec<String>,
    /// Do not require X-AnchorMailbox to match the impersonated mailbox.
    #[arg(long)]
    lenient_anchor: bool,
    /// Length of one push StatusFrequency minute, ms (time scale for tests).
    #[arg(long, default_value_t = 60_000, env = "EWS_SIM_PUSH_MINUTE_MS")]
    push_minute_ms: u64,
    /// First retry gap of an unanswered push notification, ms (doubles per retry).
    #[arg(long, default_value_t = 30_000, env = "EWS_SIM_PUSH_RETRY_BASE_MS")]
    push_retry_base_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SimConfig {
        credentials: vec![Credential {
            user: args.user.clone(),
            password: args.password.clone(),
            mailbox: None,
        }],
        bearer_tokens: args.token.clone(),
        strict_anchor: !args.lenient_anchor,
        push: PushConfig {
            minute_ms: args.push_minute_ms,
            retry_base_ms: args.push_retry_base_ms,
            ..PushConfig::default()
        },
        ..SimConfig::default()
    };
    let handle = SimHandle::new(config);
    if let Some(path) = &args.seed {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let seed: Seed =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        handle.seed(&seed).context("applying seed")?;
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .context("invalid --host/--port")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("ews-sim listening on http://{local}{}", ews_sim::EWS_PATH);
    println!("admin API at http://{local}/_sim/health");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    ews_sim::server::serve(listener, handle, shutdown).await?;
    Ok(())
}
