//! Standalone simulator: `ews-sim --port 8082 [--seed FILE] [--push-minute-ms N]
//! [--graph-tenant T --graph-client-id C --graph-secret S]`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use ews_sim::{Credential, GraphClient, GraphConfig, PushConfig, Seed, SimConfig, SimHandle};

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
    /// Graph token endpoint: tenant of the accepted app registration.
    #[arg(long, default_value = "contoso", env = "EWS_SIM_GRAPH_TENANT")]
    graph_tenant: String,
    /// Graph token endpoint: client id of the accepted app registration.
    #[arg(long, default_value = "lnsync", env = "EWS_SIM_GRAPH_CLIENT_ID")]
    graph_client_id: String,
    /// Graph token endpoint: client secret of the accepted app registration.
    #[arg(long, default_value = "graph-secret", env = "EWS_SIM_GRAPH_SECRET")]
    graph_secret: String,
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
        graph: GraphConfig {
            clients: vec![GraphClient {
                tenant: args.graph_tenant.clone(),
                client_id: args.graph_client_id.clone(),
                secret: args.graph_secret.clone(),
            }],
            ..GraphConfig::default()
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
    println!(
        "Microsoft Graph at http://{local}/v1.0 (tokens: http://{local}/{}/oauth2/v2.0/token)",
        args.graph_tenant
    );
    println!("admin API at http://{local}/_sim/health");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    ews_sim::server::serve(listener, handle, shutdown).await?;
    Ok(())
}
