//! End to end through cargo-lambda: the scheduler, worker and push functions as Lambda runs
//! them (`cargo lambda watch` hosts the binaries behind the Lambda runtime API, the push
//! function behind its function URL), the LN and EWS simulators, and moto for DynamoDB, SQS
//! and Secrets Manager. Nothing is mocked in between.
//!
//! How it starts its tools:
//! - **moto**: `lnsync_tests::moto` (`MOTO_ENDPOINT`, or `.venv/moto` from `make tools`).
//! - **cargo-lambda**: `.venv/cargo-lambda/bin/cargo-lambda` (`make tools`); when missing, the
//!   test creates that venv with `pip install cargo-lambda==1.9.2` itself. If that fails, the
//!   test fails under `CI=true` and is skipped with a note elsewhere. The venv's `bin` goes on
//!   `PATH` (cargo-lambda finds zig there).
//! - **simulators**: in-process, from the end-to-end harness.
//! - A small **counting proxy** sits between the functions and moto (`AWS_ENDPOINT_URL`), so
//!   the test can count AWS calls by operation (`X-Amz-Target`), e.g. `SendMessageBatch`.
//!
//! The functions are configured only through environment variables (as in the template),
//! with their secrets in moto's Secrets Manager. The test plays the SQS event source mapping:
//! it receives from the queue, invokes the worker with an SQS event of those messages, and
//! deletes what the worker did not report as failed.
//!
//! Checked, over environment `prod` (5 users, contacts and calendar on) and `bulk` (contacts
//! only, 995 users):
//! - a tick queues one job per due user and kind (a contact and a calendar job per new user,
//!   in the user's message group, in that order);
//! - the worker syncs every healthy user's contacts (items in the EWS simulator, links in
//!   DynamoDB) and calendar: an LN meeting organized by alice inviting bob and carol is one
//!   stamped meeting in alice's mailbox with the invitations in bob's and carol's, its LN
//!   attendee lines marked *Sent to Synchronizer*; bob's Outlook appointment is one LN activity
//!   (origin Exchange, external reference = its UID); the event links and both calendar cursors
//!   are in DynamoDB (read through `DynamoStateStore`);
//! - the same batch invoked twice at once writes once (contacts, meeting, LN activity);
//! - a batch of 10 where one user's mailbox is broken reports exactly that user's two messages
//!   (its calendar job fails without running behind its failed contact job), which after
//!   maxReceiveCount are in the DLQ with the user's state untouched;
//! - a tick with 1,000 due users (995 in `bulk`, and `prod`'s 5 whose 15-minute calendar
//!   interval is due again while their hourly contacts are not) makes at most 100
//!   SendMessageBatch calls and reads no LN item data and no DynamoDB items; a tick with none
//!   makes no SQS call.
//!
//! `push_through_the_function_url` (scenario 25; R31, R33), over `prod` with 3 users, LN's
//! webhook and the functions' `LNSYNC_PUSH_URL` pointing at the push function's URL:
//! - a tick at the real time queues a Subscribe job per user behind its pulls; after the worker
//!   ran them each mailbox has one live EWS subscription at `{function URL}/ews/prod/{token}`
//!   with the configured StatusFrequency, and DynamoDB holds exactly those subscriptions;
//! - bob renames his Outlook appointment: the simulator's SendNotification is answered OK at
//!   once, one `event` job of bob's is all that is queued, and the worker renames the LN
//!   activity reading only that item (no SyncFolderItems, no CalendarView, no LN feed);
//! - LN renames alice's meeting: LN's signed webhook is accepted (202), one `event` job for
//!   `*` is queued, and the worker renames the meeting in alice's mailbox (and Exchange the
//!   invitations) without a pull; the echoes of every write converge;
//! - a replayed notification under a wrong token, an unknown subscription (403), a DOCTYPE
//!   (400), a webhook signed with another key or replayed ten minutes late (401) queue nothing.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::Utc;
use ews_sim::NewEvent;
use ews_sim::faults::{FaultAction, FaultRule};
use ln_sim::model::Origin;
use lnsync_adapters::dynamo::{DynamoStateStore, create_table};
use lnsync_adapters::sqs::{SqsJobQueue, create_queues};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{CursorKind, EnvironmentState, Job, JobKind, LinkKind};
use lnsync_core::ports::{JobQueue, StateStore};
use lnsync_core::service::SyncOptions;
use lnsync_runtime::runner::Connector;
use lnsync_tests::calendar_world::{CalendarWorld, SimTime, add_employees};
use lnsync_tests::harness::{
    BoxError, EWS_PASSWORD, EWS_USER, TestResult, World, contact_code, qualifying_contacts, stamp,
    stamp_of,
};
use lnsync_tests::moto::{REGION, moto, unique_name};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const CARGO_LAMBDA_VERSION: &str = "1.9.2";
/// The first invocation of each function compiles it (debug): allow for a cold build on a
/// busy 2-core machine.
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(900);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(180);
/// Short, so a failed message comes back quickly; 3 receives, then the DLQ.
const VISIBILITY: Duration = Duration::from_secs(1);
const MAX_RECEIVES: u32 = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// cargo-lambda from the repo's venv, installed there when missing.
fn cargo_lambda() -> Result<PathBuf, String> {
    let venv = root().join(".venv/cargo-lambda");
    let bin = venv.join("bin/cargo-lambda");
    if bin.is_file() {
        return Ok(bin);
    }
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("{cmd:?} could not start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv))?;
    run(std::process::Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--no-cache-dir",
        &format!("cargo-lambda=={CARGO_LAMBDA_VERSION}"),
    ]))?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is still missing after pip install",
            bin.display()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// A counting proxy in front of moto
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn count(calls: &[String], operation: &str) -> usize {
    calls.iter().filter(|c| c.ends_with(operation)).count()
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    proxy
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(target);
    let failed = |e: String| {
        Response::builder()
            .status(502)
            .body(axum::body::Body::from(e))
            .unwrap_or_default()
    };
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return failed(e.to_string()),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers.clone();
    headers.remove("host");
    headers.remove("content-length");
    let answer = proxy
        .client
        .request(parts.method, format!("{}{path}", proxy.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return failed(e.to_string()),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response
        .body(axum::body::Body::from(bytes))
        .unwrap_or_default()
}

async fn start_proxy(upstream: &str) -> Result<(Proxy, String), BoxError> {
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
        calls: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((proxy, url))
}

// ---------------------------------------------------------------------------------------------
// cargo lambda watch / invoke
// ---------------------------------------------------------------------------------------------

/// A port free right now (the OS picks it; the listener is closed again at once).
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Lambda {
    bin: PathBuf,
    port: u16,
    _watch: Child,
    dir: tempfile::TempDir,
    invoked: Mutex<std::collections::HashSet<String>>,
}

impl Lambda {
    fn path_var(&self) -> String {
        let venv_bin = self.bin.parent().map(Path::to_path_buf).unwrap_or_default();
        format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `cargo lambda watch` on `port` (see [`free_port`]: a test that puts the function URL in
    /// the functions' own variables must know the port before they start).
    async fn start(
        bin: PathBuf,
        port: u16,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let venv_bin = bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.path().join("watch.log"))?;
        let mut cmd = Command::new(&bin);
        cmd.current_dir(root())
            .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .env("PATH", path)
            .envs(vars)
            // Don't let the developer's own AWS setup leak into the functions.
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let watch = cmd.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("cargo lambda watch did not listen within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            bin,
            port,
            _watch: watch,
            dir,
            invoked: Mutex::default(),
        })
    }

    fn watch_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("watch.log")).unwrap_or_default()
    }

    /// `cargo lambda invoke FUNCTION --data-file FILE`, the function's answer as JSON.
    async fn invoke_file(&self, function: &str, file: &Path) -> Result<Value, BoxError> {
        let first = self
            .invoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(function.to_owned());
        let timeout = if first {
            FIRST_INVOKE_TIMEOUT
        } else {
            INVOKE_TIMEOUT
        };
        let out = Command::new(&self.bin)
            .current_dir(root())
            .args(["lambda", "invoke", "-A", "127.0.0.1"])
            .args(["-P", &self.port.to_string(), "-o", "json", "--data-file"])
            .arg(file)
            .arg(function)
            .env("PATH", self.path_var())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(timeout, out)
            .await
            .map_err(|_| format!("invoking {function} took over {timeout:?}"))??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "cargo lambda invoke {function} failed: {}{}\n--- watch log (tail) ---\n{}",
                stdout,
                String::from_utf8_lossy(&out.stderr),
                tail(&self.watch_log(), 60)
            )
            .into());
        }
        serde_json::from_str(&stdout)
            .map_err(|e| format!("{function} answered {stdout:?}: {e}").into())
    }

    async fn invoke(&self, function: &str, event: &Value) -> Result<Value, BoxError> {
        let file = self
            .dir
            .path()
            .join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, serde_json::to_vec(event)?)?;
        self.invoke_file(function, &file).await
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// SQS as the event source mapping sees it
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    id: String,
    receipt: String,
    body: String,
    group: String,
    count: String,
}

impl Received {
    fn job(&self) -> Result<Job, BoxError> {
        Ok(serde_json::from_str(&self.body)?)
    }
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<Received>, BoxError> {
    let mut all = Vec::new();
    loop {
        let messages = receive_once(sqs, url, 1).await?;
        if messages.is_empty() {
            return Ok(all);
        }
        all.extend(messages);
    }
}

/// One ReceiveMessage (up to 10 messages), long-polling `wait_seconds`.
async fn receive_once(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait_seconds: i32,
) -> Result<Vec<Received>, BoxError> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let attrs = m.attributes.unwrap_or_default();
            let attr = |name: aws_sdk_sqs::types::MessageSystemAttributeName| {
                attrs.get(&name).cloned().unwrap_or_default()
            };
            Received {
                id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                group: attr(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId),
                count: attr(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                ),
            }
        })
        .collect())
}

fn sqs_event(messages: &[Received]) -> Value {
    json!({ "Records": messages.iter().map(|m| json!({
        "messageId": m.id,
        "receiptHandle": m.receipt,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": m.count,
            "MessageGroupId": m.group,
        },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs.fifo",
        "awsRegion": REGION,
    })).collect::<Vec<_>>() })
}

fn failed_ids(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn delete_succeeded(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Received],
    failed: &[String],
) -> TestResult {
    for m in messages.iter().filter(|m| !failed.contains(&m.id)) {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(&m.receipt)
            .send()
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

async fn secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String, BoxError> {
    let out = sm
        .create_secret()
        .name(unique_name(name))
        .secret_string(value)
        .send()
        .await?;
    Ok(out.arn.ok_or("no ARN")?)
}

fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The calendar part of the world: LN employees for `prod`'s sync users (R5) and the calendar
/// helpers of [`CalendarWorld`] over this test's world, on the system clock (the worker's clock:
/// the window is computed from it).
async fn calendar_world(world: World) -> Result<CalendarWorld, BoxError> {
    add_employees(&world, "prod")?;
    let env = world
        .config
        .environments
        .iter()
        .find(|e| e.id.as_str() == "prod")
        .ok_or("the harness configured no prod")?
        .clone();
    let ln_client = world.connector.ln(&env)?;
    let mailbox = world
        .connector
        .mailbox(&env, &ln_client.settings().await?)?;
    Ok(CalendarWorld {
        company: world.env("prod").company.clone(),
        world,
        clock: SimTime::default(),
        options: SyncOptions::default(),
        env: env.id,
        ln_client,
        mailbox,
    })
}

/// CreateItem requests of the current EWS log for `mailbox` that create an `element`
/// (`t:Contact`, `t:CalendarItem`).
fn creates(world: &World, mailbox: &str, element: &str) -> usize {
    let open = format!("<{element}>");
    world
        .ews_requests_for(mailbox)
        .iter()
        .filter(|r| r.operation.as_deref() == Some("CreateItem") && r.body.contains(&open))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduler_and_worker_through_cargo_lambda() -> TestResult {
    let bin = match cargo_lambda() {
        Ok(bin) => bin,
        Err(e) if ci() => panic!("cargo-lambda is required under CI: {e}"),
        Err(e) => {
            eprintln!("note: skipping the cargo-lambda end-to-end test: {e}");
            return Ok(());
        }
    };
    let started = Instant::now();
    let moto = moto();
    let (proxy, proxy_url) = start_proxy(moto.endpoint()).await?;

    // The simulators: environment `prod` with 5 users and 20 contacts; `bulk` (company 200)
    // gets 995 users later for the fan-out.
    let world = World::builder()
        .env("prod", "100", 5, qualifying_contacts(20))
        .env("bulk", "200", 0, Vec::new())
        .start()
        .await?;
    // `prod` keeps LN's default settings: Synchronize Contacts (every hour) and Synchronize
    // Activities (every 15 minutes) on, so each of its users gets a contact and a calendar job
    // (jobs = users × kinds due). `bulk` synchronizes contacts only: its part is the fan-out,
    // whose point is batching (1,000 due users' jobs in ≤ 100 SendMessageBatch calls); a
    // calendar job each would double the messages through moto, the slowest part of the test,
    // and prove nothing more about batching.
    world.ln.store().set_settings(
        "200",
        serde_json::from_value(json!({"synchronizeActivities": false}))?,
    )?;
    let cal = calendar_world(world).await?;
    let world = &cal.world;
    // alice, bob, carol and dave are healthy; erin's mailbox is broken (below).
    let (alice, bob, carol, dave) = ("alice", "bob", "carol", "dave");
    let healthy = [0, 1, 2, 3];
    let broken_index = 4;

    // Calendar data, two and three days ahead (inside the worker's window): an LN meeting
    // organized by alice inviting bob and carol, and an appointment bob makes in Outlook.
    let day = Utc::now()
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .ok_or("10:00")?
        .and_utc()
        + chrono::Duration::days(2);
    let meeting = cal.ln_meeting("Lambda review", day, alice, &[bob, carol])?;
    let mut dentist = NewEvent::new(
        "Dentist",
        (day + chrono::Duration::days(1)).naive_utc(),
        (day + chrono::Duration::days(1) + chrono::Duration::hours(1)).naive_utc(),
    );
    dentist.send = false;
    let dentist = cal.user_creates(bob, dentist)?;

    // AWS side: table, queues, secrets.
    let table = unique_name("e2e");
    create_table(&moto.dynamodb(), &table).await?;
    let sqs = moto.sqs();
    let urls = create_queues(&sqs, &unique_name("jobs"), VISIBILITY, MAX_RECEIVES).await?;
    let sm = secrets_client(moto.endpoint());
    let ionapi = secret(&sm, "ionapi", &world.ln.ionapi().to_json()).await?;
    let password = secret(&sm, "ews", EWS_PASSWORD).await?;
    let store = DynamoStateStore::new(moto.dynamodb(), &table);
    let queue = SqsJobQueue::new(sqs.clone(), &urls.queue_url)
        .with_dead_letter_queue(&urls.dead_letter_url);
    store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new("prod"),
            started: true,
            updated_at: chrono::Utc::now(),
        })
        .await?;

    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        vars.insert(k.to_owned(), v.to_owned());
    };
    set("LNSYNC_TABLE", &table);
    set("LNSYNC_QUEUE_URL", &urls.queue_url);
    set("LNSYNC_DLQ_URL", &urls.dead_letter_url);
    set("LNSYNC_ENVIRONMENTS", "prod,bulk");
    for (id, company) in [("PROD", "100"), ("BULK", "200")] {
        set(&format!("LNSYNC_ENV_{id}_COMPANY"), company);
        set(&format!("LNSYNC_ENV_{id}_IONAPI_SECRET_ARN"), &ionapi);
        set(&format!("LNSYNC_ENV_{id}_EWS_USERNAME"), EWS_USER);
        set(
            &format!("LNSYNC_ENV_{id}_EWS_PASSWORD_SECRET_ARN"),
            &password,
        );
        set(
            &format!("LNSYNC_ENV_{id}_EXCHANGE_URL"),
            &world.ews.ews_url(),
        );
    }
    set("LNSYNC_LOG", "lnsync=info,warn");
    set("AWS_ENDPOINT_URL", &proxy_url);
    set("AWS_REGION", REGION);
    set("AWS_ACCESS_KEY_ID", "test");
    set("AWS_SECRET_ACCESS_KEY", "test");
    let lambda = Lambda::start(bin, free_port()?, &vars).await?;
    eprintln!("setup: {:?}", started.elapsed());

    // 1. The scheduled-event fixture (09:00): every prod user is new, hence due for both kinds.
    let fixture = root().join("functions/scheduler/events/scheduled.json");
    let t = Instant::now();
    let summary = lambda.invoke_file("scheduler", &fixture).await?;
    eprintln!("first scheduler invoke (incl. compile): {:?}", t.elapsed());
    assert_eq!(summary["jobs"], 10, "5 users × 2 kinds: {summary}");
    let messages = receive_all(&sqs, &urls.queue_url).await?;
    assert_eq!(messages.len(), 10);
    // Per user, its contact job then its calendar job, in one message group (FIFO order).
    let mut kinds: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &messages {
        let job = m.job()?;
        assert_eq!(m.group, job.group(), "message group of {}", job.id);
        kinds
            .entry(job.user.to_string())
            .or_default()
            .push(job.kind.label());
    }
    for i in 0..5 {
        assert_eq!(
            kinds.get(world.user(0, i)).map(Vec::as_slice),
            Some(&["contacts", "calendar"][..]),
            "jobs of {}",
            world.user(0, i)
        );
    }
    proxy.take();

    // 2. One mailbox is broken: its contact job fails, and its calendar job after it fails
    //    without running (nothing overtakes in a group); the four others sync both kinds.
    let broken = world.mailbox(0, broken_index).to_owned();
    world.ews.add_fault(FaultRule {
        mailbox: Some(broken.clone()),
        operation: None,
        count: 10_000,
        action: FaultAction::SoapFault {
            code: "ErrorNonExistentMailbox".into(),
            message: None,
        },
    });
    let mut broken_msgs = Vec::new();
    let mut broken_jobs = Vec::new();
    for m in &messages {
        let job = m.job()?;
        if job.user.as_str() == world.user(0, broken_index) {
            broken_msgs.push(m.id.clone());
            broken_jobs.push(job.id.as_str().to_owned());
        }
    }
    broken_msgs.sort();
    broken_jobs.sort();
    assert_eq!(broken_msgs.len(), 2);
    let event = sqs_event(&messages);
    // The same batch twice at once (a redelivery racing the first delivery).
    world.clear_logs();
    let t = Instant::now();
    let (a, b) = tokio::join!(
        lambda.invoke("worker", &event),
        lambda.invoke("worker", &event)
    );
    eprintln!(
        "two concurrent worker invokes (incl. compile): {:?}",
        t.elapsed()
    );
    let (a, b) = (a?, b?);
    for response in [&a, &b] {
        let failed = failed_ids(response);
        for id in &broken_msgs {
            assert!(failed.contains(id), "{response}");
        }
    }
    // Everything the worker sent Exchange is valid against the schemas.
    world.validate_ews_requests()?;
    // Writes once. Contacts: one CreateItem per healthy mailbox (20 contacts fit one request).
    for i in healthy {
        let mailbox = world.mailbox(0, i);
        assert_eq!(
            creates(world, mailbox, "t:Contact"),
            1,
            "contact CreateItem calls for {mailbox}"
        );
    }
    // Calendar: one meeting created, in the organizer's mailbox; one LN activity created, for
    // bob's Outlook appointment.
    for i in healthy {
        let mailbox = world.mailbox(0, i);
        assert_eq!(
            creates(world, mailbox, "t:CalendarItem"),
            usize::from(i == 0),
            "calendar CreateItem calls for {mailbox}"
        );
    }
    assert_eq!(cal.ln_calls("POST", "Activities"), 1, "{}", cal.ln_log());
    // Once more, now that everything settled: exactly the broken user's jobs fail.
    world.clear_logs();
    let again = lambda.invoke("worker", &event).await?;
    let mut failed = failed_ids(&again);
    failed.sort();
    assert_eq!(failed, broken_msgs, "{again}");
    for i in healthy {
        let mailbox = world.mailbox(0, i);
        assert_eq!(
            world.ews.write_calls_for_mailbox(mailbox),
            0,
            "a redelivered done job writes nothing ({mailbox})"
        );
    }
    assert_eq!(world.ln_writes(), 0, "nor in LN: {}", cal.ln_log());
    delete_succeeded(&sqs, &urls.queue_url, &messages, &failed).await?;

    // The four healthy users: 20 stamped contacts each, once, and 20 links in DynamoDB.
    let env = EnvironmentId::new("prod");
    for i in healthy {
        let counts = world.stamp_counts(world.mailbox(0, i));
        assert_eq!(counts.len(), 20, "items of {}", world.mailbox(0, i));
        assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
        assert!(counts.contains_key(&stamp("prod", &contact_code(19))));
        let user = UserId::new(world.user(0, i));
        assert_eq!(store.link_count(&env, &user, LinkKind::Contact).await?, 20);
    }
    // Their calendars. The LN meeting is one meeting, in alice's mailbox, stamped with its
    // activity; bob and carol hold the invitations Exchange sent, and LN records that they
    // were sent (Sent to Synchronizer).
    let organized = cal.organized(alice);
    assert_eq!(organized.len(), 1, "one meeting in the organizer's mailbox");
    let uid = organized[0].uid.clone();
    let item = cal.ews_item(alice, &uid).ok_or("alice's meeting")?;
    assert_eq!(
        stamp_of(&item),
        Some(format!("ln:prod:activity:{meeting}")),
        "the meeting carries its activity's stamp"
    );
    for u in [bob, carol] {
        let copies: Vec<_> = cal.events(u).into_iter().filter(|e| e.uid == uid).collect();
        assert_eq!(copies.len(), 1, "{u} received the invitation");
        assert!(!copies[0].is_organizer, "{u} holds an attendee copy");
        assert!(
            cal.ln_line(&meeting, &cal.email(u)).sent_to_synchronizer,
            "{u}: Sent to Synchronizer"
        );
    }
    assert!(cal.events(dave).is_empty(), "dave was not invited");
    // Bob's Outlook appointment is one LN activity, from Exchange, referencing its UID.
    let activities = cal.ln_activities();
    assert_eq!(activities.len(), 2, "the meeting and bob's appointment");
    let from_exchange: Vec<_> = activities
        .iter()
        .map(|a| &a.record.data)
        .filter(|a| a.activity != meeting)
        .collect();
    assert_eq!(from_exchange.len(), 1, "{activities:#?}");
    assert_eq!(from_exchange[0].origin, Origin::Exchange);
    assert_eq!(
        from_exchange[0].external_reference.as_deref(),
        Some(dentist.uid.as_str())
    );
    // DynamoDB: the calendar links (one pair per event, in its organizer's partition; the
    // invitations make none) and both calendar cursors of every healthy user.
    let links = |user: &str| {
        let user = UserId::new(user);
        let (store, env) = (&store, &env);
        async move { store.all_links(env, &user, LinkKind::Event).await }
    };
    let alice_links = links(alice).await?;
    assert_eq!(alice_links.len(), 1, "{alice_links:#?}");
    assert_eq!(alice_links[0].ln_key.as_str(), meeting);
    assert_eq!(alice_links[0].exchange_id.as_str(), item.id.0);
    assert_eq!(
        alice_links[0].ical_uid.as_ref().map(|u| u.as_str()),
        Some(uid.as_str())
    );
    let bob_links = links(bob).await?;
    assert_eq!(bob_links.len(), 1, "{bob_links:#?}");
    assert_eq!(bob_links[0].ln_key.as_str(), from_exchange[0].activity);
    assert_eq!(bob_links[0].exchange_id.as_str(), dentist.id.0);
    for u in [alice, bob] {
        let l = links(u).await?;
        assert!(!l[0].is_intent(), "{u}: a real link, not a create intent");
    }
    for u in [carol, dave] {
        assert!(links(u).await?.is_empty(), "{u} has no pair of its own");
    }
    for i in healthy {
        let user = UserId::new(world.user(0, i));
        for kind in [CursorKind::LnActivities, CursorKind::ExchangeCalendar] {
            assert!(
                store.cursor(&env, &user, kind).await?.is_some(),
                "{user}: {kind:?} cursor saved"
            );
        }
    }

    eprintln!("worker phase: {:?}", started.elapsed());

    // 3. The broken user's jobs come back until maxReceiveCount, then sit in the DLQ.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dead = queue.dead_letters().await?;
        assert!(
            dead.iter()
                .all(|j| j.user.as_str() == world.user(0, broken_index)),
            "{dead:?}"
        );
        let mut dead_ids: Vec<String> = dead.iter().map(|j| j.id.as_str().to_owned()).collect();
        dead_ids.sort();
        if dead_ids == broken_jobs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failing jobs never all reached the DLQ: {dead_ids:?}"
        );
        tokio::time::sleep(VISIBILITY).await;
        let back = receive_all(&sqs, &urls.queue_url).await?;
        if back.is_empty() {
            continue;
        }
        let response = lambda.invoke("worker", &sqs_event(&back)).await?;
        let failed = failed_ids(&response);
        assert_eq!(failed.len(), back.len(), "{response}");
        delete_succeeded(&sqs, &urls.queue_url, &back, &failed).await?;
    }
    let broken_user = UserId::new(world.user(0, broken_index));
    for kind in [LinkKind::Contact, LinkKind::Event] {
        assert_eq!(store.link_count(&env, &broken_user, kind).await?, 0);
    }
    for kind in [
        CursorKind::LnContacts,
        CursorKind::ExchangeContacts,
        CursorKind::LnActivities,
        CursorKind::ExchangeCalendar,
    ] {
        assert!(
            store.cursor(&env, &broken_user, kind).await?.is_none(),
            "the failed user's {kind:?} cursor did not move"
        );
    }
    assert!(world.crm_folder(&broken).is_none());

    eprintln!("DLQ phase: {:?}", started.elapsed());

    // 4. Fan-out at 09:30: 1,000 due users, 995 in `bulk` (contacts only) and 5 in `prod`,
    //    whose calendar is due (15-minute interval, next at 09:15) but not its contacts
    //    (next at 10:00).
    let store_ln = world.ln.store();
    for n in 0..995 {
        store_ln.upsert_sync_user(
            "200",
            ln_sim::model::SyncUser {
                user: format!("u{n:04}"),
                name: None,
                active: true,
                email: Some(format!("u{n:04}@bulk.corp.example")),
            },
        )?;
    }
    store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new("bulk"),
            started: true,
            updated_at: chrono::Utc::now(),
        })
        .await?;
    world.clear_logs();
    proxy.take();
    let tick = |time: &str| {
        let mut e: Value =
            serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap_or_default())
                .unwrap_or_default();
        e["time"] = json!(time);
        e
    };
    let jobs_of = |summary: &Value, env: &str| {
        summary["environments"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["env"] == env))
            .map(|e| e["jobs"].clone())
    };
    let t = Instant::now();
    let summary = lambda
        .invoke("scheduler", &tick("2026-11-30T09:30:00Z"))
        .await?;
    eprintln!("1,000-user tick: {:?}", t.elapsed());
    assert_eq!(jobs_of(&summary, "bulk"), Some(json!(995)), "{summary}");
    assert_eq!(jobs_of(&summary, "prod"), Some(json!(5)), "{summary}");
    assert_eq!(summary["jobs"], 1000, "{summary}");
    let calls = proxy.take();
    let batches = count(&calls, "AmazonSQS.SendMessageBatch");
    assert!(batches <= 100, "{batches} SendMessageBatch calls");
    assert_eq!(count(&calls, "AmazonSQS.SendMessage"), 0);
    for set in ["Contacts", "DeletedObjects", "Activities", "Employees"] {
        for company in ["100", "200"] {
            assert!(
                world.ln_gets(company, set).is_empty(),
                "a tick read {set} of {company}"
            );
        }
    }
    // DynamoDB: the environments and user states, and one write per due user; no link reads.
    assert_eq!(
        count(&calls, "DynamoDB_20120810.BatchGetItem"),
        0,
        "{calls:?}"
    );
    // prod's five jobs were its calendar runs: only their due time moved.
    let at = |t: &str| t.parse::<chrono::DateTime<Utc>>();
    for i in 0..5 {
        let state = store
            .user_state(&env, &UserId::new(world.user(0, i)))
            .await?
            .ok_or("prod user state")?;
        assert_eq!(state.next_calendar_run, Some(at("2026-11-30T09:45:00Z")?));
        assert_eq!(state.next_contact_run, Some(at("2026-11-30T10:00:00Z")?));
    }

    // 5. A tick with nobody due (09:31) makes no SQS call at all.
    proxy.take();
    let summary = lambda
        .invoke("scheduler", &tick("2026-11-30T09:31:00Z"))
        .await?;
    assert_eq!(summary["jobs"], 0);
    let calls = proxy.take();
    assert!(
        !calls.iter().any(|c| c.starts_with("AmazonSQS.")),
        "{calls:?}"
    );
    eprintln!("total: {:?}", started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Push (scenario 25) through the push function's URL
// ---------------------------------------------------------------------------------------------

/// The LN webhook's HMAC key, as moto's Secrets Manager holds it for the push function.
const LN_WEBHOOK_SECRET: &str = "e2e-ln-webhook-secret";
/// The StatusFrequency the deployment asks for; the subscriptions in the EWS simulator must
/// carry it (proof that the variable reached the worker's Subscribe).
const STATUS_FREQUENCY_MINUTES: u32 = 15;
/// How long a change may take to come back from a simulator through the push function into
/// SQS. Normally well under a second; generous for a loaded 2-core machine.
const PUSH_WITHIN: Duration = Duration::from_secs(60);

/// Messages in the queue, visible or not (a job a test forgot to process counts too).
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, BoxError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::All)
        .send()
        .await?;
    let attrs = out.attributes.unwrap_or_default();
    let mut n = 0;
    for name in [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ] {
        n += attrs.get(&name).map_or(Ok(0), |v| v.parse::<u64>())?;
    }
    Ok(n)
}

/// Changes the simulators still have to push: events routed to a live EWS subscription and not
/// yet acknowledged, and LN webhooks not yet delivered. Both count a notification until the
/// push function answered it, which it does only after the job is in SQS.
fn pushes_pending(world: &World) -> usize {
    let ews: usize = world
        .ews
        .subscriptions()
        .iter()
        .filter(|s| s.alive)
        .map(|s| s.pending_events)
        .sum();
    let ln = world.ln.webhook_status("100").map_or(0, |s| s.pending);
    ews + ln
}

async fn wait_quiet(world: &World, within: Duration) -> TestResult {
    let deadline = Instant::now() + within;
    while pushes_pending(world) > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "{} notifications still undelivered after {within:?}: {:#?}",
                pushes_pending(world),
                world.ews.subscriptions()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The event source mapping until nothing moves: waits for the simulators' notifications to be
/// answered, hands what is queued to the worker (FIFO batches of at most 10), deletes what it
/// did, and repeats until the simulators are quiet and the queue is empty. Returns the jobs
/// run. Every job must succeed.
async fn drain(
    world: &World,
    lambda: &Lambda,
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<Job>, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut jobs = Vec::new();
    loop {
        wait_quiet(world, PUSH_WITHIN).await?;
        let mut messages = Vec::new();
        loop {
            let batch = receive_once(sqs, url, 0).await?;
            if batch.is_empty() {
                break;
            }
            messages.extend(batch);
        }
        if messages.is_empty() {
            // Quiet and empty. LN logs a webhook a moment after the write, so a last long poll
            // of a second makes sure no notification was still on its way.
            messages = receive_once(sqs, url, 1).await?;
            if messages.is_empty() && pushes_pending(world) == 0 {
                return Ok(jobs);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("still draining after 300 s: {jobs:#?}").into());
        }
        for batch in messages.chunks(10) {
            jobs.extend(
                batch
                    .iter()
                    .map(Received::job)
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let response = lambda.invoke("worker", &sqs_event(batch)).await?;
            assert!(failed_ids(&response).is_empty(), "{response}");
            delete_succeeded(sqs, url, batch, &[]).await?;
        }
    }
}

/// Waits (at most `within`) for what the push function queued after a change, then for the
/// simulators to have nothing more to push; returns every message queued by then and how long
/// the first took to arrive.
async fn wait_for_pushed(
    world: &World,
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    within: Duration,
) -> Result<(Vec<Received>, Duration), BoxError> {
    let start = Instant::now();
    let mut messages = Vec::new();
    while messages.is_empty() {
        if start.elapsed() > within {
            return Err(format!("nothing reached SQS within {within:?}").into());
        }
        // Returns as soon as something is there.
        messages = receive_once(sqs, url, 1).await?;
    }
    let latency = start.elapsed();
    wait_quiet(world, within).await?;
    // The depth counts the messages held here too: anything beyond them came later.
    if queue_depth(sqs, url).await? > messages.len() as u64 {
        messages.extend(receive_all(sqs, url).await?);
    }
    Ok((messages, latency))
}

/// POSTs `body` to `url` with extra headers; the status and the answer's text.
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(u16, String), BoxError> {
    let mut request = http.post(url).timeout(INVOKE_TIMEOUT).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

fn ln_headers(secret: &str, body: &[u8], at: chrono::DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        (
            ln_sim::webhook::SIGNATURE_HEADER,
            ln_sim::webhook::sign(secret.as_bytes(), body),
        ),
        (
            ln_sim::webhook::TIMESTAMP_HEADER,
            at.timestamp().to_string(),
        ),
    ]
}

fn is_event_for(job: &Job, exchange: Option<&str>, activity: Option<&str>) -> bool {
    match &job.kind {
        JobKind::SingleEvent {
            exchange_id,
            activity: key,
        } => {
            exchange_id.as_ref().map(|i| i.as_str()) == exchange
                && key.as_ref().map(|k| k.as_str()) == activity
        }
        _ => false,
    }
}

/// A request the push function must refuse, and the status it must refuse it with.
struct Hostile {
    what: &'static str,
    url: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
}

/// Checks a fixture meant to pass for Exchange's own against messages.xsd, as the harness checks
/// every EWS request; like the harness, only notes it outside CI when the schemas or xmllint
/// are missing.
fn schema_check(xml: &[u8]) -> TestResult {
    let dir = match ews_sim::schema::schema_dir() {
        Ok(dir) => dir,
        Err(e) if ci() => return Err(e.into()),
        Err(e) => {
            eprintln!("note: {e}; the notification fixture is not schema-checked");
            return Ok(());
        }
    };
    match ews_sim::schema::validate_requests(&[String::from_utf8_lossy(xml).into_owned()], &dir) {
        Err(ews_sim::SchemaError::Xmllint(e)) if !ci() => {
            eprintln!("note: xmllint: {e}; the notification fixture is not schema-checked");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// EWS calls that only a pull makes: reading a folder's changes or a calendar window.
fn pull_calls(cal: &CalendarWorld, user: &str) -> BTreeMap<String, usize> {
    cal.ews_ops(user)
        .into_iter()
        .filter(|(op, _)| op == "SyncFolderItems" || op == "CalendarView")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_through_the_function_url() -> TestResult {
    let bin = match cargo_lambda() {
        Ok(bin) => bin,
        Err(e) if ci() => panic!("cargo-lambda is required under CI: {e}"),
        Err(e) => {
            eprintln!("note: skipping the cargo-lambda push test: {e}");
            return Ok(());
        }
    };
    let started = Instant::now();
    let moto = moto();

    // 1. The world: `prod` with alice, bob and carol, calendar and contacts on (LN's defaults).
    let world = World::builder()
        .env("prod", "100", 3, Vec::new())
        .start()
        .await?;
    let cal = calendar_world(world).await?;
    let world = &cal.world;
    let (alice, bob, carol) = ("alice", "bob", "carol");
    // Made before anything runs, so the first pull links them: an LN meeting of alice's with
    // bob and carol, and an appointment bob makes in Outlook.
    let day = Utc::now()
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .ok_or("10:00")?
        .and_utc()
        + chrono::Duration::days(2);
    let meeting = cal.ln_meeting("Push review", day, alice, &[bob, carol])?;
    let mut dentist = NewEvent::new(
        "Dentist",
        (day + chrono::Duration::days(1)).naive_utc(),
        (day + chrono::Duration::days(1) + chrono::Duration::hours(1)).naive_utc(),
    );
    dentist.send = false;
    let dentist = cal.user_creates(bob, dentist)?;

    // AWS: the table, queues (a visibility long enough that nothing comes back while the
    // test holds it), and the secrets, the LN webhook's among them.
    let table = unique_name("push");
    create_table(&moto.dynamodb(), &table).await?;
    let sqs = moto.sqs();
    let urls = create_queues(
        &sqs,
        &unique_name("push-jobs"),
        Duration::from_secs(60),
        MAX_RECEIVES,
    )
    .await?;
    let queue_url = urls.queue_url.as_str();
    let sm = secrets_client(moto.endpoint());
    let ionapi = secret(&sm, "ionapi", &world.ln.ionapi().to_json()).await?;
    let password = secret(&sm, "ews", EWS_PASSWORD).await?;
    let hook_secret = secret(&sm, "ln-webhook", LN_WEBHOOK_SECRET).await?;
    let store = DynamoStateStore::new(moto.dynamodb(), &table);
    let env = EnvironmentId::new("prod");
    store
        .put_environment(&EnvironmentState {
            env: env.clone(),
            started: true,
            updated_at: Utc::now(),
        })
        .await?;

    // The function URL is part of the functions' own variables, so the port comes first.
    let port = free_port()?;
    let function_url = format!("http://127.0.0.1:{port}/lambda-url/push");
    // LN pushes to the function URL; this also turns on LN's pushEnabled, which the scheduler
    // reads to decide on subscriptions.
    world
        .ln
        .enable_webhook("100", &format!("{function_url}/ln/prod"), LN_WEBHOOK_SECRET)?;

    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        vars.insert(k.to_owned(), v.to_owned());
    };
    set("LNSYNC_TABLE", &table);
    set("LNSYNC_QUEUE_URL", queue_url);
    set("LNSYNC_DLQ_URL", &urls.dead_letter_url);
    set("LNSYNC_ENVIRONMENTS", "prod");
    set("LNSYNC_ENV_PROD_COMPANY", "100");
    set("LNSYNC_ENV_PROD_IONAPI_SECRET_ARN", &ionapi);
    set("LNSYNC_ENV_PROD_EWS_USERNAME", EWS_USER);
    set("LNSYNC_ENV_PROD_EWS_PASSWORD_SECRET_ARN", &password);
    set("LNSYNC_ENV_PROD_EXCHANGE_URL", &world.ews.ews_url());
    set("LNSYNC_ENV_PROD_LN_WEBHOOK_SECRET_ARN", &hook_secret);
    set("LNSYNC_PUSH_URL", &function_url);
    set(
        "LNSYNC_PUSH_STATUS_FREQUENCY_MINUTES",
        &STATUS_FREQUENCY_MINUTES.to_string(),
    );
    set("LNSYNC_LOG", "lnsync=info,warn");
    set("AWS_ENDPOINT_URL", moto.endpoint());
    set("AWS_REGION", REGION);
    set("AWS_ACCESS_KEY_ID", "test");
    set("AWS_SECRET_ACCESS_KEY", "test");
    let lambda = Lambda::start(bin, port, &vars).await?;
    eprintln!("push setup: {:?}", started.elapsed());

    // 2. The push function answers (its first request builds it), then a tick at the real
    //    time: a contact, a calendar and a Subscribe job per user.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let t = Instant::now();
    let health = http
        .get(format!("{function_url}/health"))
        .timeout(FIRST_INVOKE_TIMEOUT)
        .send()
        .await?;
    let status = health.status().as_u16();
    let text = health.text().await?;
    assert_eq!(
        (status, text.as_str()),
        (200, "ok"),
        "{}",
        tail(&lambda.watch_log(), 60)
    );
    eprintln!(
        "push function's first request (incl. build): {:?}",
        t.elapsed()
    );
    // Graph's validation handshake (a subscription is created only once the notification and
    // lifecycle URLs echo Graph's token as plain text).
    for url in [
        format!("{function_url}/graph/prod"),
        format!("{function_url}/graph/prod/lifecycle"),
    ] {
        let t = Instant::now();
        let answer = http
            .post(&url)
            .query(&[(
                "validationToken",
                "Validation: Testing client application reachability",
            )])
            .header("content-type", "text/plain; charset=utf-8")
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await?;
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = answer.text().await?;
        assert_eq!(
            (status, text.as_str()),
            (200, "Validation: Testing client application reachability"),
            "{url}"
        );
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        eprintln!("Graph handshake at {url}: {:?}", t.elapsed());
    }

    let mut tick: Value = serde_json::from_str(&std::fs::read_to_string(
        root().join("functions/scheduler/events/scheduled.json"),
    )?)?;
    tick["time"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let t = Instant::now();
    let summary = lambda.invoke("scheduler", &tick).await?;
    eprintln!("scheduler (incl. build): {:?}", t.elapsed());
    assert_eq!(
        summary["jobs"], 9,
        "3 users × (contacts, calendar, subscribe): {summary}"
    );
    let ticked = receive_all(&sqs, queue_url).await?;
    let mut kinds: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &ticked {
        let job = m.job()?;
        kinds
            .entry(job.user.to_string())
            .or_default()
            .push(job.kind.label());
    }
    for user in [alice, bob, carol] {
        assert_eq!(
            kinds.get(user).map(Vec::as_slice),
            Some(&["contacts", "calendar", "subscribe"][..]),
            "jobs of {user}"
        );
    }
    let t = Instant::now();
    let response = lambda.invoke("worker", &sqs_event(&ticked)).await?;
    assert!(failed_ids(&response).is_empty(), "{response}");
    delete_succeeded(&sqs, queue_url, &ticked, &[]).await?;
    // The pull's own writes come back as notifications (from Exchange once the mailboxes are
    // subscribed, from LN for every activity write): echoes, each a job that must succeed.
    let echoes = drain(world, &lambda, &sqs, queue_url).await?;
    eprintln!(
        "first drain (incl. worker build): {:?}, then {} pushed echo jobs",
        t.elapsed(),
        echoes.len()
    );
    assert!(
        echoes.iter().all(|j| j.kind.label() == "event"),
        "only notifications come back: {echoes:#?}"
    );

    // One live subscription per mailbox, at the function URL under the environment's token,
    // with the configured StatusFrequency; DynamoDB knows exactly those.
    let token = store.push_token(&env).await?.ok_or("no push token")?;
    let expected_url = format!("{function_url}/ews/prod/{token}");
    let live: Vec<_> = world
        .ews
        .subscriptions()
        .into_iter()
        .filter(|s| s.alive)
        .collect();
    for user in [alice, bob, carol] {
        let mailbox = cal.email(user);
        let mine: Vec<_> = live
            .iter()
            .filter(|s| s.mailbox.eq_ignore_ascii_case(&mailbox))
            .collect();
        assert_eq!(mine.len(), 1, "live subscriptions of {mailbox}: {live:#?}");
        assert!(mine[0].url.starts_with(&function_url), "{}", mine[0].url);
        assert_eq!(mine[0].url, expected_url);
        assert_eq!(mine[0].status_frequency, STATUS_FREQUENCY_MINUTES);
    }
    assert_eq!(live.len(), 3, "{live:#?}");
    let mut in_sim: Vec<&str> = live.iter().map(|s| s.id.as_str()).collect();
    in_sim.sort_unstable();
    let saved = store.subscriptions(&env).await?;
    let mut in_store: Vec<&str> = saved
        .iter()
        .filter(|s| s.active)
        .map(|s| s.id.as_str())
        .collect();
    in_store.sort_unstable();
    assert_eq!(in_store, in_sim);
    // The pull linked both events.
    let dentist_key = cal
        .ln_activities()
        .into_iter()
        .map(|a| a.record.data)
        .find(|a| a.external_reference.as_deref() == Some(dentist.uid.as_str()))
        .ok_or("bob's appointment has no LN activity")?
        .activity;
    let meeting_uid = cal
        .organized(alice)
        .first()
        .ok_or("alice's meeting is not in Exchange")?
        .uid
        .clone();
    let bob_sub = live
        .iter()
        .find(|s| s.mailbox.eq_ignore_ascii_case(&cal.email(bob)))
        .ok_or("bob's subscription")?
        .id
        .clone();
    eprintln!("subscribed: {:?}", started.elapsed());

    // 3. Exchange → LN. Bob renames his appointment in Outlook; Exchange notifies the push
    //    function, which queues one event job; the worker syncs that event alone.
    assert_eq!(queue_depth(&sqs, queue_url).await?, 0);
    world.clear_logs();
    cal.user_edits(
        bob,
        &dentist.id,
        ews_sim::EventEdit {
            subject: Some("Dentist (moved to the new practice)".into()),
            ..Default::default()
        },
    )?;
    let (pushed, latency) = wait_for_pushed(world, &sqs, queue_url, PUSH_WITHIN).await?;
    eprintln!("Outlook edit → SQS: {latency:?}");
    let jobs = pushed
        .iter()
        .map(Received::job)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(jobs.len(), 1, "one job, no pull: {jobs:#?}");
    assert_eq!(jobs[0].user.as_str(), bob);
    assert_eq!(jobs[0].kind.label(), "event");
    assert!(
        is_event_for(&jobs[0], Some(dentist.id.0.as_str()), None),
        "{jobs:#?}"
    );
    // Exchange's view: the notification was answered OK at the first attempt.
    let notes = world.ews.notifications_for(&bob_sub);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let delivery = notes[0].push.as_ref().ok_or("no delivery record")?;
    assert_eq!(
        (
            notes[0].http_status,
            notes[0].response_codes.as_slice(),
            delivery.error.as_deref(),
            delivery.attempt
        ),
        (200, &["OK".to_owned()][..], None, 1),
        "{notes:#?}"
    );
    assert!(delivery.events.iter().any(|e| e == "ModifiedEvent"));
    world.validate_ews_requests()?;
    let captured = notes[0].body.clone();
    world.clear_logs();
    let t = Instant::now();
    let response = lambda.invoke("worker", &sqs_event(&pushed)).await?;
    eprintln!("worker, one pushed Exchange event: {:?}", t.elapsed());
    assert!(failed_ids(&response).is_empty(), "{response}");
    delete_succeeded(&sqs, queue_url, &pushed, &[]).await?;
    assert_eq!(
        cal.ln_activity(&dentist_key)
            .ok_or("the activity is gone")?
            .record
            .data
            .subject
            .as_deref(),
        Some("Dentist (moved to the new practice)")
    );
    assert!(pull_calls(&cal, bob).is_empty(), "{:?}", cal.ews_ops(bob));
    assert_eq!(cal.ln_feed_reads(), 0, "no LN feed read:\n{}", cal.ln_log());
    let echoes = drain(world, &lambda, &sqs, queue_url).await?;
    eprintln!("LN's echo of that write: {} jobs", echoes.len());

    // 4. LN → Exchange. An LN user renames alice's meeting; LN's signed webhook reaches the
    //    push function, which queues one event job for whoever owns it; the worker updates the
    //    meeting in alice's mailbox, and Exchange the invitations.
    assert_eq!(queue_depth(&sqs, queue_url).await?, 0);
    world.clear_logs();
    world.ln.clear_webhook_deliveries();
    cal.ln_patch(&meeting, json!({"subject": "Push review (moved by LN)"}))?;
    let (pushed, latency) = wait_for_pushed(world, &sqs, queue_url, PUSH_WITHIN).await?;
    eprintln!("LN edit → SQS: {latency:?}");
    let jobs = pushed
        .iter()
        .map(Received::job)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(jobs.len(), 1, "one job, no pull: {jobs:#?}");
    assert!(jobs[0].user.is_any(), "{jobs:#?}");
    assert!(is_event_for(&jobs[0], None, Some(&meeting)), "{jobs:#?}");
    let hooks = world.ln.webhook_deliveries();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(
        (
            hooks[0].key.as_str(),
            hooks[0].last_status,
            hooks[0].attempts
        ),
        (meeting.as_str(), Some(202), 1),
        "{hooks:#?}"
    );
    let hook_body = hooks[0].body.clone();
    let t = Instant::now();
    let response = lambda.invoke("worker", &sqs_event(&pushed)).await?;
    eprintln!("worker, one pushed LN event: {:?}", t.elapsed());
    assert!(failed_ids(&response).is_empty(), "{response}");
    delete_succeeded(&sqs, queue_url, &pushed, &[]).await?;
    let item = cal.ews_item(alice, &meeting_uid).ok_or("alice's meeting")?;
    assert_eq!(
        item.item.subject.as_deref(),
        Some("Push review (moved by LN)")
    );
    for u in [bob, carol] {
        let copy = cal
            .events(u)
            .into_iter()
            .find(|e| e.uid == meeting_uid)
            .ok_or("no invitation")?;
        assert_eq!(
            copy.subject.as_deref(),
            Some("Push review (moved by LN)"),
            "{u}'s copy"
        );
    }
    for u in [alice, bob, carol] {
        assert!(pull_calls(&cal, u).is_empty(), "{u}: {:?}", cal.ews_ops(u));
    }
    assert_eq!(cal.ln_feed_reads(), 0, "no LN feed read:\n{}", cal.ln_log());
    // The update changed bob's and carol's copies too, and their notifications come back as
    // jobs of theirs. Those runs also finish R19: the first drain ran their calendars alongside
    // alice's, so they could meet their copies before her meeting had a link, which leaves their
    // lines' *Synchronized* to a later run of theirs. The echoes converge instead of looping (`drain` gives up on jobs that never
    // stop coming).
    let echoes = drain(world, &lambda, &sqs, queue_url).await?;
    eprintln!(
        "Exchange's echo of that update: {} jobs; scenario done at {:?}",
        echoes.len(),
        started.elapsed()
    );
    for u in [bob, carol] {
        let line = cal.ln_line(&meeting, &cal.email(u));
        assert!(
            line.sent_to_synchronizer && line.synchronized,
            "{u}: {line:?}"
        );
    }

    // 5. Hostile requests are refused before anything is queued.
    let fixture = |name: &str| std::fs::read(root().join("functions/push/events").join(name));
    let ews_url = |token: &str| format!("{function_url}/ews/prod/{token}");
    let soap = || vec![("content-type", "text/xml; charset=utf-8".to_owned())];
    let stale = Utc::now() - chrono::Duration::minutes(10);
    // "Valid-looking": the made-up notification is one Exchange could have sent.
    schema_check(&fixture("ews-send-notification.xml")?)?;
    let cases = vec![
        Hostile {
            what: "a genuine notification, replayed under a wrong token",
            url: ews_url("wrong-token"),
            body: captured.into_bytes(),
            headers: soap(),
            status: 403,
        },
        Hostile {
            what: "the right token, a subscription nobody made",
            url: ews_url(&token),
            body: fixture("ews-send-notification.xml")?,
            headers: soap(),
            status: 403,
        },
        Hostile {
            what: "the right token, a DOCTYPE (entity expansion, external entity)",
            url: ews_url(&token),
            body: fixture("ews-doctype.xml")?,
            headers: soap(),
            status: 400,
        },
        Hostile {
            what: "a Graph change notification with another clientState",
            url: format!("{function_url}/graph/prod"),
            body: fixture("graph-notification.json")?,
            headers: vec![("content-type", "application/json".to_owned())],
            status: 403,
        },
        Hostile {
            what: "an LN webhook signed with another key",
            url: format!("{function_url}/ln/prod"),
            body: fixture("ln-webhook.json")?,
            headers: ln_headers("not-the-secret", &fixture("ln-webhook.json")?, Utc::now()),
            status: 401,
        },
        Hostile {
            what: "LN's genuine webhook, replayed ten minutes later",
            url: format!("{function_url}/ln/prod"),
            body: hook_body.clone().into_bytes(),
            headers: ln_headers(LN_WEBHOOK_SECRET, hook_body.as_bytes(), stale),
            status: 401,
        },
        Hostile {
            what: "a correctly signed DOCTYPE",
            url: format!("{function_url}/ln/prod"),
            body: fixture("ews-doctype.xml")?,
            headers: ln_headers(LN_WEBHOOK_SECRET, &fixture("ews-doctype.xml")?, Utc::now()),
            status: 400,
        },
    ];
    for case in cases {
        let (status, text) = post(&http, &case.url, case.body, &case.headers).await?;
        assert_eq!(status, case.status, "{}: {text}", case.what);
        assert_eq!(
            queue_depth(&sqs, queue_url).await?,
            0,
            "{}: queued something",
            case.what
        );
    }
    eprintln!("push test total: {:?}", started.elapsed());
    Ok(())
}
