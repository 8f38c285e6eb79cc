//! The LN push webhook: the simulator POSTs signed notifications of activity and attendee changes
//! to a listener the test runs, and the test checks them the way a receiver would (with its own
//! HMAC, independent of the simulator's signing code).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ln_sim::model::{Activity, ActivityType, Attendance, Attendee, AttendeeType};
use ln_sim::{
    DeliveryOutcome, IfMatch, LnSim, NewActivity, SimClock, SimConfig, WebhookDelivery,
    WebhookRetry, demo_seed,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Error = Box<dyn std::error::Error>;

const COMPANY: &str = "100";
const SECRET: &str = "prod-webhook-secret";

/// One request the listener got.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    signature: Option<String>,
    timestamp: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Statuses to answer, in order; 200 once used up (or `fallback` when set).
    script: Mutex<VecDeque<u16>>,
    fallback: Mutex<Option<u16>>,
    delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A local HTTP endpoint standing in for lnsync's push function.
struct Listener {
    url: String,
    shared: Arc<Shared>,
}

impl Listener {
    async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/ln/prod", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/ln/prod", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, shared })
    }

    fn answer(&self, statuses: &[u16]) {
        lock(&self.shared.script).extend(statuses);
    }

    fn always(&self, status: u16) {
        *lock(&self.shared.fallback) = Some(status);
    }

    fn slow(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Wait for at least `n` requests and return them all.
    async fn wait_for(&self, n: usize) -> Result<Vec<Received>, Error> {
        wait_until(&format!("{n} webhook requests"), || {
            let received = self.received();
            (received.len() >= n).then_some(received)
        })
        .await
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    lock(&shared.received).push(Received {
        at: Instant::now(),
        signature: header("x-lnsync-signature"),
        timestamp: header("x-lnsync-timestamp"),
        content_type: header("content-type"),
        body: body.to_vec(),
    });
    let delay = *lock(&shared.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = lock(&shared.script)
        .pop_front()
        .or(*lock(&shared.fallback))
        .unwrap_or(200);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until every logged delivery has a final outcome.
async fn settled(sim: &LnSim, n: usize) -> Result<Vec<WebhookDelivery>, Error> {
    wait_until(&format!("{n} settled deliveries"), || {
        let deliveries = sim.webhook_deliveries();
        (deliveries.len() >= n
            && deliveries
                .iter()
                .all(|d| d.outcome != DeliveryOutcome::Pending))
        .then_some(deliveries)
    })
    .await
}

/// The receiver's check, written against the contract rather than the simulator's code.
fn signature_is_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(digest) = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

async fn start(config: SimConfig) -> Result<LnSim, Error> {
    Ok(LnSim::start(config.with_seed(demo_seed(COMPANY, 3, 2))).await?)
}

fn fast_retry(attempts: u32) -> WebhookRetry {
    WebhookRetry::new(attempts, Duration::from_millis(50))
}

fn meeting() -> NewActivity {
    NewActivity {
        activity: Activity {
            activity_type: ActivityType::Appointment,
            subject: Some("Review".into()),
            start: Some(at("2026-12-01T09:00:00Z")),
            end: Some(at("2026-12-01T10:00:00Z")),
            synchronize: true,
            ..Activity::default()
        },
        attendees: vec![
            Attendee {
                attendance: Attendance::MeetingOrganizer,
                attendee_type: AttendeeType::Employee,
                attendee: Some("E00001".into()),
                ..Attendee::default()
            },
            Attendee {
                attendance: Attendance::Required,
                attendee_type: AttendeeType::Contact,
                attendee: Some("CON000001".into()),
                invite: true,
                ..Attendee::default()
            },
        ],
    }
}

/// `(entity, key, change)` of each received notification.
fn summary(received: &[Received]) -> Vec<(String, String, String)> {
    received
        .iter()
        .map(|r| {
            let v = r.json();
            let text = |f: &str| v[f].as_str().unwrap_or_default().to_string();
            (text("entity"), text("key"), text("change"))
        })
        .collect()
}

fn triple(entity: &str, key: &str, change: &str) -> (String, String, String) {
    (entity.into(), key.into(), change.into())
}

#[tokio::test]
async fn an_activity_write_posts_a_signed_notification() -> TestResult {
    // Simulated time far from now: lastModified follows it, the timestamp header must not.
    let clock = SimClock::frozen(at("2026-11-29T10:00:00Z"));
    let sim = start(SimConfig::default().with_clock(clock)).await?;
    let listener = Listener::start().await?;
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    let mut changes = sim.subscribe_changes();

    let created = sim.store().create_activity(COMPANY, meeting())?;
    let key = created.record.data.activity.clone();
    let received = listener.wait_for(3).await?;

    let first = &received[0];
    let event = changes.recv().await?;
    let expected = format!(
        r#"{{"entity":"Activity","key":"{key}","change":"created","lastModified":"2026-11-29T10:00:00Z","id":"{}"}}"#,
        event.id
    );
    assert_eq!(String::from_utf8_lossy(&first.body), expected);
    assert!(signature_is_valid(
        SECRET,
        &first.body,
        first.signature.as_deref()
    ));
    assert!(!signature_is_valid(
        "another-secret",
        &first.body,
        first.signature.as_deref()
    ));
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    let sent: i64 = first.timestamp.as_deref().ok_or("no timestamp")?.parse()?;
    assert!(
        (Utc::now().timestamp() - sent).abs() <= 5,
        "timestamp {sent} is wall-clock time"
    );

    // The deep insert's attendees follow their activity, each with its own id.
    assert_eq!(
        summary(&received),
        vec![
            triple("Activity", &key, "created"),
            triple("Attendee", &format!("{key}/1"), "created"),
            triple("Attendee", &format!("{key}/2"), "created"),
        ]
    );
    let ids: std::collections::HashSet<String> = received
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    for r in &received {
        assert!(signature_is_valid(SECRET, &r.body, r.signature.as_deref()));
    }

    let deliveries = settled(&sim, 3).await?;
    assert!(
        deliveries
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered
                && d.attempts == 1
                && d.last_status == Some(200)
                && d.url == listener.url)
    );
    assert_eq!(deliveries[0].body, expected);
    Ok(())
}

#[tokio::test]
async fn attendee_changes_are_named_by_activity_and_line() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let key = sim
        .store()
        .create_activity(COMPANY, meeting())?
        .record
        .data
        .activity;
    let listener = Listener::start().await?;
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;

    sim.store().patch_attendee(
        COMPANY,
        &key,
        2,
        &json!({"attendanceStatus": "Accepted"}),
        &IfMatch::Any,
    )?;
    sim.store()
        .delete_attendee(COMPANY, &key, 2, &IfMatch::Any)?;
    sim.store().delete_activity(COMPANY, &key, &IfMatch::Any)?;

    let received = listener.wait_for(6).await?;
    assert_eq!(
        summary(&received),
        vec![
            triple("Attendee", &format!("{key}/2"), "modified"),
            triple("Activity", &key, "modified"),
            triple("Attendee", &format!("{key}/2"), "deleted"),
            triple("Activity", &key, "modified"),
            triple("Attendee", &format!("{key}/1"), "deleted"),
            triple("Activity", &key, "deleted"),
        ]
    );
    for r in &received {
        assert!(signature_is_valid(SECRET, &r.body, r.signature.as_deref()));
        assert!(r.json()["lastModified"].as_str().is_some());
        assert!(r.json().get("company").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn nothing_is_sent_unless_push_is_enabled_and_contacts_never() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let listener = Listener::start().await?;

    // Never enabled.
    sim.store().create_activity(COMPANY, meeting())?;
    // Enabled, then disabled.
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    sim.disable_webhook(COMPANY)?;
    assert!(
        !sim.store()
            .read(COMPANY, |d| d.settings.data.push_enabled)?
    );
    sim.store().create_activity(COMPANY, meeting())?;
    // Endpoint configured but LN's push switch turned off in the settings.
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    assert!(
        sim.store()
            .read(COMPANY, |d| d.settings.data.push_enabled)?
    );
    sim.store().set_push_enabled(COMPANY, false)?;
    sim.store().create_activity(COMPANY, meeting())?;
    // Enabled: contacts are not pushed.
    sim.store().set_push_enabled(COMPANY, true)?;
    sim.store()
        .upsert_contact(COMPANY, ln_sim::demo_contact(9))?;
    sim.store().patch_contact(
        COMPANY,
        "CON000001",
        &json!({"jobTitle": "CTO"}),
        &IfMatch::Any,
    )?;

    // A marker write proves the dispatcher caught up: it is the only thing delivered.
    let marker = sim.store().create_activity(
        COMPANY,
        NewActivity {
            attendees: Vec::new(),
            ..meeting()
        },
    )?;
    let received = listener.wait_for(1).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received_later = listener.received();
    assert_eq!(received_later.len(), 1, "{:?}", summary(&received_later));
    assert_eq!(
        summary(&received),
        vec![triple("Activity", &marker.record.data.activity, "created")]
    );
    assert_eq!(sim.webhook_deliveries().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_then_given_up() -> TestResult {
    let sim = start(SimConfig::default().with_webhook_retry(fast_retry(3))).await?;
    let listener = Listener::start().await?;
    listener.always(500);
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;

    sim.store().create_activity(
        COMPANY,
        NewActivity {
            attendees: Vec::new(),
            ..meeting()
        },
    )?;
    let deliveries = settled(&sim, 1).await?;
    let received = listener.received();

    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == received[0].body));
    // Each attempt is signed (and timestamped) on its own.
    assert!(
        received
            .iter()
            .all(|r| signature_is_valid(SECRET, &r.body, r.signature.as_deref()))
    );
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(50), "{gaps:?}");
    assert!(
        gaps[1] >= Duration::from_millis(100),
        "back-off doubles: {gaps:?}"
    );

    let delivery = &deliveries[0];
    assert_eq!(delivery.outcome, DeliveryOutcome::GaveUp);
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.last_status, Some(500));
    let status = sim.webhook_status(COMPANY).ok_or("no status")?;
    assert_eq!(
        (
            status.deliveries,
            status.delivered,
            status.gave_up,
            status.pending
        ),
        (1, 0, 1, 0)
    );
    assert_eq!(status.last_status, Some(500));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_endpoint_is_given_up_with_the_connection_error() -> TestResult {
    let sim = start(SimConfig::default().with_webhook_retry(fast_retry(2))).await?;
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    sim.enable_webhook(COMPANY, &format!("http://127.0.0.1:{port}/ln/prod"), SECRET)?;

    sim.store().create_activity(COMPANY, meeting())?;
    let deliveries = settled(&sim, 3).await?;

    for delivery in &deliveries {
        assert_eq!(delivery.outcome, DeliveryOutcome::GaveUp);
        assert_eq!(delivery.attempts, 2);
        assert_eq!(delivery.last_status, None);
        assert!(
            delivery
                .last_error
                .as_deref()
                .is_some_and(|e| !e.is_empty())
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_delivery_that_recovers_is_delivered_and_keeps_the_order() -> TestResult {
    let sim = start(SimConfig::default().with_webhook_retry(fast_retry(4))).await?;
    let listener = Listener::start().await?;
    // The first notification fails twice; the ones behind it must wait for it.
    listener.answer(&[503, 502]);
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    let mut changes = sim.subscribe_changes();

    let key = sim
        .store()
        .create_activity(COMPANY, meeting())?
        .record
        .data
        .activity;
    let received = listener.wait_for(5).await?;
    let deliveries = settled(&sim, 3).await?;

    let mut expected_ids = Vec::new();
    for _ in 0..3 {
        expected_ids.push(changes.recv().await?.id);
    }
    let ids: Vec<String> = received
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            expected_ids[0].clone(),
            expected_ids[0].clone(),
            expected_ids[0].clone(),
            expected_ids[1].clone(),
            expected_ids[2].clone(),
        ]
    );
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].key, key);
    assert!(
        deliveries
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered && d.last_status == Some(200))
    );
    Ok(())
}

#[tokio::test]
async fn deliveries_are_sequential_and_in_write_order() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let key = sim
        .store()
        .create_activity(
            COMPANY,
            NewActivity {
                attendees: Vec::new(),
                ..meeting()
            },
        )?
        .record
        .data
        .activity;
    let listener = Listener::start().await?;
    listener.slow(Duration::from_millis(20));
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    let mut changes = sim.subscribe_changes();

    for i in 0..10 {
        sim.store().patch_activity(
            COMPANY,
            &key,
            &json!({"subject": format!("Review {i}")}),
            &IfMatch::Any,
        )?;
    }
    let received = listener.wait_for(10).await?;
    let mut expected = Vec::new();
    for _ in 0..10 {
        expected.push(changes.recv().await?.id);
    }
    let ids: Vec<String> = received
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(listener.max_in_flight(), 1, "one delivery at a time");
    let stamps: Vec<DateTime<Utc>> = received
        .iter()
        .map(|r| at(r.json()["lastModified"].as_str().unwrap_or_default()))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    Ok(())
}

#[tokio::test]
async fn disabling_cancels_deliveries_still_being_retried() -> TestResult {
    let sim = start(
        SimConfig::default().with_webhook_retry(WebhookRetry::new(5, Duration::from_millis(300))),
    )
    .await?;
    let listener = Listener::start().await?;
    listener.always(500);
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    sim.store().create_activity(
        COMPANY,
        NewActivity {
            attendees: Vec::new(),
            ..meeting()
        },
    )?;
    listener.wait_for(1).await?;
    sim.disable_webhook(COMPANY)?;

    let deliveries = settled(&sim, 1).await?;
    assert_eq!(deliveries[0].outcome, DeliveryOutcome::Cancelled);
    assert_eq!(deliveries[0].attempts, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(listener.received().len(), 1, "no attempt after disabling");
    Ok(())
}

#[tokio::test]
async fn enabling_validates_url_secret_and_company() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    assert!(sim.enable_webhook(COMPANY, "not a url", SECRET).is_err());
    assert!(
        sim.enable_webhook(COMPANY, "ftp://127.0.0.1/ln/prod", SECRET)
            .is_err()
    );
    assert!(
        sim.enable_webhook(COMPANY, "http://127.0.0.1:1/ln/prod", "")
            .is_err()
    );
    assert!(
        sim.enable_webhook("999", "http://127.0.0.1:1/ln/prod", SECRET)
            .is_err()
    );
    assert!(sim.webhook_status(COMPANY).is_none());
    assert!(
        !sim.store()
            .read(COMPANY, |d| d.settings.data.push_enabled)?
    );
    Ok(())
}

#[tokio::test]
async fn reset_drops_endpoints_and_the_delivery_log() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let listener = Listener::start().await?;
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;
    sim.store().create_activity(COMPANY, meeting())?;
    settled(&sim, 3).await?;

    sim.reset();
    assert!(sim.webhook_status(COMPANY).is_none());
    assert!(sim.webhook_deliveries().is_empty());
    sim.seed(&demo_seed(COMPANY, 1, 1))?;
    sim.store().create_activity(COMPANY, meeting())?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener.received().len(), 3);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_configures_webhooks_and_reports_deliveries() -> TestResult {
    let sim = start(SimConfig::default().with_webhook_retry(fast_retry(3))).await?;
    let listener = Listener::start().await?;
    listener.answer(&[500]);
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_sim/{path}", sim.base_url());

    let response = http
        .post(admin("webhooks"))
        .json(&json!({"company": COMPANY, "url": listener.url, "secret": SECRET, "enabled": true}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let state: Value = http
        .get(admin(&format!("state?company={COMPANY}")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(state["settings"]["pushEnabled"], true);

    // An LN-side edit through the admin API is pushed like any other write.
    let created: Value = http
        .post(admin(&format!("companies/{COMPANY}/activities")))
        .json(
            &json!({"type": "Call", "subject": "Call", "start": "2026-12-01T09:00:00Z",
                      "end": "2026-12-01T09:30:00Z"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let key = created["activity"].as_str().ok_or("no key")?;
    let received = listener.wait_for(2).await?;
    assert_eq!(
        summary(&received),
        vec![
            triple("Activity", key, "created"),
            triple("Activity", key, "created")
        ]
    );
    settled(&sim, 1).await?;

    let overview: Value = http.get(admin("webhooks")).send().await?.json().await?;
    let endpoint = &overview["endpoints"][0];
    assert_eq!(endpoint["company"], COMPANY);
    assert_eq!(endpoint["url"], listener.url.as_str());
    assert_eq!(endpoint["pushEnabled"], true);
    assert_eq!(endpoint["deliveries"], 1);
    assert_eq!(endpoint["delivered"], 1);
    assert_eq!(endpoint["lastStatus"], 200);
    assert!(
        endpoint.get("secret").is_none(),
        "the secret is never shown"
    );

    let log: Value = http
        .get(admin("webhooks/deliveries"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(log[0]["key"], key);
    assert_eq!(log[0]["entity"], "Activity");
    assert_eq!(log[0]["change"], "created");
    assert_eq!(log[0]["attempts"], 2);
    assert_eq!(log[0]["outcome"], "delivered");
    let cleared = http.delete(admin("webhooks/deliveries")).send().await?;
    assert_eq!(cleared.status(), StatusCode::OK);
    assert!(sim.webhook_deliveries().is_empty());

    for (body, status) in [
        (
            json!({"company": COMPANY, "url": "nope", "secret": SECRET}),
            400,
        ),
        (json!({"company": COMPANY, "url": listener.url}), 400),
        (json!({"company": COMPANY, "secret": SECRET}), 400),
        (
            json!({"company": "999", "url": listener.url, "secret": SECRET}),
            400,
        ),
        (
            json!({"company": COMPANY, "url": listener.url, "secret": SECRET, "extra": 1}),
            400,
        ),
    ] {
        let response = http.post(admin("webhooks")).json(&body).send().await?;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: Value = response.json().await?;
        assert!(
            error["error"]["message"].is_string(),
            "OData error shape: {error}"
        );
    }

    let response = http
        .post(admin("webhooks"))
        .json(&json!({"company": COMPANY, "enabled": false}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let overview: Value = http.get(admin("webhooks")).send().await?.json().await?;
    assert_eq!(overview["endpoints"], json!([]));
    let state: Value = http
        .get(admin(&format!("state?company={COMPANY}")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(state["settings"]["pushEnabled"], false);
    Ok(())
}

#[tokio::test]
async fn a_synchronizer_write_over_odata_is_pushed_too() -> TestResult {
    // R31: LN pushes every change, including the ones lnsync itself makes (the receiver's loop
    // protection, scenario 1, must cope with that).
    let sim = start(SimConfig::default()).await?;
    let key = sim
        .store()
        .create_activity(COMPANY, meeting())?
        .record
        .data
        .activity;
    let listener = Listener::start().await?;
    sim.enable_webhook(COMPANY, &listener.url, SECRET)?;

    let ion = sim.ionapi();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}{}", ion.pu, ion.ot))
        .form(&[
            ("grant_type", "password"),
            ("username", ion.saak.as_str()),
            ("password", ion.sask.as_str()),
            ("client_id", ion.ci.as_str()),
            ("client_secret", ion.cs.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let response = http
        .patch(format!("{}Activities('{key}')", sim.service_root()))
        .bearer_auth(token["access_token"].as_str().ok_or("no token")?)
        .header("X-Infor-LnCompany", COMPANY)
        .header("If-Match", "*")
        .json(&json!({"subject": "Moved in Exchange"}))
        .send()
        .await?;
    assert!(response.status().is_success(), "{}", response.status());

    let received = listener.wait_for(1).await?;
    assert_eq!(
        summary(&received),
        vec![triple("Activity", &key, "modified")]
    );
    assert!(signature_is_valid(
        SECRET,
        &received[0].body,
        received[0].signature.as_deref()
    ));
    Ok(())
}
