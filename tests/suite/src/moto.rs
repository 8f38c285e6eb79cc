//! A moto server (the local AWS emulator, DynamoDB + SQS) for the AWS adapters' tests.
//!
//! [`moto`] returns the one server of this test process: the one at `MOTO_ENDPOINT` if set
//! (CI may start one for all test binaries), otherwise moto's server from the repo's `.venv/moto`
//! (created by `make tools`), started through [`LAUNCHER`] on a free port. There is no skipping: without either,
//! the tests fail and say how to get moto. Tests share the server and stay apart by using
//! [`unique_name`]s for their tables and queues, so they can run in parallel (no global reset).
//!
//! A started server is tied to this process through a pipe: a small `sh` watchdog holds the
//! server's pid and kills it when its stdin reaches end-of-file, which happens however this
//! process ends (normal exit, panic, or kill), so no emulator outlives the tests.
//!
//! The server is moto's own, started through [`LAUNCHER`], which closes two gaps between moto
//! 5.2.5 and AWS that the contract suites would otherwise trip over (both are AWS's documented
//! behaviour, not lnsync's wishes):
//! - DynamoDB applies a conditional write atomically per item. moto's server handles requests
//!   on threads without a lock, so two racing conditional writes can both pass; the launcher
//!   serializes DynamoDB requests (only those: an SQS long poll must not stall the server).
//! - SQS FIFO remembers a de-duplication id for five minutes even after the message was
//!   deleted; moto forgets it on delete. The launcher keeps the ids per queue.
//!
//! A server at `MOTO_ENDPOINT` should be started the same way:
//! `.venv/moto/bin/python -c "$(cat launcher.py)" PORT` with the text of [`LAUNCHER`].

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The region every client uses against moto (moto accepts any).
pub const REGION: &str = "us-east-1";

/// The Python program that runs moto's server with the two fixes described in the module docs.
/// Argument: the port. Pinned to moto 5.2.5's internals (the Makefile pins that version); it
/// fails at start, not silently, should they change.
pub const LAUNCHER: &str = r#"
import sys, threading
import moto
from moto.sqs import models as sqs_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

if moto.__version__ != "5.2.5":
    print(f"lnsync moto launcher: written for moto 5.2.5, running {moto.__version__}", file=sys.stderr)

_add_message = sqs_models.Queue.add_message
WINDOW_MS = sqs_models.DEDUPLICATION_TIME_IN_SECONDS * 1000

def add_message(self, message):
    # Fresh sends only (a message moved to a dead-letter queue was received before).
    if self.fifo_queue and message.deduplication_id and message.approximate_receive_count == 0:
        seen = self.__dict__.setdefault("_lnsync_dedup", {})
        first = seen.get(message.deduplication_id)
        if first is not None and message.sent_timestamp - first < WINDOW_MS:
            return
        seen[message.deduplication_id] = message.sent_timestamp
    return _add_message(self, message)

sqs_models.Queue.add_message = add_message

app = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()

def serve(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb:
            return app(environ, start_response)
    return app(environ, start_response)

run_simple("127.0.0.1", int(sys.argv[1]), serve, threaded=True, request_handler=MotoRequestHandler)
"#;

/// How long a freshly started moto server may take to listen (0.6 s idle, more on a busy
/// 2-core CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    /// The watchdog of a server we started; its stdin pipe is the server's lifeline.
    _watchdog: Option<Mutex<Child>>,
}

static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

/// This process's moto server, started on first use. Blocks while starting (about a second).
///
/// # Panics
/// When there is no moto: neither `MOTO_ENDPOINT` nor `.venv/moto/bin/moto_server`.
pub fn moto() -> &'static Moto {
    match MOTO.get_or_init(start) {
        Ok(moto) => moto,
        Err(message) => panic!("{message}"),
    }
}

impl Moto {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A DynamoDB client for this server (static test credentials, [`REGION`]).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// An SQS client for this server (static test credentials, [`REGION`]).
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }
}

/// `prefix-` plus a random suffix: a table or queue name no other test uses. Short enough for
/// SQS (80 characters with `-dlq.fifo`).
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

fn start() -> Result<Moto, String> {
    if let Some(endpoint) = std::env::var("MOTO_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    {
        let addr = socket_of(&endpoint).ok_or_else(|| {
            format!("MOTO_ENDPOINT={endpoint} is not an http://host:port address")
        })?;
        wait_listening(addr, Duration::from_secs(5)).map_err(|()| {
            format!(
                "MOTO_ENDPOINT={endpoint}: nothing listens there; start a server with \
                 lnsync_tests::moto::LAUNCHER, or unset MOTO_ENDPOINT to let the tests start one"
            )
        })?;
        return Ok(Moto {
            endpoint,
            _watchdog: None,
        });
    }
    let server = workspace_root().join(".venv/moto/bin/moto_server");
    if !server.is_file() {
        return Err(format!(
            "moto is needed for the DynamoDB and SQS tests and is not installed: \
             {} is missing. Run `make tools` (creates .venv/moto with moto[server]==5.2.5), \
             or set MOTO_ENDPOINT to a running moto server.",
            server.display()
        ));
    }
    let mut last_error = String::new();
    // A free port can be taken between probing it and moto binding it; try a few.
    for _ in 0..3 {
        match spawn(&server) {
            Ok(moto) => return Ok(moto),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn spawn(server: &std::path::Path) -> Result<Moto, String> {
    let port = free_port().map_err(|e| format!("no free port for moto: {e}"))?;
    let log = std::env::temp_dir().join(format!("lnsync-moto-{port}.log"));
    // sh: start moto in the background, then block reading stdin; end-of-file (this process is
    // gone) or any line kills moto. Background jobs of a non-interactive sh read /dev/null, so
    // only the watchdog holds the pipe.
    let python = server.with_file_name("python");
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#"MOTO_PORT="$2" "$1" -c "$4" "$2" >"$3" 2>&1 & pid=$!; read -r _; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#)
        .arg("moto-watchdog")
        .arg(&python)
        .arg(port.to_string())
        .arg(&log)
        .arg(LAUNCHER)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", server.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if wait_listening(addr, START_TIMEOUT).is_err() {
        // Dropping stdin ends the watchdog, which kills moto.
        drop(watchdog.stdin.take());
        let _ = watchdog.wait();
        let mut output = String::new();
        let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut output));
        return Err(format!(
            "{} did not listen on port {port} within {START_TIMEOUT:?}; its output ({}):\n{output}",
            server.display(),
            log.display()
        ));
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _watchdog: Some(Mutex::new(watchdog)),
    })
}

fn workspace_root() -> PathBuf {
    // tests/suite → the repository root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn socket_of(endpoint: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = endpoint.strip_prefix("http://")?;
    let host_port = rest.split('/').next()?;
    host_port.to_socket_addrs().ok()?.next()
}

fn wait_listening(addr: SocketAddr, timeout: Duration) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(())
}
