//! `lnsync --store dynamodb://TABLE --queue sqs://URL`: administration of a serverless
//! deployment's table and queues (in moto), without a configuration file.

use lnsync_adapters::dynamo::create_table;
use lnsync_adapters::sqs::create_queues;
use lnsync_tests::harness::TestResult;
use lnsync_tests::moto::{REGION, moto, unique_name};
use std::process::Output;
use std::time::Duration;

async fn lnsync(args: &[&str]) -> Result<Output, std::io::Error> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lnsync"))
        .args(args)
        .env_remove("LNSYNC_CONFIG")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .kill_on_drop(true)
        .output()
        .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_add_start_stop_and_status_on_a_deployment() -> TestResult {
    let table = unique_name("cli");
    create_table(&moto().dynamodb(), &table).await?;
    let urls = create_queues(
        &moto().sqs(),
        &unique_name("cli"),
        Duration::from_secs(30),
        5,
    )
    .await?;
    let store = format!("dynamodb://{table}");
    let queue = format!("sqs://{}", urls.queue_url);

    let out = lnsync(&["--store", &store, "env", "add", "prod"]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("environment prod added"),
        "{}",
        text(&out.stdout)
    );

    let status = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lnsync(&args).await
    };
    let out = status(vec!["--store".into(), store.clone(), "status".into()]).await?;
    assert!(
        text(&out.stdout).contains("environment prod: stopped"),
        "{}",
        text(&out.stdout)
    );

    let out = lnsync(&["--store", &store, "env", "start", "prod"]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = status(vec![
        "--store".into(),
        store.clone(),
        "--queue".into(),
        queue.clone(),
        "--dlq".into(),
        urls.dead_letter_url.clone(),
        "status".into(),
    ])
    .await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("environment prod: started"), "{stdout}");
    assert!(stdout.contains("dead-letter queue: 0 job(s)"), "{stdout}");

    let out = lnsync(&["--store", &store, "env", "stop", "prod"]).await?;
    assert!(text(&out.stdout).contains("environment prod stopped"));

    // Neither a configuration nor a store: a clear error, exit 2.
    let out = lnsync(&["status"]).await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--store dynamodb://TABLE"),
        "{}",
        text(&out.stderr)
    );
    // A store URL of another kind is refused by name.
    let out = lnsync(&["--store", "postgres://x", "status"]).await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("dynamodb://TABLE"));
    Ok(())
}
