//! Graph change notifications end to end: `POST /v1.0/subscriptions` with the validationToken
//! handshake against a receiver in the test (echo, wrong echo, 500, timeout), change
//! notifications for created/updated/deleted events and contacts (ids a Graph GET resolves,
//! etags, clientState), batching, retries with growing gaps then dropping, renewal, expiry
//! (on the timer and by the clock) with `subscriptionRemoved`, lifecycle events from the
//! `SimHandle`, pausing with `missed`, reauthorization, deletion, and request errors.
//! Time is scaled so everything runs in seconds.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Utc};
use ews_sim::graph::delivery::fmt_time;
use ews_sim::graph::{graph_item_id, parse_graph_item_id};
use ews_sim::{
    Contact, DistinguishedFolder, EventEdit, EwsSim, Item, LifecycleEvent, NewEvent, Pattern,
    Range, Recurrence, SimConfig,
};
use serde_json::{Value, json};
use tokio::time::Instant;

type TestResult = Result<(), Box<dyn Error>>;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
/// Properties of `microsoft.graph.subscription` in the CSDL subset (plus `id` from `entity`).
const SUBSCRIPTION_PROPERTIES: [&str; 15] = [
    "id",
    "applicationId",
    "changeType",
    "clientState",
    "creatorId",
    "encryptionCertificate",
    "encryptionCertificateId",
    "expirationDateTime",
    "includeResourceData",
    "latestSupportedTlsVersion",
    "lifecycleNotificationUrl",
    "notificationQueryOptions",
    "notificationUrl",
    "notificationUrlAppId",
    "resource",
];

// ---------------------------------------------------------------- the receiver

/// How the receiver answers the validation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Validation {
    Echo,
    /// 200 text/plain with the token still URL-encoded.
    EncodedEcho,
    Status(u16),
    /// Answers after this long.
    Slow(Duration),
}

/// One POST as it arrived.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    path: String,
    content_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Script {
    validation: HashMap<String, Validation>,
    /// Status answered to notifications, per path (default 202).
    status: HashMap<String, u16>,
    /// Delay before answering notifications, per path.
    delay: HashMap<String, Duration>,
    got: Vec<Got>,
    validations: Vec<(String, String)>,
}

/// A webhook endpoint on a local port: `/notify` and `/lifecycle`.
#[derive(Clone)]
struct Receiver {
    base: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    async fn start() -> Result<Receiver, Box<dyn Error>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let r = Receiver {
            base: format!("http://{}", listener.local_addr()?),
            script: Arc::default(),
        };
        let app = Router::new()
            .route("/{path}", post(on_post))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(r)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn validate_with(&self, path: &str, v: Validation) {
        self.script().validation.insert(format!("/{path}"), v);
    }

    fn answer(&self, path: &str, status: u16) {
        self.script().status.insert(format!("/{path}"), status);
    }

    fn delay(&self, path: &str, d: Duration) {
        self.script().delay.insert(format!("/{path}"), d);
    }

    fn got(&self, path: &str) -> Vec<Got> {
        let p = format!("/{path}");
        self.script()
            .got
            .iter()
            .filter(|g| g.path == p)
            .cloned()
            .collect()
    }

    /// Waits until `path` got at least `n` POSTs.
    async fn wait(&self, path: &str, n: usize, timeout: Duration) -> Result<Vec<Got>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got(path);
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{path}: {} of {n} POSTs after {timeout:?}: {:?}",
                    got.len(),
                    got.iter().map(|g| &g.body).collect::<Vec<_>>()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn on_post(
    State(r): State<Receiver>,
    axum::extract::Path(path): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let path = format!("/{path}");
    if let Some(token) = q.get("validationToken") {
        let mode = {
            let mut s = r.script();
            s.validations.push((path.clone(), token.clone()));
            s.validation.get(&path).copied().unwrap_or(Validation::Echo)
        };
        let plain = |status: StatusCode, text: String| {
            (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
        };
        return match mode {
            Validation::Echo => plain(StatusCode::OK, token.clone()),
            Validation::EncodedEcho => plain(StatusCode::OK, token.replace(' ', "%20")),
            Validation::Status(s) => plain(
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                token.clone(),
            ),
            Validation::Slow(d) => {
                tokio::time::sleep(d).await;
                plain(StatusCode::OK, token.clone())
            }
        };
    }
    let (status, delay) = {
        let mut s = r.script();
        let status = s.status.get(&path).copied().unwrap_or(202);
        let delay = s.delay.get(&path).copied();
        s.got.push(Got {
            at: Instant::now(),
            path: path.clone(),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        });
        (status, delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

// ---------------------------------------------------------------- the Graph client side

struct Env {
    sim: EwsSim,
    http: reqwest::Client,
    token: String,
    rx: Receiver,
}

/// A sim with Alice and Bob, fast delivery, a token, and a receiver.
async fn env_with(f: impl FnOnce(&mut SimConfig)) -> Result<Env, Box<dyn Error>> {
    let mut config = SimConfig::default();
    config.graph_push.batch_window_ms = 20;
    config.graph_push.minute_ms = 10;
    config.graph_push.retry_base_ms = 10;
    config.graph_push.validation_timeout_ms = 2_000;
    f(&mut config);
    let sim = EwsSim::start_with(config).await?;
    sim.add_mailbox(ALICE)?;
    sim.add_mailbox(BOB)?;
    let http = reqwest::Client::new();
    let token = new_token(&http, &sim).await?;
    let rx = Receiver::start().await?;
    Ok(Env {
        sim,
        http,
        token,
        rx,
    })
}

/// An access token from the sim's Entra token endpoint.
async fn new_token(http: &reqwest::Client, sim: &EwsSim) -> Result<String, Box<dyn Error>> {
    let answer: Value = http
        .post(format!("{}/contoso/oauth2/v2.0/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "lnsync"),
            ("client_secret", "graph-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(answer["access_token"]
        .as_str()
        .ok_or(format!("no token: {answer}"))?
        .to_string())
}

async fn env() -> Result<Env, Box<dyn Error>> {
    env_with(|_| {}).await
}

impl Env {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Box<dyn Error>> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, value))
    }

    /// A subscription request on Alice's events, both URLs on the receiver, one hour.
    fn request(&self) -> Value {
        json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": self.rx.url("notify"),
            "lifecycleNotificationUrl": self.rx.url("lifecycle"),
            "resource": format!("/users/{ALICE}/events"),
            "expirationDateTime": fmt_time(self.sim.now() + TimeDelta::hours(1)),
            "clientState": "s3cret-state",
        })
    }

    async fn subscribe(&self, body: Value) -> Result<(u16, Value), Box<dyn Error>> {
        self.call(reqwest::Method::POST, "/v1.0/subscriptions", Some(body))
            .await
    }

    /// Creates a subscription that must succeed; returns its id.
    async fn subscribed(&self, body: Value) -> Result<String, Box<dyn Error>> {
        let (status, v) = self.subscribe(body).await?;
        if status != 201 {
            return Err(format!("subscribe: {status} {v}").into());
        }
        Ok(v["id"].as_str().ok_or("no id")?.to_string())
    }
}

fn at(h: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 6, 1)
        .and_then(|d| d.and_hms_opt(h, 0, 0))
        .unwrap_or_default()
}

/// The `value` entries of every POST, flattened.
fn entries(got: &[Got]) -> Vec<Value> {
    got.iter()
        .flat_map(|g| g.body["value"].as_array().cloned().unwrap_or_default())
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn validated_subscription_notifies_created_updated_deleted_events() -> TestResult {
    let e = env().await?;
    let (status, sub) = e.subscribe(e.request()).await?;
    assert_eq!(status, 201, "{sub}");
    // Only the entity's declared properties (and the context annotation).
    for key in sub.as_object().ok_or("not an object")?.keys() {
        assert!(
            key == "@odata.context" || SUBSCRIPTION_PROPERTIES.contains(&key.as_str()),
            "undeclared property {key}"
        );
    }
    let id = sub["id"].as_str().ok_or("no id")?.to_string();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "subscription ids are GUIDs: {id}"
    );
    assert_eq!(sub["changeType"], "created,updated,deleted");
    assert_eq!(sub["clientState"], "s3cret-state");
    assert_eq!(sub["applicationId"], "lnsync");
    assert_eq!(sub["resource"], format!("/users/{ALICE}/events"));

    // Both URLs were validated, with a token that needs URL-decoding.
    let validations = e.rx.script().validations.clone();
    assert_eq!(
        validations
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>(),
        ["/notify", "/lifecycle"]
    );
    assert!(validations[0].1.contains(' '), "{:?}", validations[0].1);
    let records = e.sim.graph_outgoing_for(&id);
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.operation.as_deref() == Some("validation")
                && r.http_status == 200
                && r.push.as_ref().is_some_and(|p| p.error.is_none()))
    );
    assert_eq!(e.sim.count_operation("subscriptions.create"), 1);

    // Created.
    let created = e
        .sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    let got = e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    assert!(
        got[0]
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        got[0].content_type
    );
    let n = &entries(&got)[0];
    let gid = graph_item_id(&created.id);
    assert_eq!(n["subscriptionId"], id.as_str());
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["clientState"], "s3cret-state");
    assert!(uuid::Uuid::parse_str(n["tenantId"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(
        n["subscriptionExpirationDateTime"],
        sub["expirationDateTime"]
    );
    assert_eq!(n["resource"], format!("Users/{ALICE}/Events/{gid}"));
    let rd = &n["resourceData"];
    assert_eq!(rd["@odata.type"], "#Microsoft.Graph.Event");
    assert_eq!(rd["@odata.id"], n["resource"]);
    assert_eq!(rd["id"], gid.as_str());
    assert_eq!(
        rd["@odata.etag"],
        format!("W/\"{}\"", created.change_key.as_str())
    );
    // The id is a Graph id that Graph itself resolves.
    assert_eq!(parse_graph_item_id(&gid)?, created.id);
    let (status, event) = e
        .call(
            reqwest::Method::GET,
            &format!("/v1.0/users/{ALICE}/events/{gid}"),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["id"], gid.as_str());
    assert_eq!(event["subject"], "Review");

    // Updated: the etag follows the ChangeKey.
    let ck = e.sim.user_edit_event(
        ALICE,
        &created.id,
        EventEdit {
            subject: Some("Review (moved)".into()),
            ..EventEdit::default()
        },
    )?;
    let got = e.rx.wait("notify", 2, Duration::from_secs(5)).await?;
    let n = &entries(&got[1..])[0];
    assert_eq!(n["changeType"], "updated");
    assert_eq!(n["resourceData"]["id"], gid.as_str());
    assert_eq!(
        n["resourceData"]["@odata.etag"],
        format!("W/\"{}\"", ck.as_str())
    );

    // Deleted (Outlook moves it to Deleted Items: gone from the calendar).
    e.sim.user_delete_event(ALICE, &created.id, false)?;
    let got = e.rx.wait("notify", 3, Duration::from_secs(5)).await?;
    let n = &entries(&got[2..])[0];
    assert_eq!(n["changeType"], "deleted");
    assert_eq!(n["resourceData"]["id"], gid.as_str());

    // Bob's calendar is not Alice's resource; each attempt was logged as delivered.
    e.sim
        .user_create_event(BOB, NewEvent::new("Other", at(9), at(10)))?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(e.rx.got("notify").len(), 3);
    let sent: Vec<_> = e
        .sim
        .graph_outgoing_for(&id)
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("notification"))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.http_status == 202
        && r.mailbox.as_deref() == Some(ALICE)
        && r.push.as_ref().is_some_and(|p| p.attempt == 1)));
    let info = e.sim.graph_subscriptions(ALICE);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].notifications_delivered, 3);
    assert_eq!(info[0].client_state.as_deref(), Some("s3cret-state"));
    Ok(())
}

#[tokio::test]
async fn failed_validation_creates_nothing() -> TestResult {
    let e = env_with(|c| c.graph_push.validation_timeout_ms = 300).await?;
    let cases = [
        (
            "notify",
            Validation::EncodedEcho,
            "Response must exactly match",
        ),
        (
            "notify",
            Validation::Status(500),
            "must respond with 200 OK",
        ),
        (
            "notify",
            Validation::Status(202),
            "must respond with 200 OK",
        ),
        (
            "notify",
            Validation::Slow(Duration::from_secs(1)),
            "timed out",
        ),
        // The lifecycle URL is validated too.
        (
            "lifecycle",
            Validation::Status(404),
            "must respond with 200 OK",
        ),
    ];
    for (path, mode, message) in cases {
        e.rx.validate_with("notify", Validation::Echo);
        e.rx.validate_with("lifecycle", Validation::Echo);
        e.rx.validate_with(path, mode);
        let (status, v) = e.subscribe(e.request()).await?;
        assert_eq!(status, 400, "{mode:?}: {v}");
        assert_eq!(v["error"]["code"], "InvalidRequest", "{mode:?}: {v}");
        let text = v["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{mode:?}: {text}");
    }
    assert!(e.sim.graph_subscriptions(ALICE).is_empty());
    let (status, list) = e
        .call(reqwest::Method::GET, "/v1.0/subscriptions", None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(list["value"], json!([]));
    // Nothing is delivered for a subscription that was never made.
    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(e.rx.got("notify").is_empty());
    let failed = e
        .sim
        .graph_outgoing()
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("validation"))
        .filter(|r| r.push.as_ref().is_some_and(|p| p.error.is_some()))
        .count();
    assert_eq!(failed, 5);
    Ok(())
}

#[tokio::test]
async fn bad_requests_are_refused_before_validation() -> TestResult {
    let e = env_with(|c| {
        c.allowed_impersonation = Some(vec![ALICE.into()]);
        c.graph_push.max_lifetime_minutes = 4_230;
    })
    .await?;
    let with = |k: &str, v: Value| {
        let mut r = e.request();
        r[k] = v;
        r
    };
    let now = e.sim.now();
    let cases = [
        (
            with("clientState", json!("x".repeat(129))),
            400,
            "InvalidRequest",
        ),
        (
            with(
                "expirationDateTime",
                json!(fmt_time(now + TimeDelta::minutes(4_231))),
            ),
            400,
            "ExtensionError",
        ),
        (
            with(
                "expirationDateTime",
                json!(fmt_time(now - TimeDelta::minutes(1))),
            ),
            400,
            "ExtensionError",
        ),
        (
            with("changeType", json!("created,moved")),
            400,
            "InvalidRequest",
        ),
        (
            with("resource", json!("/users/alice@corp.example/messages")),
            400,
            "InvalidRequest",
        ),
        (
            with("resource", json!("/users/nobody@corp.example/events")),
            404,
            "ErrorInvalidUser",
        ),
        (
            with("resource", json!(format!("/users/{BOB}/events"))),
            403,
            "ErrorAccessDenied",
        ),
        (
            with("notificationUrl", json!("not a url")),
            400,
            "InvalidRequest",
        ),
    ];
    for (body, status, code) in cases {
        let (got, v) = e.subscribe(body.clone()).await?;
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    // 128 characters and exactly the longest lifetime are fine.
    let mut ok = with("clientState", json!("x".repeat(128)));
    ok["expirationDateTime"] = json!(fmt_time(e.sim.now() + TimeDelta::minutes(4_229)));
    assert_eq!(e.subscribe(ok).await?.0, 201);
    // Only the one good request reached the receiver.
    assert_eq!(e.rx.script().validations.len(), 2);
    // Without a token: 401.
    let resp = e
        .http
        .post(format!("{}/v1.0/subscriptions", e.sim.base_url()))
        .json(&e.request())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn subscription_limit_per_mailbox() -> TestResult {
    let e = env_with(|c| c.graph_push.max_subscriptions_per_mailbox = 2).await?;
    e.subscribed(e.request()).await?;
    let second = e.subscribed(e.request()).await?;
    let (status, v) = e.subscribe(e.request()).await?;
    assert_eq!(status, 403, "{v}");
    // Deleting one makes room.
    let (status, _) = e
        .call(
            reqwest::Method::DELETE,
            &format!("/v1.0/subscriptions/{second}"),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    assert_eq!(e.subscribe(e.request()).await?.0, 201);
    Ok(())
}

#[tokio::test]
async fn changes_close_together_share_a_post() -> TestResult {
    let e = env_with(|c| {
        c.graph_push.batch_window_ms = 300;
        c.graph_push.max_notifications_per_post = 2;
    })
    .await?;
    e.subscribed(e.request()).await?;
    for h in 9..12 {
        e.sim
            .user_create_event(ALICE, NewEvent::new("Block", at(h), at(h + 1)))?;
    }
    let got = e.rx.wait("notify", 2, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got_all = e.rx.got("notify");
    assert_eq!(got_all.len(), 2, "{:?}", got);
    let sizes: Vec<usize> = got_all
        .iter()
        .map(|g| g.body["value"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [2, 1]);
    assert!(
        entries(&got_all)
            .iter()
            .all(|n| n["changeType"] == "created")
    );
    Ok(())
}

#[tokio::test]
async fn failing_receiver_is_retried_with_growing_gaps_then_dropped() -> TestResult {
    // One minute = 10 ms: the 4-hour window is 2.4 s; gaps 10, 20, 40 … ms.
    let e = env().await?;
    let id = e.subscribed(e.request()).await?;
    e.rx.answer("notify", 500);
    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    // 1 try + 7 retries (10+20+…+640 = 1270 ms; one more gap of 1280 would pass 2400).
    let got = e.rx.wait("notify", 8, Duration::from_secs(10)).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while e
        .sim
        .graph_subscription(&id)
        .is_some_and(|s| s.notifications_dropped == 0)
    {
        assert!(Instant::now() < deadline, "never dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = e.rx.got("notify");
    assert_eq!(got_all.len(), 8, "{} POSTs", got_all.len());
    // Every retry carries the same notification.
    assert!(got.iter().all(|g| g.body == got[0].body));
    // Each gap is at least the doubled one before it (arrivals can only be later than
    // planned, never earlier).
    let gaps: Vec<Duration> = got_all.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps.iter().enumerate() {
        assert!(*gap >= Duration::from_millis(10 << i), "gap {i}: {gaps:?}");
    }
    assert!(gaps[6] > gaps[0] * 4, "gaps must grow: {gaps:?}");
    let attempts: Vec<u32> = e
        .sim
        .graph_outgoing_for(&id)
        .iter()
        .filter(|r| r.operation.as_deref() == Some("notification"))
        .map(|r| {
            assert_eq!(r.http_status, 500);
            r.push.as_ref().map_or(0, |p| p.attempt)
        })
        .collect();
    assert_eq!(attempts, (1..=8).collect::<Vec<_>>());
    let info = e.sim.graph_subscription(&id).ok_or("gone")?;
    assert_eq!(
        (
            info.notifications_dropped,
            info.failed_attempts,
            info.active
        ),
        (1, 8, true)
    );

    // The subscription lives on: once the receiver is back, new changes arrive.
    e.rx.answer("notify", 200);
    e.sim
        .user_create_event(ALICE, NewEvent::new("Later", at(11), at(12)))?;
    let got = e.rx.wait("notify", 9, Duration::from_secs(5)).await?;
    assert_eq!(entries(&got[8..])[0]["changeType"], "created");
    Ok(())
}

#[tokio::test]
async fn slow_receiver_counts_as_failed() -> TestResult {
    let e = env_with(|c| {
        c.graph_push.notification_timeout_ms = 100;
        // Real minutes: the retry is due in one, well after the test.
        c.graph_push.minute_ms = 60_000;
        c.graph_push.retry_base_ms = 60_000;
    })
    .await?;
    let id = e.subscribed(e.request()).await?;
    // Answers 202, but after the timeout: a failure, to be retried.
    e.rx.delay("notify", Duration::from_millis(400));
    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    assert!(
        e.sim
            .wait_for_graph_outgoing("notification", 1, Duration::from_secs(5))
            .await
    );
    let rec = e
        .sim
        .graph_outgoing_for(&id)
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("notification"))
        .ok_or("no record")?;
    assert_eq!(rec.http_status, 0);
    let error = rec.push.and_then(|p| p.error).unwrap_or_default();
    assert!(error.contains("no answer within 100 ms"), "{error}");
    let info = e.sim.graph_subscription(&id).ok_or("gone")?;
    assert_eq!((info.failed_attempts, info.pending_changes), (1, 1));
    Ok(())
}

#[tokio::test]
async fn renewal_moves_expiration_and_expiry_stops_delivery() -> TestResult {
    let mut e = env().await?;
    let mut req = e.request();
    req["expirationDateTime"] = json!(fmt_time(e.sim.now() + TimeDelta::minutes(5)));
    let id = e.subscribed(req).await?;
    let path = format!("/v1.0/subscriptions/{id}");

    // Renew to 2 hours from now.
    let until = fmt_time(e.sim.now() + TimeDelta::hours(2));
    let (status, v) = e
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "expirationDateTime": until })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["expirationDateTime"], until.as_str());
    let (_, v) = e.call(reqwest::Method::GET, &path, None).await?;
    assert_eq!(v["expirationDateTime"], until.as_str());
    // Renewal obeys the same limits.
    let too_far = fmt_time(e.sim.now() + TimeDelta::minutes(10_081));
    let (status, v) = e
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "expirationDateTime": too_far })),
        )
        .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("ExtensionError"))
    );
    let (status, _) = e
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "clientState": "other" })),
        )
        .await?;
    assert_eq!(status, 400);

    // The clock passes the expiration: removed, subscriptionRemoved, no more delivery.
    e.sim.advance_clock(TimeDelta::hours(3));
    // (The old access token expired with the clock too.)
    e.token = new_token(&e.http, &e.sim).await?;
    let got = e.rx.wait("lifecycle", 1, Duration::from_secs(5)).await?;
    let n = &entries(&got)[0];
    assert_eq!(n["lifecycleEvent"], "subscriptionRemoved");
    assert_eq!(n["subscriptionId"], id.as_str());
    assert_eq!(n["clientState"], "s3cret-state");
    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(e.rx.got("notify").is_empty());
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, v) = e.call(method, &path, None).await?;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (404, Some("ResourceNotFound"))
        );
    }
    let (status, _) = e
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "expirationDateTime": fmt_time(e.sim.now() + TimeDelta::hours(1)) })),
        )
        .await?;
    assert_eq!(status, 404);
    let info = e.sim.graph_subscription(&id).ok_or("forgotten")?;
    assert!(!info.active);
    assert_eq!(info.removed.map(|r| r.reason).as_deref(), Some("expired"));
    Ok(())
}

#[tokio::test]
async fn subscriptions_expire_on_time_without_other_activity() -> TestResult {
    let e = env().await?;
    let mut req = e.request();
    let expires = Utc::now() + TimeDelta::milliseconds(1_500);
    req["expirationDateTime"] = json!(fmt_time(expires));
    let id = e.subscribed(req).await?;
    let got = e.rx.wait("lifecycle", 1, Duration::from_secs(5)).await?;
    assert!(Utc::now() >= expires);
    assert_eq!(entries(&got)[0]["lifecycleEvent"], "subscriptionRemoved");
    assert_eq!(entries(&got)[0]["subscriptionId"], id.as_str());
    Ok(())
}

#[tokio::test]
async fn lifecycle_events_from_the_handle() -> TestResult {
    let e = env_with(|c| {
        // Reauthorization grace: 3 minutes of 10 ms.
        c.graph_push.reauthorization_grace_minutes = 3;
    })
    .await?;
    let id = e.subscribed(e.request()).await?;

    // missed.
    assert!(e.sim.graph_lifecycle(&id, LifecycleEvent::Missed));
    let got = e.rx.wait("lifecycle", 1, Duration::from_secs(5)).await?;
    assert_eq!(entries(&got)[0]["lifecycleEvent"], "missed");
    assert_eq!(
        entries(&got)[0]["tenantId"].as_str().map(str::len),
        Some(36)
    );

    // reauthorizationRequired: changes flow during the grace, are lost after it, and flow
    // again once the app reauthorizes.
    assert!(
        e.sim
            .graph_lifecycle(&id, LifecycleEvent::ReauthorizationRequired)
    );
    let got = e.rx.wait("lifecycle", 2, Duration::from_secs(5)).await?;
    assert_eq!(
        entries(&got[1..])[0]["lifecycleEvent"],
        "reauthorizationRequired"
    );
    assert!(
        e.sim
            .graph_subscription(&id)
            .is_some_and(|s| s.reauthorization_required_since.is_some())
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.sim
        .user_create_event(ALICE, NewEvent::new("Lost", at(9), at(10)))?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(e.rx.got("notify").is_empty());
    assert_eq!(
        e.sim.graph_subscription(&id).map(|s| s.changes_lost),
        Some(1)
    );
    let (status, _) = e
        .call(
            reqwest::Method::POST,
            &format!("/v1.0/subscriptions/{id}/reauthorize"),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    assert!(
        e.sim
            .graph_subscription(&id)
            .is_some_and(|s| s.reauthorization_required_since.is_none())
    );
    e.sim
        .user_create_event(ALICE, NewEvent::new("Seen", at(11), at(12)))?;
    e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    assert_eq!(e.sim.count_operation("subscriptions.reauthorize"), 1);

    // subscriptionRemoved also removes it.
    assert!(
        e.sim
            .graph_lifecycle(&id, LifecycleEvent::SubscriptionRemoved)
    );
    let got = e.rx.wait("lifecycle", 3, Duration::from_secs(5)).await?;
    assert_eq!(
        entries(&got[2..])[0]["lifecycleEvent"],
        "subscriptionRemoved"
    );
    let (status, _) = e
        .call(
            reqwest::Method::GET,
            &format!("/v1.0/subscriptions/{id}"),
            None,
        )
        .await?;
    assert_eq!(status, 404);
    assert!(!e.sim.graph_lifecycle(&id, LifecycleEvent::Missed));
    let kinds: Vec<String> = e
        .sim
        .graph_outgoing_for(&id)
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("lifecycle"))
        .flat_map(|r| r.push.map(|p| p.events).unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["missed", "reauthorizationRequired", "subscriptionRemoved"]
    );
    Ok(())
}

#[tokio::test]
async fn paused_delivery_loses_changes_and_sends_missed() -> TestResult {
    let e = env().await?;
    let id = e.subscribed(e.request()).await?;
    e.sim.graph_pause_delivery(ALICE, true);
    e.sim
        .user_create_event(ALICE, NewEvent::new("While paused", at(9), at(10)))?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(e.rx.got("notify").is_empty());
    assert_eq!(e.sim.graph_pause_delivery(ALICE, false), 1);
    let got = e.rx.wait("lifecycle", 1, Duration::from_secs(5)).await?;
    assert_eq!(entries(&got)[0]["lifecycleEvent"], "missed");
    assert_eq!(entries(&got)[0]["subscriptionId"], id.as_str());
    // The lost change never comes; later ones do.
    e.sim
        .user_create_event(ALICE, NewEvent::new("After", at(11), at(12)))?;
    let got = e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.rx.got("notify").len(), 1);
    assert_eq!(entries(&got).len(), 1);
    Ok(())
}

#[tokio::test]
async fn delete_drop_and_expire_stop_delivery() -> TestResult {
    let e = env().await?;
    let deleted = e.subscribed(e.request()).await?;
    let dropped = e.subscribed(e.request()).await?;
    let expired = e.subscribed(e.request()).await?;
    let kept = e.subscribed(e.request()).await?;
    let (status, _) = e
        .call(
            reqwest::Method::DELETE,
            &format!("/v1.0/subscriptions/{deleted}"),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    assert!(e.sim.graph_drop_subscription(&dropped));
    assert!(e.sim.graph_expire_subscription(&expired));
    assert!(!e.sim.graph_drop_subscription(&dropped));
    // Only the expired one says goodbye.
    let got = e.rx.wait("lifecycle", 1, Duration::from_secs(5)).await?;
    assert_eq!(entries(&got)[0]["subscriptionId"], expired.as_str());
    assert_eq!(entries(&got)[0]["lifecycleEvent"], "subscriptionRemoved");

    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ids: Vec<Value> = entries(&e.rx.got("notify"))
        .iter()
        .map(|n| n["subscriptionId"].clone())
        .collect();
    assert_eq!(ids, [json!(kept)]);
    assert_eq!(e.rx.got("lifecycle").len(), 1);
    let (_, list) = e
        .call(reqwest::Method::GET, "/v1.0/subscriptions", None)
        .await?;
    let listed: Vec<&Value> = list["value"]
        .as_array()
        .map(|v| v.iter().map(|s| &s["id"]).collect())
        .unwrap_or_default();
    assert_eq!(listed, [&json!(kept)]);
    assert_eq!(e.sim.graph_subscriptions(ALICE).len(), 4);
    Ok(())
}

#[tokio::test]
async fn contact_subscriptions_notify_contacts() -> TestResult {
    let e = env().await?;
    let mut req = e.request();
    req["resource"] = json!(format!("/users/{ALICE}/contacts"));
    req["changeType"] = json!("created");
    e.subscribed(req).await?;
    let contacts = e.sim.folder_id(ALICE, DistinguishedFolder::Contacts)?;
    let (id, ck) = e.sim.user_create_item(
        ALICE,
        &contacts,
        Item::contact(Contact {
            display_name: Some("Ada".into()),
            ..Contact::default()
        }),
    )?;
    // Not subscribed to updates; an event in the calendar is another resource.
    e.sim.user_update_item(ALICE, &id, |_| {})?;
    e.sim
        .user_create_event(ALICE, NewEvent::new("Review", at(9), at(10)))?;
    let got = e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let all = entries(&e.rx.got("notify"));
    assert_eq!(all.len(), 1, "{all:?}");
    let n = &entries(&got)[0];
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.Contact");
    assert_eq!(
        n["resource"],
        format!("Users/{ALICE}/Contacts/{}", graph_item_id(&id))
    );
    assert_eq!(
        n["resourceData"]["@odata.etag"],
        format!("W/\"{}\"", ck.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn occurrence_changes_notify_the_series_master() -> TestResult {
    let e = env().await?;
    e.subscribed(e.request()).await?;
    let day = NaiveDate::from_ymd_opt(2026, 6, 1).ok_or("date")?;
    let series = e.sim.user_create_event(
        ALICE,
        NewEvent::new("Standup", at(9), at(10)).with_recurrence(Recurrence {
            pattern: Pattern::Daily { interval: 1 },
            range: Range::Numbered {
                start_date: day,
                number_of_occurrences: 3,
            },
        }),
    )?;
    e.rx.wait("notify", 1, Duration::from_secs(5)).await?;
    let view = e.sim.calendar_view(
        ALICE,
        day.and_hms_opt(0, 0, 0).ok_or("time")?.and_utc(),
        (day + TimeDelta::days(5))
            .and_hms_opt(0, 0, 0)
            .ok_or("time")?
            .and_utc(),
    )?;
    assert_eq!(view.len(), 3);
    // Edit the second occurrence, delete the third: each is an update of the master.
    e.sim.user_edit_event(
        ALICE,
        &view[1].id,
        EventEdit {
            subject: Some("Standup (long)".into()),
            ..EventEdit::default()
        },
    )?;
    e.sim.user_delete_event(ALICE, &view[2].id, false)?;
    let got = e.rx.wait("notify", 2, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let all = entries(&e.rx.got("notify"));
    let master = graph_item_id(&series.id);
    let seen: Vec<(Value, Value)> = all
        .iter()
        .map(|n| (n["changeType"].clone(), n["resourceData"]["id"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (json!("created"), json!(master)),
            (json!("updated"), json!(master)),
            (json!("updated"), json!(master)),
        ],
        "{got:?}"
    );
    Ok(())
}
