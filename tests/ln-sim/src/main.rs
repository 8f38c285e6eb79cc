//! `ln-sim`: run the LN simulator as a standalone server (for the demo and manual testing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ln_sim::{Credentials, LnSim, Seed, SimConfig, demo_seed};

/// Simulator of the Infor LN OData API (lnsync service) behind the ION API gateway.
#[derive(Debug, Parser)]
#[command(name = "ln-sim", version)]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8081, env = "LN_SIM_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "LN_SIM_HOST")]
    host: std::net::IpAddr,
    /// Seed file (same JSON as POST /_sim/seed).
    #[arg(long, env = "LN_SIM_SEED")]
    seed: Option<PathBuf>,
    /// Add generated demo data for this company (combined with --seed if both are given).
    #[arg(long)]
    demo_company: Option<String>,
    /// Number of sync users for --demo-company.
    #[arg(long, default_value_t = 5)]
    demo_users: usize,
    /// Number of contacts for --demo-company.
    #[arg(long, default_value_t = 50)]
    demo_contacts: usize,
    /// Tenant (`ti`), first segment of the service path.
    #[arg(long, default_value = "LNSIM_TST")]
    tenant: String,
    /// OAuth client id (`ci`).
    #[arg(long, default_value = "LNSIM_TST~lnsync-client")]
    client_id: String,
    /// OAuth client secret (`cs`).
    #[arg(
        long,
        default_value = "lnsync-client-secret",
        env = "LN_SIM_CLIENT_SECRET"
    )]
    client_secret: String,
    /// Service account access key (`saak`).
    #[arg(long, default_value = "LNSIM_TST#lnsync-service-account")]
    saak: String,
    /// Service account secret key (`sask`).
    #[arg(long, default_value = "lnsync-service-secret", env = "LN_SIM_SASK")]
    sask: String,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,
    /// Default page size of collections.
    #[arg(long, default_value_t = 200)]
    page_size: usize,
    /// Where to write the `.ionapi` file (default: ln-sim-PORT.ionapi in the temp directory).
    #[arg(long)]
    ionapi_out: Option<PathBuf>,
    /// Push webhook of a company, `COMPANY=URL` with the full endpoint URL (e.g.
    /// `100=http://127.0.0.1:8787/ln/prod`); repeatable. Sets the company's pushEnabled.
    #[arg(long = "webhook", value_name = "COMPANY=URL")]
    webhooks: Vec<String>,
    /// Secret the push webhooks are signed with (required with --webhook).
    #[arg(long, env = "LN_SIM_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let mut seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading seed {}", path.display()))?;
            let mut value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing seed {}", path.display()))?;
            ln_sim::seed::strip_annotations(&mut value);
            serde_json::from_value::<Seed>(value)
                .with_context(|| format!("parsing seed {}", path.display()))?
        }
        None => Seed::default(),
    };
    if let Some(company) = &args.demo_company {
        seed.companies
            .extend(demo_seed(company, args.demo_users, args.demo_contacts).companies);
    }
    let config = SimConfig {
        credentials: Credentials {
            tenant: args.tenant.clone(),
            client_id: args.client_id.clone(),
            client_secret: args.client_secret.clone(),
            saak: args.saak.clone(),
            sask: args.sask.clone(),
        },
        token_lifetime: Duration::from_secs(args.token_lifetime),
        default_page_size: args.page_size,
        ..SimConfig::default()
    }
    .with_seed(seed);

    // Checked before starting, so a typo fails fast instead of after the banner.
    let webhooks = args
        .webhooks
        .iter()
        .map(|webhook| {
            webhook
                .split_once('=')
                .with_context(|| format!("--webhook {webhook}: expected COMPANY=URL"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let webhook_secret = match (&args.webhook_secret, webhooks.is_empty()) {
        (Some(secret), _) => secret.as_str(),
        (None, true) => "",
        (None, false) => {
            anyhow::bail!("--webhook needs --webhook-secret (or LN_SIM_WEBHOOK_SECRET)")
        }
    };

    let sim = LnSim::start_on(SocketAddr::new(args.host, args.port), config).await?;
    let ionapi_path = args.ionapi_out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ln-sim-{}.ionapi", sim.local_addr().port()))
    });
    sim.write_ionapi(&ionapi_path)?;

    println!("ln-sim listening on {}", sim.base_url());
    println!("service root: {}", sim.service_root());
    println!("token url:    {}", sim.token_url());
    println!("ionapi:       {}", ionapi_path.display());
    println!("companies:    {}", sim.store().companies().join(", "));
    for (company, url) in webhooks {
        sim.enable_webhook(company, url, webhook_secret)
            .with_context(|| format!("--webhook {company}={url}"))?;
        println!("webhook:      {company} -> {url}");
    }

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
