//! Tests of the Graph routes (R31–R33, exchange.md §3.7): the handshake, change and lifecycle
//! notifications, and what each leaves in the queue and the store. The queue records every
//! enqueue call (the router's own tests' `RecordingQueue`), so a repeat the in-memory queue would
//! de-duplicate is still seen.

use super::*;
use crate::push::MAX_BODY_BYTES;
use crate::push::router::PushEnvironment;
use crate::push::router::router_tests::RecordingQueue;
use chrono::TimeZone;
use lnsync_core::ids::{MailboxAddress, UserId};
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::StateStore;
use lnsync_core::testing::{ManualClock, MemoryStore};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const PROD: &str = "prod";
/// Known to the router and started, but without a push token.
const STAGING: &str = "staging";
const TOKEN: &str = "4f1c0e9a2b7d4c3e8f6a5b4c3d2e1f00a1b2c3d4e5f60718293a4b5c6d7e8f90";

const ALICE: &str = "b2c6d0e4-alice";
const BOB: &str = "b2c6d0e4-bob";
/// Alice's previous Graph subscription, retired: still live at Graph until deleted.
const RETIRED: &str = "b2c6d0e4-retired";
/// An EWS subscription of the same environment: not something Graph can notify about.
const EWS_SUB: &str = "JgBkZ2Vsc3ViMDAxcarol";

const TEXT: &str = "text/plain; charset=utf-8";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

fn before() -> DateTime<Utc> {
    now() - chrono::Duration::hours(2)
}

fn subscription(user: &str, id: &str, backend: ExchangeBackend, active: bool) -> PushSubscription {
    PushSubscription {
        env: EnvironmentId::new(PROD),
        user: UserId::new(user),
        id: SubscriptionId::new(id),
        mailbox: MailboxAddress::new(format!("{user}@corp.example")),
        backend,
        watermark: None,
        status_frequency_minutes: 30,
        created_at: before() - chrono::Duration::days(1),
        last_seen: before(),
        expires_at: (backend == ExchangeBackend::Graph).then(|| now() + chrono::Duration::days(5)),
        active,
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<RecordingQueue>,
    router: PushRouter,
}

impl Fixture {
    async fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::default());
        for env in [PROD, STAGING] {
            store
                .put_environment(&EnvironmentState {
                    env: EnvironmentId::new(env),
                    started: true,
                    updated_at: before(),
                })
                .await?;
        }
        store
            .ensure_push_token(&EnvironmentId::new(PROD), TOKEN)
            .await?;
        for sub in [
            subscription("alice", ALICE, ExchangeBackend::Graph, true),
            subscription("bob", BOB, ExchangeBackend::Graph, true),
            subscription("alice", RETIRED, ExchangeBackend::Graph, false),
            subscription("carol", EWS_SUB, ExchangeBackend::Ews, true),
        ] {
            store.put_subscription(&sub).await?;
        }
        let queue = Arc::new(RecordingQueue::default());
        let router = PushRouter {
            store: store.clone(),
            queue: queue.clone(),
            clock: Arc::new(ManualClock::new(now())),
            environments: HashMap::from([
                (EnvironmentId::new(PROD), PushEnvironment::default()),
                (EnvironmentId::new(STAGING), PushEnvironment::default()),
            ]),
        };
        Ok(Self {
            store,
            queue,
            router,
        })
    }

    async fn post(&self, path: &str, query: Option<&str>, body: &[u8]) -> HttpResponse {
        let header = |_: &str| None;
        self.router
            .handle(&HttpRequest {
                method: "POST",
                path,
                query,
                body,
                header: &header,
            })
            .await
    }

    async fn notify(&self, body: &Value) -> HttpResponse {
        self.post("/graph/prod", None, body.to_string().as_bytes())
            .await
    }

    async fn lifecycle(&self, body: &Value) -> HttpResponse {
        self.post("/graph/prod/lifecycle", None, body.to_string().as_bytes())
            .await
    }

    /// Every job handed to the queue, repeats included, in order.
    fn sent(&self) -> Vec<Job> {
        self.queue
            .calls
            .lock()
            .map(|calls| calls.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    async fn sub(&self, id: &str) -> Result<PushSubscription, Box<dyn std::error::Error>> {
        Ok(self
            .store
            .subscription(&EnvironmentId::new(PROD), &SubscriptionId::new(id))
            .await?
            .ok_or("no such subscription")?)
    }
}

/// One change notification as Graph sends it for an Outlook event.
fn change(
    subscription: &str,
    client_state: Option<&str>,
    kind: &str,
    id: &str,
    etag: &str,
) -> Value {
    let resource = format!("Users/alice@corp.example/Events/{id}");
    let mut entry = json!({
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-02-06T10:00:00Z",
        "changeType": kind,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": etag,
            "id": id,
        },
        "tenantId": "7c1e6f2a-tenant",
    });
    if let Some(state) = client_state {
        entry["clientState"] = json!(state);
    }
    entry
}

fn lifecycle_entry(subscription: &str, client_state: &str, event: &str) -> Value {
    json!({
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-02-06T10:00:00Z",
        "tenantId": "7c1e6f2a-tenant",
        "clientState": client_state,
        "lifecycleEvent": event,
    })
}

fn values(entries: &[Value]) -> Value {
    json!({ "value": entries })
}

fn event_jobs(jobs: &[Job]) -> Vec<(String, String)> {
    jobs.iter()
        .map(|j| match &j.kind {
            JobKind::SingleEvent {
                exchange_id: Some(id),
                activity: None,
            } => (j.user.to_string(), id.to_string()),
            other => (j.user.to_string(), format!("unexpected {other:?}")),
        })
        .collect()
}

fn kinds(jobs: &[Job]) -> Vec<(String, &'static str)> {
    jobs.iter()
        .map(|j| (j.user.to_string(), j.kind.label()))
        .collect()
}

// ---- the handshake ---------------------------------------------------------------------------

#[tokio::test]
async fn the_handshake_on_both_urls_echoes_the_decoded_token_as_plain_text() -> TestResult {
    let fx = Fixture::new().await?;
    // As Graph encodes it (form encoding: spaces as '+', ':' escaped).
    let query = "validationToken=Validation%3A+Testing+client+application+reachability+for+subscription+Request-Id%3A+9f1e";
    let decoded =
        "Validation: Testing client application reachability for subscription Request-Id: 9f1e";
    for path in ["/graph/prod", "/graph/prod/lifecycle"] {
        let r = fx.post(path, Some(query), b"").await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.content_type, TEXT);
        assert_eq!(r.body, decoded);
    }
    // It needs nothing from the store: an environment without a push token answers too.
    let r = fx.post("/graph/staging", Some(query), b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, decoded));
    assert!(fx.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_handshake_for_an_unknown_environment_or_with_a_huge_token_is_refused() -> TestResult {
    let fx = Fixture::new().await?;
    let r = fx
        .post("/graph/ghost", Some("validationToken=hello"), b"")
        .await;
    assert_eq!(r.status, 403);
    let long = format!("validationToken={}", "a".repeat(MAX_VALIDATION_TOKEN + 1));
    let r = fx.post("/graph/prod", Some(&long), b"").await;
    assert_eq!(r.status, 400);
    let limit = format!("validationToken={}", "a".repeat(MAX_VALIDATION_TOKEN));
    assert_eq!(fx.post("/graph/prod", Some(&limit), b"").await.status, 200);
    let r = fx
        .post("/graph/prod", Some("validationToken=a%0Ab"), b"")
        .await;
    assert_eq!(r.status, 400, "control characters are not echoed");
    assert!(fx.sent().is_empty());
    Ok(())
}

// ---- change notifications --------------------------------------------------------------------

#[tokio::test]
async fn each_notification_becomes_a_single_event_job_of_its_subscriptions_user() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[
        change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"DwAAABYA1\""),
        change(BOB, Some(TOKEN), "created", "AAMkEvB=", "W/\"DwAAABYA2\""),
        change(ALICE, Some(TOKEN), "deleted", "AAMkEvC=", "W/\"DwAAABYA3\""),
    ]);
    let r = fx.notify(&body).await;
    assert_eq!((r.status, r.content_type), (202, TEXT));
    let mut jobs = event_jobs(&fx.sent());
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("alice".to_owned(), "AAMkEvA=".to_owned()),
            ("alice".to_owned(), "AAMkEvC=".to_owned()),
            ("bob".to_owned(), "AAMkEvB=".to_owned()),
        ]
    );
    assert!(
        fx.sent()
            .iter()
            .all(|j| j.env.as_str() == PROD && j.enqueued_at == now())
    );
    assert_eq!(fx.sub(ALICE).await?.last_seen, now(), "heard from");
    assert_eq!(fx.sub(BOB).await?.last_seen, now());
    Ok(())
}

#[tokio::test]
async fn a_redelivery_is_the_same_job_and_a_new_etag_a_new_one() -> TestResult {
    let fx = Fixture::new().await?;
    let first = values(&[change(
        ALICE,
        Some(TOKEN),
        "updated",
        "AAMkEvA=",
        "W/\"v1\"",
    )]);
    assert_eq!(fx.notify(&first).await.status, 202);
    assert_eq!(fx.notify(&first).await.status, 202);
    let sent = fx.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, sent[1].id, "Graph's retry is the same job");
    let edited = values(&[change(
        ALICE,
        Some(TOKEN),
        "updated",
        "AAMkEvA=",
        "W/\"v2\"",
    )]);
    assert_eq!(fx.notify(&edited).await.status, 202);
    let sent = fx.sent();
    assert_ne!(sent[2].id, sent[0].id, "a later edit is a new job");
    // Deletions may come without an etag; the change type still tells them apart.
    let mut deleted = change(ALICE, Some(TOKEN), "deleted", "AAMkEvA=", "");
    deleted["resourceData"]
        .as_object_mut()
        .map(|o| o.remove("@odata.etag"));
    assert_eq!(fx.notify(&values(&[deleted])).await.status, 202);
    let ids: std::collections::BTreeSet<_> = fx.sent().iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_wrong_or_missing_client_state_anywhere_refuses_the_whole_request() -> TestResult {
    let fx = Fixture::new().await?;
    for bad in [
        values(&[
            change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\""),
            change(BOB, Some("guessed"), "updated", "AAMkEvB=", "W/\"1\""),
        ]),
        values(&[change(ALICE, None, "updated", "AAMkEvA=", "W/\"1\"")]),
        values(&[change(
            ALICE,
            Some(&TOKEN[..63]),
            "updated",
            "AAMkEvA=",
            "W/\"1\"",
        )]),
    ] {
        let r = fx.notify(&bad).await;
        assert_eq!((r.status, r.content_type), (403, TEXT), "{bad}");
        assert_eq!(r.body, "forbidden", "the reply says nothing more");
    }
    // An environment without a push token has no valid clientState at all.
    let body = values(&[change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\"")]);
    let r = fx
        .post("/graph/staging", None, body.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 403);
    assert!(fx.sent().is_empty(), "nothing queued");
    assert_eq!(fx.sub(ALICE).await?.last_seen, before(), "nothing recorded");
    Ok(())
}

#[tokio::test]
async fn notifications_of_subscriptions_we_do_not_hold_are_acknowledged_and_dropped() -> TestResult
{
    let fx = Fixture::new().await?;
    let body = values(&[
        change("never-made", Some(TOKEN), "updated", "AAMkEvX=", "W/\"1\""),
        change(RETIRED, Some(TOKEN), "updated", "AAMkEvY=", "W/\"1\""),
        change(EWS_SUB, Some(TOKEN), "updated", "AAMkEvZ=", "W/\"1\""),
    ]);
    let r = fx.notify(&body).await;
    assert_eq!(
        r.status, 202,
        "refusing would only make Graph retry for hours"
    );
    assert!(fx.sent().is_empty());
    assert_eq!(fx.sub(RETIRED).await?.last_seen, before());
    // Mixed with one of ours, only ours is queued.
    let mixed = values(&[
        change(RETIRED, Some(TOKEN), "updated", "AAMkEvY=", "W/\"1\""),
        change(BOB, Some(TOKEN), "updated", "AAMkEvB=", "W/\"1\""),
    ]);
    assert_eq!(fx.notify(&mixed).await.status, 202);
    assert_eq!(
        event_jobs(&fx.sent()),
        [("bob".to_owned(), "AAMkEvB=".to_owned())]
    );
    Ok(())
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() -> TestResult {
    let fx = Fixture::new().await?;
    let good = change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\"");
    let mut no_resource_data = good.clone();
    no_resource_data
        .as_object_mut()
        .map(|o| o.remove("resourceData"));
    let mut unknown_change = good.clone();
    unknown_change["changeType"] = json!("moved");
    let mut empty_id = good.clone();
    empty_id["resourceData"]["id"] = json!("");
    let mut numeric_state = good.clone();
    numeric_state["clientState"] = json!(42);
    for (what, body) in [
        ("not JSON", b"{\"value\": [".to_vec()),
        ("no value", b"{}".to_vec()),
        ("empty value", values(&[]).to_string().into_bytes()),
        (
            "value not a list",
            json!({"value": good}).to_string().into_bytes(),
        ),
        (
            "no resourceData",
            values(&[no_resource_data]).to_string().into_bytes(),
        ),
        (
            "unknown changeType",
            values(&[unknown_change]).to_string().into_bytes(),
        ),
        ("empty id", values(&[empty_id]).to_string().into_bytes()),
        (
            "clientState a number",
            values(&[numeric_state]).to_string().into_bytes(),
        ),
    ] {
        let r = fx.post("/graph/prod", None, &body).await;
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    for path in ["/graph/prod", "/graph/prod/lifecycle"] {
        let r = fx.post(path, None, &vec![b' '; MAX_BODY_BYTES + 1]).await;
        assert_eq!(r.status, 413, "{path}");
    }
    let r = fx
        .post(
            "/graph/prod/lifecycle",
            None,
            b"{\"value\":[{\"subscriptionId\":1}]}",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(fx.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn unknown_properties_graph_may_add_are_tolerated() -> TestResult {
    let fx = Fixture::new().await?;
    let mut entry = change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\"");
    entry["encryptedContent"] = Value::Null;
    entry["organizationId"] = json!("7c1e6f2a");
    let body = json!({ "value": [entry], "validationTokens": [] });
    assert_eq!(fx.notify(&body).await.status, 202);
    assert_eq!(fx.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_queue_outage_is_unavailable_and_the_retry_loses_nothing() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\"")]);
    fx.queue.down.store(true, Ordering::SeqCst);
    assert_eq!(fx.notify(&body).await.status, 503);
    assert!(fx.sent().is_empty());
    assert_eq!(fx.sub(ALICE).await?.last_seen, before(), "not recorded");
    fx.queue.down.store(false, Ordering::SeqCst);
    assert_eq!(fx.notify(&body).await.status, 202);
    assert_eq!(fx.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_stopped_environment_is_acknowledged_and_nothing_queued() -> TestResult {
    let fx = Fixture::new().await?;
    fx.store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new(PROD),
            started: false,
            updated_at: now(),
        })
        .await?;
    let body = values(&[change(ALICE, Some(TOKEN), "updated", "AAMkEvA=", "W/\"1\"")]);
    assert_eq!(fx.notify(&body).await.status, 202);
    let life = values(&[lifecycle_entry(ALICE, TOKEN, "subscriptionRemoved")]);
    assert_eq!(fx.lifecycle(&life).await.status, 202);
    assert!(fx.sent().is_empty());
    assert!(fx.sub(ALICE).await?.active);
    Ok(())
}

#[tokio::test]
async fn other_methods_are_not_allowed() -> TestResult {
    let fx = Fixture::new().await?;
    let header = |_: &str| None;
    for path in ["/graph/prod", "/graph/prod/lifecycle"] {
        let r = fx
            .router
            .handle(&HttpRequest {
                method: "GET",
                path,
                query: Some("validationToken=x"),
                body: b"",
                header: &header,
            })
            .await;
        assert_eq!(r.status, 405, "{path}");
    }
    assert_eq!(fx.post("/graph/prod/other", None, b"").await.status, 404);
    Ok(())
}

// ---- lifecycle notifications ------------------------------------------------------------------

#[tokio::test]
async fn reauthorization_required_queues_a_subscribe_job() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[lifecycle_entry(ALICE, TOKEN, "reauthorizationRequired")]);
    let r = fx.lifecycle(&body).await;
    assert_eq!((r.status, r.content_type), (202, TEXT));
    assert_eq!(kinds(&fx.sent()), [("alice".to_owned(), "subscribe")]);
    assert!(fx.sub(ALICE).await?.active);
    // Graph's retry of the same notification is the same job.
    assert_eq!(fx.lifecycle(&body).await.status, 202);
    let sent = fx.sent();
    assert_eq!(sent[0].id, sent[1].id);
    Ok(())
}

#[tokio::test]
async fn subscription_removed_retires_it_and_queues_a_new_one_and_a_pull() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[lifecycle_entry(BOB, TOKEN, "subscriptionRemoved")]);
    assert_eq!(fx.lifecycle(&body).await.status, 202);
    let mut queued = kinds(&fx.sent());
    queued.sort();
    assert_eq!(
        queued,
        [
            ("bob".to_owned(), "calendar"),
            ("bob".to_owned(), "subscribe")
        ]
    );
    let bob = fx.sub(BOB).await?;
    assert!(!bob.active);
    assert_eq!(
        bob.expires_at,
        Some(now()),
        "gone at Graph: nothing to delete"
    );
    assert!(fx.sub(ALICE).await?.active);
    Ok(())
}

#[tokio::test]
async fn missed_queues_a_calendar_pull() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[
        lifecycle_entry(ALICE, TOKEN, "missed"),
        lifecycle_entry(BOB, TOKEN, "unknownFutureValue"),
        lifecycle_entry(RETIRED, TOKEN, "missed"),
    ]);
    assert_eq!(fx.lifecycle(&body).await.status, 202);
    assert_eq!(kinds(&fx.sent()), [("alice".to_owned(), "calendar")]);
    assert!(fx.sub(ALICE).await?.active && fx.sub(BOB).await?.active);
    Ok(())
}

#[tokio::test]
async fn a_lifecycle_notification_with_a_wrong_client_state_changes_nothing() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[
        lifecycle_entry(ALICE, TOKEN, "missed"),
        lifecycle_entry(BOB, "guessed", "subscriptionRemoved"),
    ]);
    assert_eq!(fx.lifecycle(&body).await.status, 403);
    assert!(fx.sent().is_empty());
    assert!(fx.sub(BOB).await?.active, "not retired");
    Ok(())
}

#[tokio::test]
async fn a_removed_subscription_stays_active_while_the_queue_is_down() -> TestResult {
    let fx = Fixture::new().await?;
    let body = values(&[lifecycle_entry(BOB, TOKEN, "subscriptionRemoved")]);
    fx.queue.down.store(true, Ordering::SeqCst);
    assert_eq!(fx.lifecycle(&body).await.status, 503);
    assert!(
        fx.sub(BOB).await?.active,
        "Graph's retry must still find it, or its jobs would never be queued"
    );
    fx.queue.down.store(false, Ordering::SeqCst);
    assert_eq!(fx.lifecycle(&body).await.status, 202);
    assert_eq!(fx.sent().len(), 2);
    assert!(!fx.sub(BOB).await?.active);
    Ok(())
}

// ---- properties -------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum State {
    Right,
    Wrong(String),
    Missing,
}

fn state_strategy() -> impl Strategy<Value = State> {
    prop_oneof![
        6 => Just(State::Right),
        2 => "[ -~]{0,80}".prop_map(State::Wrong),
        1 => Just(State::Missing),
    ]
}

fn entry_strategy() -> impl Strategy<Value = (String, State, String, String, String)> {
    (
        prop_oneof![
            Just(ALICE.to_owned()),
            Just(BOB.to_owned()),
            Just(RETIRED.to_owned()),
            "[a-z0-9-]{1,12}",
        ],
        state_strategy(),
        prop_oneof![
            Just("created".to_owned()),
            Just("updated".to_owned()),
            Just("deleted".to_owned()),
            "[a-z]{0,8}",
        ],
        "[A-Za-z0-9=+/]{0,12}",
        "[ -~]{0,12}",
    )
}

#[derive(Debug, Clone)]
enum Body {
    Entries(Vec<(String, State, String, String, String)>),
    Junk(Vec<u8>),
}

fn body_strategy() -> impl Strategy<Value = Body> {
    prop_oneof![
        6 => proptest::collection::vec(entry_strategy(), 0..6).prop_map(Body::Entries),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Body::Junk),
    ]
}

fn render(body: &Body, lifecycle: bool) -> (Vec<u8>, bool) {
    match body {
        Body::Junk(bytes) => (bytes.clone(), false),
        Body::Entries(entries) => {
            let all_right =
                !entries.is_empty() && entries.iter().all(|(_, s, ..)| matches!(s, State::Right));
            let value: Vec<Value> = entries
                .iter()
                .map(|(sub, state, kind, id, etag)| {
                    let state = match state {
                        State::Right => Some(TOKEN),
                        State::Wrong(s) => Some(s.as_str()),
                        State::Missing => None,
                    };
                    if lifecycle {
                        let mut e = lifecycle_entry(sub, state.unwrap_or_default(), kind);
                        if state.is_none() {
                            e.as_object_mut().map(|o| o.remove("clientState"));
                        }
                        e
                    } else {
                        change(sub, state, kind, id, etag)
                    }
                })
                .collect();
            (values(&value).to_string().into_bytes(), all_right)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Whatever body arrives at either Graph URL, nothing is queued and no subscription changes
    /// unless every entry carries the environment's clientState; and a refusal is a 4xx.
    #[test]
    fn nothing_is_queued_without_the_right_client_state(
        body in body_strategy(),
        lifecycle in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(async {
            let fx = Fixture::new().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (bytes, all_right) = render(&body, lifecycle);
            let path = if lifecycle { "/graph/prod/lifecycle" } else { "/graph/prod" };
            let response = fx.post(path, None, &bytes).await;
            prop_assert!([202, 400, 403].contains(&response.status), "{response:?}");
            let subs = fx
                .store
                .subscriptions(&EnvironmentId::new(PROD))
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if !all_right {
                prop_assert!(fx.sent().is_empty(), "queued {:?}", fx.sent());
                prop_assert_ne!(response.status, 202);
                prop_assert!(subs.iter().all(|s| s.last_seen == before()));
                prop_assert!(fx.sub(ALICE).await.map_err(|e| TestCaseError::fail(e.to_string()))?.active);
            }
            if response.status != 202 {
                prop_assert!(fx.sent().is_empty());
            }
            // Whatever was queued is for a subscription we hold, never the retired one's user
            // through the retired subscription.
            for job in fx.sent() {
                prop_assert!(["alice", "bob"].contains(&job.user.as_str()), "{job:?}");
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
