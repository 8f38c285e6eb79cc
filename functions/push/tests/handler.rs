//! The push function's handler over function-URL requests (as lambda_http hands them over),
//! with the in-memory store and queue: status codes, headers and what got queued.

use lambda_http::{Body, Request};
use lnsync_adapters::ln::webhook;
use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
use lnsync_core::ids::{EnvironmentId, MailboxAddress, SubscriptionId, UserId};
use lnsync_core::model::{EnvironmentState, ExchangeBackend, JobKind, PushSubscription};
use lnsync_core::ports::{JobQueue, StateStore, SystemClock};
use lnsync_core::secret::Secret;
use lnsync_core::testing::MemoryStore;
use lnsync_runtime::push::PushRouter;
use lnsync_runtime::push::router::PushEnvironment;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn router()
-> Result<(PushRouter, Arc<InMemoryQueue>), Box<dyn std::error::Error + Send + Sync>> {
    let store = Arc::new(MemoryStore::default());
    store
        .put_environment(&EnvironmentState {
            env: EnvironmentId::new("prod"),
            started: true,
            updated_at: chrono::Utc::now(),
        })
        .await?;
    store
        .ensure_push_token(&EnvironmentId::new("prod"), GRAPH_CLIENT_STATE)
        .await?;
    let now = chrono::Utc::now();
    store
        .put_subscription(&PushSubscription {
            env: EnvironmentId::new("prod"),
            user: UserId::new("alice"),
            id: SubscriptionId::new(GRAPH_SUBSCRIPTION),
            mailbox: MailboxAddress::new("alice@corp.example"),
            backend: ExchangeBackend::Graph,
            watermark: None,
            status_frequency_minutes: 30,
            created_at: now,
            last_seen: now,
            expires_at: Some(now + chrono::Duration::days(5)),
            active: true,
        })
        .await?;
    let queue = Arc::new(InMemoryQueue::new(InMemoryQueueConfig::default()));
    let environments = HashMap::from([(
        EnvironmentId::new("prod"),
        PushEnvironment {
            ln_webhook_secret: Some(Secret::new("s3cret")),
        },
    )]);
    Ok((
        PushRouter {
            store,
            queue: queue.clone(),
            clock: Arc::new(SystemClock),
            environments,
        },
        queue,
    ))
}

/// Prod's push token, which its Graph subscriptions carry as `clientState`.
const GRAPH_CLIENT_STATE: &str = "0f9e8d7c6b5a49382716051f2e3d4c5b6a7980f1e2d3c4b5a69788796a5b4c3d";
const GRAPH_SUBSCRIPTION: &str = "7f3a2b1c-graph-alice";

fn request(method: &str, path: &str, headers: &[(&str, String)], body: Body) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://abc.lambda-url.eu-west-1.on.aws{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    builder.body(body).unwrap_or_default()
}

#[tokio::test]
async fn a_signed_ln_webhook_is_accepted_and_queued() -> TestResult {
    let (router, queue) = router().await?;
    let body = r#"{"entity":"Attendee","key":"ACT42/3","change":"modified","lastModified":"2026-11-29T10:00:00Z","id":"n-7"}"#;
    let headers = [
        (
            webhook::SIGNATURE_HEADER,
            webhook::sign(b"s3cret", body.as_bytes()),
        ),
        (
            webhook::TIMESTAMP_HEADER,
            chrono::Utc::now().timestamp().to_string(),
        ),
    ];
    let response = lnsync_push::handle(
        &router,
        request("POST", "/ln/prod", &headers, Body::Text(body.into())),
    )
    .await;
    assert_eq!(response.status(), 202);
    let queued = queue.receive(10, Duration::ZERO).await?;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].job.user.is_any());
    assert_eq!(
        queued[0].job.kind,
        JobKind::SingleEvent {
            exchange_id: None,
            activity: Some("ACT42".into())
        }
    );
    Ok(())
}

#[tokio::test]
async fn binary_bodies_health_and_refusals_map_to_statuses() -> TestResult {
    let (router, queue) = router().await?;
    let health = lnsync_push::handle(&router, request("GET", "/health", &[], Body::Empty)).await;
    assert_eq!(health.status(), 200);
    // Function URLs hand non-text bodies over base64-decoded as binary.
    let doctype = b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x/>".to_vec();
    let r = lnsync_push::handle(
        &router,
        request("POST", "/ews/prod/t", &[], Body::Binary(doctype)),
    )
    .await;
    assert_eq!(
        r.status(),
        403,
        "the token is checked before the body is parsed"
    );
    let r = lnsync_push::handle(
        &router,
        request(
            "POST",
            "/ln/prod",
            &[],
            Body::Binary(vec![0; 1024 * 1024 + 1]),
        ),
    )
    .await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    let r = lnsync_push::handle(
        &router,
        request("POST", "/ln/prod", &[], Body::Text("{}".into())),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        queue.receive(10, Duration::ZERO).await?.is_empty(),
        "nothing queued"
    );
    Ok(())
}

#[tokio::test]
async fn graphs_validation_handshake_is_echoed_as_plain_text() -> TestResult {
    let (router, queue) = router().await?;
    // As Graph sends it: form-encoded, an empty text/plain body.
    for path in ["/graph/prod", "/graph/prod/lifecycle"] {
        let response = lnsync_push::handle(
            &router,
            request(
                "POST",
                &format!("{path}?validationToken=Validation%3A+Testing+client+application+reachability+Request-Id%3A+42"),
                &[("content-type", "text/plain; charset=utf-8".to_owned())],
                Body::Empty,
            ),
        )
        .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            response.body().as_ref(),
            b"Validation: Testing client application reachability Request-Id: 42"
        );
    }
    assert!(queue.receive(10, Duration::ZERO).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_graph_notification_is_accepted_and_queued() -> TestResult {
    let (router, queue) = router().await?;
    let body = serde_json::json!({"value": [{
        "subscriptionId": GRAPH_SUBSCRIPTION,
        "subscriptionExpirationDateTime": "2026-12-04T10:00:00Z",
        "changeType": "updated",
        "resource": "Users/alice@corp.example/Events/AAMkEvA=",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": "Users/alice@corp.example/Events/AAMkEvA=",
            "@odata.etag": "W/\"DwAAABYAAAA1\"",
            "id": "AAMkEvA="
        },
        "clientState": GRAPH_CLIENT_STATE,
        "tenantId": "7c1e6f2a-tenant"
    }]});
    let response = lnsync_push::handle(
        &router,
        request(
            "POST",
            "/graph/prod",
            &[("content-type", "application/json".to_owned())],
            Body::Text(body.to_string()),
        ),
    )
    .await;
    assert_eq!(response.status(), 202);
    let queued = queue.receive(10, Duration::ZERO).await?;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].job.user.as_str(), "alice");
    assert_eq!(
        queued[0].job.kind,
        JobKind::SingleEvent {
            exchange_id: Some("AAMkEvA=".into()),
            activity: None
        }
    );
    // The same notification with a guessed clientState is refused and queues nothing.
    let forged = body.to_string().replace(GRAPH_CLIENT_STATE, "guessed");
    let response = lnsync_push::handle(
        &router,
        request("POST", "/graph/prod", &[], Body::Text(forged)),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert!(queue.receive(10, Duration::ZERO).await?.is_empty());
    Ok(())
}
