//! The `lnsync` binary as an administrator uses it: exit codes, what it prints, and that a
//! broken configuration is explained without echoing secrets. LN and Exchange are the
//! simulators, set up by the end-to-end harness of `tests/suite`.

use lnsync_tests::harness::{TestResult, World, qualifying_contacts};
use std::path::Path;
use std::process::Output;

async fn lnsync(args: &[&str]) -> Result<Output, std::io::Error> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lnsync"))
        .args(args)
        .env_remove("LNSYNC_CONFIG")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// The columns of a user's row in `lnsync run`'s table:
/// user, mailbox, result, created, updated, deleted, skipped, errors, held.
fn row<'a>(stdout: &'a str, user: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&user))
        .unwrap_or_else(|| panic!("no row for {user} in:\n{stdout}"))
}

const GOOD: &str = r#"
[store]
path = "state/lnsync.sqlite"

[[environment]]
id = "prod"
company = "100"
[environment.ln]
ionapi_file = "prod.ionapi"
[environment.exchange]
url = "http://127.0.0.1:9/EWS/Exchange.asmx"
username = "svc"
password_file = "ews.password"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_configuration_exits_2_naming_the_field_and_never_echoing_the_secret()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        // (what is wrong, replace, with, the stderr must name)
        (
            "unknown key",
            "username = \"svc\"",
            "username = \"svc\"\nmax_backof_seconds = 5",
            "max_backof_seconds",
        ),
        (
            "inline password",
            "password_file = \"ews.password\"",
            "password = \"hunter2-Pa55word!\"",
            "exchange.password",
        ),
        (
            "bad URL scheme",
            "http://127.0.0.1:9",
            "ftp://127.0.0.1:9",
            "exchange.url",
        ),
    ];
    for (what, from, to, named) in cases {
        assert!(GOOD.contains(from));
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, GOOD.replace(from, to))?;
        let out = lnsync(&["run", "--config", path(&file)]).await?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: stdout {stdout}\nstderr {stderr}"
        );
        assert!(
            stderr.contains(named),
            "{what}: stderr names {named}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{what}: the secret is echoed: {stderr}"
        );
        assert!(
            !dir.path().join("state").exists(),
            "{what}: nothing ran, no store was created"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_a_per_user_summary_and_status_shows_the_last_runs() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(15))
        .stopped()
        .start()
        .await?;
    let config = path(&world.config_path).to_owned();

    // Stopped (R1): nothing is scheduled, and the output says how to start it.
    let out = lnsync(&["run", "--config", &config]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stopped"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(world.ews.requests().len(), 0);

    let out = lnsync(&["env", "start", "prod", "--config", &config]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout}\nstderr {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("created"),
        "a table with a created column: {stdout}"
    );
    for u in 0..2 {
        let cols = row(&stdout, world.user(0, u));
        assert_eq!(cols[1], world.mailbox(0, u), "{stdout}");
        assert_eq!((cols[2], cols[3]), ("ok", "15"), "{stdout}");
        assert_eq!(
            world.crm_items(world.mailbox(0, u)).len(),
            15,
            "the run really synced"
        );
    }
    assert!(
        !stdout.contains("former"),
        "the inactive user is not listed: {stdout}"
    );
    world.validate_ews_requests()?;

    let out = lnsync(&["status", "--config", &config]).await?;
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(status.contains("started"), "{status}");
    for u in 0..2 {
        let user = format!("user {} <{}>", world.user(0, u), world.mailbox(0, u));
        let at = status
            .find(&user)
            .unwrap_or_else(|| panic!("{user} in {status}"));
        let last = status[at..].lines().nth(1).unwrap_or_default();
        assert!(
            last.contains("last contact run")
                && last.contains("Succeeded")
                && last.contains("created 15"),
            "{status}"
        );
    }

    // The second run is idle.
    world.clear_logs();
    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(&row(&stdout, "alice")[2..4], ["ok", "0"], "{stdout}");
    assert_eq!(world.ews.requests().len(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_failing_user_exits_1_and_says_why() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(15))
        .ews_config(ews_sim::SimConfig {
            allowed_impersonation: Some(vec!["alice@corp.example".into()]),
            ..Default::default()
        })
        .start()
        .await?;
    let config = path(&world.config_path).to_owned();

    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {stdout}\nstderr {}",
        text(&out.stderr)
    );
    assert_eq!(&row(&stdout, "alice")[2..4], ["ok", "15"], "{stdout}");
    assert_eq!(row(&stdout, "bob")[2], "FAILED", "{stdout}");
    assert!(
        stdout.contains("ErrorImpersonateUserDenied"),
        "the reason is shown: {stdout}"
    );
    assert!(
        !stdout.contains(lnsync_tests::harness::EWS_PASSWORD),
        "{stdout}"
    );
    assert!(!text(&out.stderr).contains(lnsync_tests::harness::EWS_PASSWORD));
    Ok(())
}
