//! Tests of the push endpoint (R31–R33, scenarios 25, 28 and 34): what each request enqueues,
//! how it is answered, and what it leaves in the store. The store and the queue are the in-memory
//! ones; the queue is wrapped so every enqueue call is seen (the in-memory queue drops repeated
//! job ids, exactly the de-duplication the router relies on, which would hide a repeat) and so it
//! can be made to fail.

use super::*;
use async_trait::async_trait;
use chrono::TimeZone;
use lnsync_adapters::memqueue::InMemoryQueue;
use lnsync_core::error::QueueError;
use lnsync_core::ids::{ActivityKey, MailboxAddress, SubscriptionId};
use lnsync_core::model::{EnvironmentState, ExchangeBackend};
use lnsync_core::ports::{Delivery, Receipt};
use lnsync_core::testing::{ManualClock, MemoryStore};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PROD: &str = "prod";
/// Known to the router, but without a push token in the store and without an LN secret.
const STAGING: &str = "staging";
/// In the store (token, started) but not in the router's configuration.
const GHOST: &str = "ghost";
const TOKEN: &str = "4f1c0e9a2b7d4c3e8f6a5b4c3d2e1f00a1b2c3d4e5f60718293a4b5c6d7e8f90";
const GHOST_TOKEN: &str = "ghost-token";
const LN_SECRET: &str = "prod-webhook-secret";

const ALICE_SUB: &str = "JgBkZ2Vsc3ViMDAxalice";
const BOB_SUB: &str = "JgBkZ2Vsc3ViMDAxbob";
/// Alice's previous subscription, replaced: answered Unsubscribe.
const OLD_SUB: &str = "JgBkZ2Vsc3ViMDAxold";
const STAGING_SUB: &str = "JgBkZ2Vsc3ViMDAxstaging";

const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
const NS_T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// The router's clock: a quarter second into a second, so half a second later is still the same
/// second (one de-duplication slot) and a second later is the next one.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::milliseconds(250)
}

/// When the subscriptions were last heard of before the test's request.
fn before() -> DateTime<Utc> {
    now() - chrono::Duration::hours(2)
}

// ---------------------------------------------------------------------------------------------
// A queue that records every enqueue and can be made to fail
// ---------------------------------------------------------------------------------------------

/// Also used by the Graph routes' tests (`push/graph_tests.rs`).
#[derive(Default)]
pub(in crate::push) struct RecordingQueue {
    pub(in crate::push) inner: InMemoryQueue,
    /// Every successful `enqueue` call's jobs, repeats included.
    pub(in crate::push) calls: Mutex<Vec<Vec<Job>>>,
    /// While set, `enqueue` fails the way SQS does when it cannot be reached.
    pub(in crate::push) down: AtomicBool,
    failed_calls: Mutex<usize>,
}

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            *self.failed_calls.lock().expect("lock") += 1;
            return Err(QueueError::Unavailable {
                source: Box::new(std::io::Error::other("queue unreachable")),
            });
        }
        self.calls.lock().expect("lock").push(jobs.to_vec());
        self.inner.enqueue(jobs).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.inner.complete(receipt).await
    }
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_later(receipt, delay).await
    }
    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError> {
        self.inner.dead_letters().await
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<RecordingQueue>,
    clock: Arc<ManualClock>,
    router: PushRouter,
}

fn subscription(env: &str, user: &str, id: &str, active: bool) -> PushSubscription {
    PushSubscription {
        env: EnvironmentId::new(env),
        user: UserId::new(user),
        id: SubscriptionId::new(id),
        mailbox: MailboxAddress::new(format!("{user}@corp.example")),
        backend: ExchangeBackend::Ews,
        watermark: Some(format!("AQAAAstart-{user}=")),
        status_frequency_minutes: 5,
        created_at: before() - chrono::Duration::days(1),
        last_seen: before(),
        expires_at: None,
        active,
    }
}

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(MemoryStore::default());
        for env in [PROD, STAGING, GHOST] {
            store
                .put_environment(&EnvironmentState {
                    env: EnvironmentId::new(env),
                    started: true,
                    updated_at: before(),
                })
                .await
                .expect("store");
        }
        store
            .ensure_push_token(&EnvironmentId::new(PROD), TOKEN)
            .await
            .expect("store");
        store
            .ensure_push_token(&EnvironmentId::new(GHOST), GHOST_TOKEN)
            .await
            .expect("store");
        for sub in [
            subscription(PROD, "alice", ALICE_SUB, true),
            subscription(PROD, "bob", BOB_SUB, true),
            subscription(PROD, "alice", OLD_SUB, false),
            subscription(STAGING, "carol", STAGING_SUB, true),
            subscription(GHOST, "dave", ALICE_SUB, true),
        ] {
            store.put_subscription(&sub).await.expect("store");
        }
        let queue = Arc::new(RecordingQueue::default());
        let clock = Arc::new(ManualClock::new(now()));
        let environments = HashMap::from([
            (
                EnvironmentId::new(PROD),
                PushEnvironment {
                    ln_webhook_secret: Some(Secret::new(LN_SECRET)),
                },
            ),
            (EnvironmentId::new(STAGING), PushEnvironment::default()),
        ]);
        let router = PushRouter {
            store: store.clone(),
            queue: queue.clone(),
            clock: clock.clone(),
            environments,
        };
        Self {
            store,
            queue,
            clock,
            router,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) -> HttpResponse {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        self.router
            .handle(&HttpRequest {
                method,
                path,
                query: None,
                body,
                header: &header,
            })
            .await
    }

    /// A notification as Exchange POSTs it to prod's URL.
    async fn post_ews(&self, body: &[u8]) -> HttpResponse {
        self.send("POST", &format!("/ews/{PROD}/{TOKEN}"), body, &[])
            .await
    }

    /// An LN webhook to `env`, signed with `secret` and stamped `age` seconds ago.
    async fn post_ln(&self, env: &str, body: &[u8], secret: &str, age: i64) -> HttpResponse {
        let headers = signed_headers(body, secret, Utc::now().timestamp() - age);
        self.send("POST", &format!("/ln/{env}"), body, &headers)
            .await
    }

    async fn sub(&self, env: &str, id: &str) -> PushSubscription {
        self.store
            .subscription(&EnvironmentId::new(env), &SubscriptionId::new(id))
            .await
            .expect("store")
            .expect("the subscription exists")
    }

    async fn set_started(&self, env: &str, started: bool) {
        self.store
            .put_environment(&EnvironmentState {
                env: EnvironmentId::new(env),
                started,
                updated_at: now(),
            })
            .await
            .expect("store");
    }

    /// Every job handed to the queue, repeats included, in order.
    fn sent(&self) -> Vec<Job> {
        self.queue
            .calls
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// What a worker would receive: the queue's distinct jobs, drained.
    async fn received(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        loop {
            let batch = self
                .queue
                .inner
                .receive(10, Duration::ZERO)
                .await
                .expect("queue");
            if batch.is_empty() {
                return jobs;
            }
            for delivery in batch {
                self.queue
                    .inner
                    .complete(&delivery.receipt)
                    .await
                    .expect("queue");
                jobs.push(delivery.job);
            }
        }
    }

    /// Every subscription as stored, to compare before and after a refused request.
    async fn all_subscriptions(&self) -> Vec<PushSubscription> {
        let mut all = Vec::new();
        for env in [PROD, STAGING, GHOST] {
            all.extend(
                self.store
                    .subscriptions(&EnvironmentId::new(env))
                    .await
                    .expect("store"),
            );
        }
        all.sort_by(|a, b| (&a.env, &a.id).cmp(&(&b.env, &b.id)));
        all
    }

    /// The request was answered `status` in plain text, nothing reached the queue and no
    /// subscription changed.
    async fn assert_refused(&self, response: &HttpResponse, status: u16, what: &str) {
        assert_eq!(response.status, status, "{what}: {response:?}");
        assert_eq!(response.content_type, "text/plain; charset=utf-8", "{what}");
        self.assert_nothing_happened(what).await;
    }

    async fn assert_nothing_happened(&self, what: &str) {
        assert!(self.sent().is_empty(), "{what}: enqueued {:?}", self.sent());
        assert!(self.received().await.is_empty(), "{what}");
        assert_eq!(
            self.all_subscriptions().await,
            Fixture::new().await.all_subscriptions().await,
            "{what}: a subscription changed"
        );
    }
}

fn signed_headers(body: &[u8], secret: &str, timestamp: i64) -> Vec<(String, String)> {
    vec![
        (
            webhook::SIGNATURE_HEADER.to_owned(),
            webhook::sign(secret.as_bytes(), body),
        ),
        (webhook::TIMESTAMP_HEADER.to_owned(), timestamp.to_string()),
    ]
}

fn ln_body(entity: &str, key: &str, id: &str) -> Vec<u8> {
    json!({
        "entity": entity,
        "key": key,
        "change": "modified",
        "lastModified": "2026-02-01T10:00:00Z",
        "id": id,
    })
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// SendNotification bodies (exchange.md §2.9, the shape the EWS simulator renders)
// ---------------------------------------------------------------------------------------------

/// One event of a notification.
#[derive(Debug, Clone)]
enum Ev {
    /// `CreatedEvent`, `ModifiedEvent`, `DeletedEvent`, `NewMailEvent`, … about an item.
    Item {
        kind: &'static str,
        id: String,
        watermark: Option<String>,
    },
    /// `MovedEvent` or `CopiedEvent`: the item's new id and the one it had before.
    Relocated {
        kind: &'static str,
        id: String,
        old_id: String,
        watermark: String,
    },
    Folder {
        kind: &'static str,
        id: String,
        watermark: String,
    },
    Status {
        watermark: String,
    },
}

fn item(kind: &'static str, id: &str, watermark: &str) -> Ev {
    Ev::Item {
        kind,
        id: id.to_owned(),
        watermark: Some(watermark.to_owned()),
    }
}

fn relocated(kind: &'static str, id: &str, old_id: &str, watermark: &str) -> Ev {
    Ev::Relocated {
        kind,
        id: id.to_owned(),
        old_id: old_id.to_owned(),
        watermark: watermark.to_owned(),
    }
}

fn folder(kind: &'static str, id: &str, watermark: &str) -> Ev {
    Ev::Folder {
        kind,
        id: id.to_owned(),
        watermark: watermark.to_owned(),
    }
}

fn status(watermark: &str) -> Ev {
    Ev::Status {
        watermark: watermark.to_owned(),
    }
}

fn render(ev: &Ev) -> String {
    let stamp = "<t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp>";
    match ev {
        Ev::Item {
            kind,
            id,
            watermark,
        } => {
            let watermark = watermark
                .as_ref()
                .map(|w| format!("<t:Watermark>{w}</t:Watermark>"))
                .unwrap_or_default();
            format!(
                "<t:{kind}>{watermark}{stamp}<t:ItemId Id=\"{id}\" ChangeKey=\"DwAAABYAAAA2\"/><t:ParentFolderId Id=\"AAMkCalendar\" ChangeKey=\"AQAAAA==\"/></t:{kind}>"
            )
        }
        Ev::Relocated {
            kind,
            id,
            old_id,
            watermark,
        } => format!(
            "<t:{kind}><t:Watermark>{watermark}</t:Watermark>{stamp}<t:ItemId Id=\"{id}\" ChangeKey=\"DwAAABYAAAA3\"/><t:ParentFolderId Id=\"AAMkDeletedItems\"/><t:OldItemId Id=\"{old_id}\" ChangeKey=\"DwAAABYAAAA2\"/><t:OldParentFolderId Id=\"AAMkCalendar\"/></t:{kind}>"
        ),
        Ev::Folder {
            kind,
            id,
            watermark,
        } => format!(
            "<t:{kind}><t:Watermark>{watermark}</t:Watermark>{stamp}<t:FolderId Id=\"{id}\" ChangeKey=\"AQAAAB==\"/><t:ParentFolderId Id=\"AAMkRoot\"/></t:{kind}>"
        ),
        Ev::Status { watermark } => {
            format!("<t:StatusEvent><t:Watermark>{watermark}</t:Watermark></t:StatusEvent>")
        }
    }
}

/// One `SendNotificationResponseMessage`.
fn message(subscription: &str, events: &[Ev]) -> String {
    message_with_previous(subscription, Some("AQAAAPrev="), events)
}

fn message_with_previous(subscription: &str, previous: Option<&str>, events: &[Ev]) -> String {
    let previous = previous
        .map(|w| format!("<t:PreviousWatermark>{w}</t:PreviousWatermark>"))
        .unwrap_or_default();
    let events: String = events.iter().map(render).collect();
    format!(
        "<m:SendNotificationResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Notification><t:SubscriptionId>{subscription}</t:SubscriptionId>{previous}<t:MoreEvents>false</t:MoreEvents>{events}</m:Notification></m:SendNotificationResponseMessage>"
    )
}

/// A whole request holding `messages`.
fn envelope(messages: &[String]) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"><soap:Header><t:RequestServerVersion Version=\"Exchange2013\"/></soap:Header><soap:Body><m:SendNotification><m:ResponseMessages>{}</m:ResponseMessages></m:SendNotification></soap:Body></soap:Envelope>",
        messages.concat()
    )
    .into_bytes()
}

fn notification(subscription: &str, events: &[Ev]) -> Vec<u8> {
    envelope(&[message(subscription, events)])
}

fn soap_reply(status: SubscriptionStatus) -> HttpResponse {
    HttpResponse {
        status: 200,
        content_type: "text/xml; charset=utf-8",
        body: notify::send_notification_result(status),
    }
}

/// The (user, Exchange item) pairs of single-event jobs, checking that every job is one.
fn item_jobs(jobs: &[Job]) -> BTreeSet<(String, String)> {
    jobs.iter()
        .map(|job| {
            assert_eq!(job.env.as_str(), PROD);
            match &job.kind {
                JobKind::SingleEvent {
                    exchange_id: Some(id),
                    activity: None,
                } => (job.user.to_string(), id.to_string()),
                other => panic!("not an Exchange single-event job: {other:?}"),
            }
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(u, i)| ((*u).to_owned(), (*i).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// EWS: accepted notifications
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_ews_notification_enqueues_one_job_per_changed_item() {
    let fx = Fixture::new().await;
    let body = notification(
        ALICE_SUB,
        &[
            item("CreatedEvent", "AAMkItemA+/=", "AQAAAw1="),
            // Exchange sends several notifications per save: one job per item.
            item("ModifiedEvent", "AAMkItemA+/=", "AQAAAw2="),
            item("ModifiedEvent", "AAMkItemB", "AQAAAw3="),
            item("DeletedEvent", "AAMkItemC", "AQAAAw4="),
            // Moved out of the calendar: the old id is what the calendar knew.
            relocated("MovedEvent", "AAMkItemDnew", "AAMkItemDold", "AQAAAw5="),
            // Events that need no single-event sync.
            relocated("CopiedEvent", "AAMkItemEcopy", "AAMkItemE", "AQAAAw6="),
            item("NewMailEvent", "AAMkMailF", "AQAAAw7="),
            item("FreeBusyChangedEvent", "AAMkItemG", "AQAAAw8="),
            folder("ModifiedEvent", "AAMkCalendar", "AQAAAw9="),
            folder("CreatedEvent", "AAMkSubfolder", "AQAAAw10="),
            status("AQAAAw11="),
            folder("DeletedEvent", "AAMkSubfolder", "AQAAAwLast="),
        ],
    );

    let response = fx.post_ews(&body).await;

    assert_eq!(response, soap_reply(SubscriptionStatus::Ok));
    let expected = pairs(&[
        ("alice", "AAMkItemA+/="),
        ("alice", "AAMkItemB"),
        ("alice", "AAMkItemC"),
        ("alice", "AAMkItemDold"),
    ]);
    let sent = fx.sent();
    assert_eq!(sent.len(), 4, "one job per distinct item: {sent:?}");
    assert_eq!(item_jobs(&sent), expected);
    assert!(sent.iter().all(|job| job.enqueued_at == now()), "{sent:?}");
    assert_eq!(item_jobs(&fx.received().await), expected);
    let alice = fx.sub(PROD, ALICE_SUB).await;
    assert_eq!(alice.last_seen, now());
    // The last event's watermark, whatever kind of event it was.
    assert_eq!(alice.watermark.as_deref(), Some("AQAAAwLast="));
    // Bob's subscription was not part of the request.
    assert_eq!(
        fx.sub(PROD, BOB_SUB).await,
        subscription(PROD, "bob", BOB_SUB, true)
    );
}

#[tokio::test]
async fn the_last_event_that_carries_a_watermark_is_the_one_recorded() {
    let fx = Fixture::new().await;
    let body = notification(
        ALICE_SUB,
        &[
            item("ModifiedEvent", "AAMkItemA", "AQAAAwWithMark="),
            Ev::Item {
                kind: "ModifiedEvent",
                id: "AAMkItemB".to_owned(),
                watermark: None,
            },
        ],
    );

    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    assert_eq!(
        item_jobs(&fx.received().await),
        pairs(&[("alice", "AAMkItemA"), ("alice", "AAMkItemB")])
    );
    let alice = fx.sub(PROD, ALICE_SUB).await;
    assert_eq!(alice.last_seen, now());
    assert_eq!(alice.watermark.as_deref(), Some("AQAAAwWithMark="));
}

#[tokio::test]
async fn notifications_of_several_subscriptions_become_jobs_of_each_user() {
    let fx = Fixture::new().await;
    let body = envelope(&[
        message(
            ALICE_SUB,
            &[item("ModifiedEvent", "AAMkShared", "AQAAAalice=")],
        ),
        // The same meeting in bob's mailbox: his own job, it is his calendar to sync.
        message(
            BOB_SUB,
            &[
                item("ModifiedEvent", "AAMkShared", "AQAAAbob1="),
                item("CreatedEvent", "AAMkBobOnly", "AQAAAbob2="),
            ],
        ),
    ]);

    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));

    let jobs = fx.received().await;
    assert_eq!(
        item_jobs(&jobs),
        pairs(&[
            ("alice", "AAMkShared"),
            ("bob", "AAMkShared"),
            ("bob", "AAMkBobOnly"),
        ])
    );
    assert_eq!(jobs.len(), 3);
    let (alice, bob) = (fx.sub(PROD, ALICE_SUB).await, fx.sub(PROD, BOB_SUB).await);
    assert_eq!(
        (alice.last_seen, alice.watermark.as_deref()),
        (now(), Some("AQAAAalice="))
    );
    assert_eq!(
        (bob.last_seen, bob.watermark.as_deref()),
        (now(), Some("AQAAAbob2="))
    );
}

#[tokio::test]
async fn a_status_notification_enqueues_nothing_and_records_that_the_subscription_lives() {
    let fx = Fixture::new().await;
    let body = notification(ALICE_SUB, &[status("AQAAAStatus=")]);

    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));

    assert!(fx.sent().is_empty(), "{:?}", fx.sent());
    assert!(fx.received().await.is_empty());
    let alice = fx.sub(PROD, ALICE_SUB).await;
    assert_eq!(alice.last_seen, now());
    assert_eq!(alice.watermark.as_deref(), Some("AQAAAStatus="));
    assert!(!alice.is_silent(now()));
}

fn job_ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

#[tokio::test]
async fn a_redelivered_request_has_the_same_job_ids_so_the_queue_drops_the_repeat() {
    let fx = Fixture::new().await;
    let body = notification(
        ALICE_SUB,
        &[
            item("ModifiedEvent", "AAMkItemA", "AQAAAw1="),
            item("DeletedEvent", "AAMkItemB", "AQAAAw2="),
        ],
    );

    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    // Exchange did not get the answer in time and sends the same request again: at once, and
    // after its first retry gap of 30 s.
    fx.clock.advance(chrono::Duration::milliseconds(500));
    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    fx.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));

    let calls = fx.queue.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].len(), 2);
    assert_eq!(job_ids(&calls[0]), job_ids(&calls[1]));
    assert_eq!(job_ids(&calls[0]), job_ids(&calls[2]));
    for id in job_ids(&calls[0]) {
        // SQS FIFO de-duplication ids are at most 128 characters.
        assert!(id.as_str().len() <= 128, "{id}");
    }
    // So the queue's de-duplication delivers each item once.
    assert_eq!(
        item_jobs(&fx.received().await),
        pairs(&[("alice", "AAMkItemA"), ("alice", "AAMkItemB")])
    );
}

#[tokio::test]
async fn two_edits_within_one_second_are_two_jobs() {
    let fx = Fixture::new().await;
    let first = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);
    let second = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw2=")]);

    assert_eq!(
        fx.post_ews(&first).await,
        soap_reply(SubscriptionStatus::Ok)
    );
    let after_first = fx.received().await;
    // The worker may already have synced the first edit; the second must still run.
    fx.clock.advance(chrono::Duration::milliseconds(200));
    assert_eq!(
        fx.post_ews(&second).await,
        soap_reply(SubscriptionStatus::Ok)
    );
    let after_second = fx.received().await;

    assert_eq!(after_first.len(), 1);
    assert_eq!(after_second.len(), 1);
    assert_ne!(after_first[0].id, after_second[0].id);
    assert_eq!(item_jobs(&after_second), pairs(&[("alice", "AAMkItemA")]));
    assert_eq!(
        fx.sub(PROD, ALICE_SUB).await.watermark.as_deref(),
        Some("AQAAAw2=")
    );
}

#[tokio::test]
async fn a_burst_about_one_item_is_one_job_named_after_its_last_event() {
    let fx = Fixture::new().await;
    let burst = notification(
        ALICE_SUB,
        &[
            item("CreatedEvent", "AAMkItemA", "AQAAAw1="),
            item("ModifiedEvent", "AAMkItemA", "AQAAAw2="),
        ],
    );
    // The same last event alone names the same job: whichever request reaches the queue
    // second is the repeat.
    let last_only = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw2=")]);

    assert_eq!(
        fx.post_ews(&burst).await,
        soap_reply(SubscriptionStatus::Ok)
    );
    assert_eq!(
        fx.post_ews(&last_only).await,
        soap_reply(SubscriptionStatus::Ok)
    );

    let sent = fx.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, sent[1].id);
    assert_eq!(fx.received().await.len(), 1);
}

#[tokio::test]
async fn events_without_watermarks_still_give_distinct_jobs_for_distinct_requests() {
    let fx = Fixture::new().await;
    let unmarked = |previous: Option<&str>| {
        envelope(&[message_with_previous(
            ALICE_SUB,
            previous,
            &[Ev::Item {
                kind: "ModifiedEvent",
                id: "AAMkItemA".to_owned(),
                watermark: None,
            }],
        )])
    };

    // With a PreviousWatermark, it names the job: a redelivery is the same job.
    let with_previous = unmarked(Some("AQAAAPrev="));
    assert_eq!(
        fx.post_ews(&with_previous).await,
        soap_reply(SubscriptionStatus::Ok)
    );
    fx.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(
        fx.post_ews(&with_previous).await,
        soap_reply(SubscriptionStatus::Ok)
    );
    let sent = fx.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, sent[1].id);

    // With no watermark at all, the time keeps later changes apart.
    let bare = unmarked(None);
    assert_eq!(fx.post_ews(&bare).await, soap_reply(SubscriptionStatus::Ok));
    fx.clock.advance(chrono::Duration::milliseconds(1));
    assert_eq!(fx.post_ews(&bare).await, soap_reply(SubscriptionStatus::Ok));
    let sent = fx.sent();
    assert_eq!(sent.len(), 4);
    let distinct: BTreeSet<&JobId> = sent.iter().map(|j| &j.id).collect();
    assert_eq!(distinct.len(), 3, "{sent:?}");
    assert_eq!(fx.received().await.len(), 3);
    // Nothing to record as a watermark; the stored one stays.
    let alice = fx.sub(PROD, ALICE_SUB).await;
    assert_eq!(
        alice.watermark,
        subscription(PROD, "alice", ALICE_SUB, true).watermark
    );
    assert_eq!(alice.last_seen, fx.clock.now());
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_accepted() {
    let fx = Fixture::new().await;
    let mut body = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);
    // Whitespace after the envelope is allowed XML; it pads the body to the limit exactly.
    body.resize(MAX_BODY_BYTES, b' ');

    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    assert_eq!(
        item_jobs(&fx.received().await),
        pairs(&[("alice", "AAMkItemA")])
    );
}

#[tokio::test]
async fn the_path_may_carry_extra_slashes() {
    let fx = Fixture::new().await;
    let body = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);

    let response = fx
        .send("POST", &format!("//ews/{PROD}//{TOKEN}/"), &body, &[])
        .await;

    assert_eq!(response, soap_reply(SubscriptionStatus::Ok));
    assert_eq!(
        item_jobs(&fx.received().await),
        pairs(&[("alice", "AAMkItemA")])
    );
}

// ---------------------------------------------------------------------------------------------
// EWS: Unsubscribe
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_inactive_subscription_is_answered_unsubscribe_and_nothing_is_enqueued() {
    let fx = Fixture::new().await;
    let body = notification(OLD_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);

    assert_eq!(
        fx.post_ews(&body).await,
        soap_reply(SubscriptionStatus::Unsubscribe)
    );
    fx.assert_nothing_happened("inactive subscription").await;
}

#[tokio::test]
async fn a_stopped_environment_answers_unsubscribe_and_enqueues_nothing() {
    let fx = Fixture::new().await;
    fx.set_started(PROD, false).await;
    let body = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);

    assert_eq!(
        fx.post_ews(&body).await,
        soap_reply(SubscriptionStatus::Unsubscribe)
    );
    assert!(fx.sent().is_empty());
    assert!(fx.received().await.is_empty());
    assert_eq!(
        fx.sub(PROD, ALICE_SUB).await,
        subscription(PROD, "alice", ALICE_SUB, true)
    );
}

#[tokio::test]
async fn an_environment_never_started_answers_unsubscribe() {
    let fx = Fixture::new().await;
    // A store without the environment's record (never started, or wiped).
    let store = Arc::new(MemoryStore::default());
    store
        .ensure_push_token(&EnvironmentId::new(PROD), TOKEN)
        .await
        .expect("store");
    store
        .put_subscription(&subscription(PROD, "alice", ALICE_SUB, true))
        .await
        .expect("store");
    let router = PushRouter {
        store,
        queue: fx.queue.clone(),
        clock: fx.clock.clone(),
        environments: fx.router.environments.clone(),
    };
    let body = notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);
    let header = |_: &str| None;

    let response = router
        .handle(&HttpRequest {
            method: "POST",
            path: &format!("/ews/{PROD}/{TOKEN}"),
            query: None,
            body: &body,
            header: &header,
        })
        .await;

    assert_eq!(response, soap_reply(SubscriptionStatus::Unsubscribe));
    assert!(fx.sent().is_empty());
}

// ---------------------------------------------------------------------------------------------
// EWS: refusals (scenarios 28 and 34)
// ---------------------------------------------------------------------------------------------

fn a_valid_notification() -> Vec<u8> {
    notification(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")])
}

#[tokio::test]
async fn a_wrong_token_is_forbidden() {
    let fx = Fixture::new().await;
    let body = a_valid_notification();
    let longer = format!("{TOKEN}0");
    let upper = TOKEN.to_uppercase();
    for token in [
        "wrong",
        &TOKEN[..TOKEN.len() - 1],
        longer.as_str(),
        upper.as_str(),
        GHOST_TOKEN,
    ] {
        let response = fx
            .send("POST", &format!("/ews/{PROD}/{token}"), &body, &[])
            .await;
        fx.assert_refused(&response, 403, &format!("token {token:?}"))
            .await;
    }
}

#[tokio::test]
async fn an_environment_without_a_push_token_is_forbidden() {
    let fx = Fixture::new().await;
    let body = notification(
        STAGING_SUB,
        &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")],
    );
    for token in [TOKEN, "anything"] {
        let response = fx
            .send("POST", &format!("/ews/{STAGING}/{token}"), &body, &[])
            .await;
        fx.assert_refused(&response, 403, &format!("staging, token {token:?}"))
            .await;
    }
}

#[tokio::test]
async fn an_unknown_environment_is_forbidden() {
    let fx = Fixture::new().await;
    // The store knows the environment, its token and the subscription; the configuration does
    // not list it, which is what counts.
    let body = a_valid_notification();
    let response = fx
        .send("POST", &format!("/ews/{GHOST}/{GHOST_TOKEN}"), &body, &[])
        .await;
    fx.assert_refused(&response, 403, "ghost environment").await;
    let response = fx
        .send("POST", &format!("/ews/nowhere/{TOKEN}"), &body, &[])
        .await;
    fx.assert_refused(&response, 403, "unknown environment")
        .await;
}

#[tokio::test]
async fn an_unknown_subscription_is_forbidden_even_among_known_ones() {
    let fx = Fixture::new().await;
    let unknown = notification(
        "JgBkZ2Vsc3ViMDAxunknown",
        &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")],
    );
    fx.assert_refused(&fx.post_ews(&unknown).await, 403, "unknown subscription")
        .await;

    // Another environment's subscription is unknown here.
    let elsewhere = notification(
        STAGING_SUB,
        &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")],
    );
    fx.assert_refused(
        &fx.post_ews(&elsewhere).await,
        403,
        "another environment's subscription",
    )
    .await;

    // One bad notification spoils the request: nothing of the good ones happens either.
    for position in 0..3 {
        let mut messages = vec![
            message(ALICE_SUB, &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]),
            message(BOB_SUB, &[item("ModifiedEvent", "AAMkItemB", "AQAAAw2=")]),
        ];
        messages.insert(
            position,
            message(
                "JgBkZ2Vsc3ViMDAxunknown",
                &[item("ModifiedEvent", "AAMkItemC", "AQAAAw3=")],
            ),
        );
        fx.assert_refused(
            &fx.post_ews(&envelope(&messages)).await,
            403,
            &format!("unknown subscription at {position}"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_on_both_endpoints() {
    let fx = Fixture::new().await;
    let mut body = a_valid_notification();
    body.resize(MAX_BODY_BYTES + 1, b' ');
    fx.assert_refused(&fx.post_ews(&body).await, 413, "EWS")
        .await;

    // Correctly signed and fresh: the size alone refuses it.
    let mut hook = ln_body("Activity", "ACT000123", "n-1");
    hook.resize(MAX_BODY_BYTES + 1, b' ');
    fx.assert_refused(&fx.post_ln(PROD, &hook, LN_SECRET, 0).await, 413, "LN")
        .await;
}

#[tokio::test]
async fn dtd_markup_is_a_bad_request() {
    let fx = Fixture::new().await;
    let valid = String::from_utf8(a_valid_notification()).expect("UTF-8");
    let envelope_start = valid.find("<soap:Envelope").expect("an envelope");
    let (declaration, rest) = valid.split_at(envelope_start);
    let cases = [
        format!("{declaration}<!DOCTYPE soap:Envelope>{rest}"),
        format!(
            "{declaration}<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>{rest}"
        ),
        format!(
            "{declaration}<!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
            rest.replace("AAMkItemA", "&xxe;")
        ),
        // Hidden in a comment is still refused.
        format!("{declaration}<!-- <!ENTITY x \"y\"> -->{rest}"),
        format!("{declaration}<!doctype soap:Envelope>{rest}"),
    ];
    for body in &cases {
        fx.assert_refused(&fx.post_ews(body.as_bytes()).await, 400, body)
            .await;
    }
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let fx = Fixture::new().await;
    let valid = a_valid_notification();
    let other_operation = format!(
        "<soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"><soap:Body><m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id=\"AAMkItemA\"/></m:ItemIds></m:GetItem></soap:Body></soap:Envelope>"
    );
    let wrong_namespace = String::from_utf8(valid.clone())
        .expect("UTF-8")
        .replace(NS_M, "urn:not-ews");
    let soap12 = String::from_utf8(valid.clone())
        .expect("UTF-8")
        .replace(NS_SOAP, "http://www.w3.org/2003/05/soap-envelope");
    let no_messages = format!(
        "<soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:m=\"{NS_M}\"><soap:Body><m:SendNotification><m:ResponseMessages/></m:SendNotification></soap:Body></soap:Envelope>"
    );
    let unknown_entity = String::from_utf8(a_valid_notification())
        .expect("UTF-8")
        .replace("AAMkItemA", "&foo;");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("whitespace", b"  \n ".to_vec()),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("not XML", b"hello".to_vec()),
        ("JSON", ln_body("Activity", "ACT000123", "n-1")),
        (
            "not UTF-8",
            [&valid[..40], &[0xff, 0xfe][..], &valid[40..]].concat(),
        ),
        ("another operation", other_operation.into_bytes()),
        ("wrong namespace", wrong_namespace.into_bytes()),
        ("SOAP 1.2", soap12.into_bytes()),
        ("no messages", no_messages.into_bytes()),
        ("undeclared entity", unknown_entity.into_bytes()),
        ("trailing garbage", [&valid[..], b"<x/>"].concat()),
    ];
    for (what, body) in &cases {
        fx.assert_refused(&fx.post_ews(body).await, 400, what).await;
    }
}

#[tokio::test]
async fn a_wrong_token_is_forbidden_before_the_body_is_read() {
    let fx = Fixture::new().await;
    // A malformed body with a wrong token: the caller learns nothing about the parser.
    let response = fx
        .send("POST", &format!("/ews/{PROD}/wrong"), b"<garbage", &[])
        .await;
    fx.assert_refused(&response, 403, "wrong token, bad body")
        .await;
}

#[tokio::test]
async fn routes_methods_and_health() {
    let fx = Fixture::new().await;
    let body = a_valid_notification();
    let ews = format!("/ews/{PROD}/{TOKEN}");
    let extra = format!("{ews}/extra");
    for (method, path, status) in [
        ("GET", ews.as_str(), 405),
        ("PUT", ews.as_str(), 405),
        ("DELETE", ews.as_str(), 405),
        ("GET", "/ln/prod", 405),
        ("POST", "/health", 405),
        ("GET", "/", 404),
        ("POST", "/", 404),
        ("GET", "/nope", 404),
        ("POST", "/ews/prod", 404),
        ("POST", "/ews", 404),
        ("POST", extra.as_str(), 404),
        ("POST", "/ln/prod/extra", 404),
        ("POST", "/EWS/prod/x", 404),
    ] {
        let response = fx.send(method, path, &body, &[]).await;
        fx.assert_refused(&response, status, &format!("{method} {path}"))
            .await;
    }
    let health = fx.send("GET", "/health", b"", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "ok");
    fx.assert_nothing_happened("health").await;
}

#[tokio::test]
async fn a_failing_queue_is_unavailable_and_the_retry_loses_nothing() {
    let fx = Fixture::new().await;
    fx.queue.down.store(true, Ordering::SeqCst);
    let body = notification(
        ALICE_SUB,
        &[item("ModifiedEvent", "AAMkItemA", "AQAAAwNew=")],
    );

    let response = fx.post_ews(&body).await;

    // Not a SOAP answer: Exchange retries the notification.
    assert_eq!(response.status, 503);
    assert_eq!(*fx.queue.failed_calls.lock().expect("lock"), 1);
    // Neither the watermark nor last_seen moved: a resubscription from the stored watermark
    // would deliver the event again.
    assert_eq!(
        fx.sub(PROD, ALICE_SUB).await,
        subscription(PROD, "alice", ALICE_SUB, true)
    );

    fx.queue.down.store(false, Ordering::SeqCst);
    fx.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    let jobs = fx.received().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].kind,
        JobKind::SingleEvent {
            exchange_id: Some(ExchangeItemId::new("AAMkItemA")),
            activity: None
        }
    );
    let alice = fx.sub(PROD, ALICE_SUB).await;
    assert_eq!(alice.last_seen, now() + chrono::Duration::seconds(30));
    assert_eq!(alice.watermark.as_deref(), Some("AQAAAwNew="));
}

#[tokio::test]
async fn a_failing_queue_does_not_matter_to_a_status_notification() {
    let fx = Fixture::new().await;
    fx.queue.down.store(true, Ordering::SeqCst);
    let body = notification(ALICE_SUB, &[status("AQAAAStatus=")]);

    // Nothing to enqueue, so the queue is not asked.
    assert_eq!(fx.post_ews(&body).await, soap_reply(SubscriptionStatus::Ok));
    assert_eq!(*fx.queue.failed_calls.lock().expect("lock"), 0);
    assert_eq!(fx.sub(PROD, ALICE_SUB).await.last_seen, now());
}

// ---------------------------------------------------------------------------------------------
// LN webhook
// ---------------------------------------------------------------------------------------------

fn activity_job(jobs: &[Job]) -> (JobId, ActivityKey) {
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job.env.as_str(), PROD);
    assert!(job.user.is_any(), "{job:?}");
    assert_eq!(job.enqueued_at, now());
    match &job.kind {
        JobKind::SingleEvent {
            exchange_id: None,
            activity: Some(activity),
        } => (job.id.clone(), activity.clone()),
        other => panic!("not an LN single-event job: {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_activity_webhook_enqueues_a_job_for_the_activity() {
    let fx = Fixture::new().await;
    let body = ln_body("Activity", "ACT000123", "0b6f-1");

    let response = fx.post_ln(PROD, &body, LN_SECRET, 0).await;

    assert_eq!(response.status, 202, "{response:?}");
    let (_, activity) = activity_job(&fx.received().await);
    assert_eq!(activity, ActivityKey::new("ACT000123"));
    assert_eq!(fx.sent().len(), 1);
}

#[tokio::test]
async fn an_attendee_webhook_enqueues_a_job_for_its_activity() {
    let fx = Fixture::new().await;
    let body = ln_body("Attendee", "ACT1/3", "0b6f-2");

    let response = fx.post_ln(PROD, &body, LN_SECRET, 0).await;

    assert_eq!(response.status, 202, "{response:?}");
    let (_, activity) = activity_job(&fx.received().await);
    assert_eq!(activity, ActivityKey::new("ACT1"));
}

#[tokio::test]
async fn a_repeated_webhook_is_one_job() {
    let fx = Fixture::new().await;
    let body = ln_body("Activity", "ACT000123", "0b6f-3");

    assert_eq!(fx.post_ln(PROD, &body, LN_SECRET, 0).await.status, 202);
    // LN retries a little later, with a new timestamp; the id is what matters.
    fx.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(fx.post_ln(PROD, &body, LN_SECRET, 0).await.status, 202);

    let sent = fx.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, sent[1].id);
    assert_eq!(fx.received().await.len(), 1);

    // Another notification about the same activity is a new job.
    let other = ln_body("Activity", "ACT000123", "0b6f-4");
    assert_eq!(fx.post_ln(PROD, &other, LN_SECRET, 0).await.status, 202);
    let sent = fx.sent();
    assert_ne!(sent[2].id, sent[0].id);
    assert_eq!(fx.received().await.len(), 1);
}

#[tokio::test]
async fn contact_and_unknown_entity_webhooks_are_acknowledged_and_ignored() {
    let fx = Fixture::new().await;
    for (entity, key) in [("Contact", "CON000042"), ("Opportunity", "OPP000001")] {
        let body = ln_body(entity, key, &format!("id-{entity}"));
        let response = fx.post_ln(PROD, &body, LN_SECRET, 0).await;
        assert_eq!(response.status, 202, "{entity}: {response:?}");
        fx.assert_nothing_happened(entity).await;
    }
}

#[tokio::test]
async fn an_environment_without_a_webhook_secret_is_forbidden() {
    let fx = Fixture::new().await;
    let body = ln_body("Activity", "ACT000123", "n-1");
    // Signed with an empty secret and with prod's: neither opens an environment without one.
    for secret in ["", LN_SECRET] {
        let response = fx.post_ln(STAGING, &body, secret, 0).await;
        fx.assert_refused(&response, 403, &format!("secret {secret:?}"))
            .await;
    }
    let response = fx.post_ln("nowhere", &body, LN_SECRET, 0).await;
    fx.assert_refused(&response, 403, "unknown environment")
        .await;
    let response = fx.post_ln(GHOST, &body, LN_SECRET, 0).await;
    fx.assert_refused(&response, 403, "unconfigured environment")
        .await;
}

#[tokio::test]
async fn missing_or_bad_signatures_are_unauthorized() {
    let fx = Fixture::new().await;
    let body = ln_body("Activity", "ACT000123", "n-1");
    let timestamp = (
        webhook::TIMESTAMP_HEADER.to_owned(),
        Utc::now().timestamp().to_string(),
    );
    let signature = |value: String| (webhook::SIGNATURE_HEADER.to_owned(), value);
    let other_body = ln_body("Activity", "ACT000999", "n-1");
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no headers", vec![]),
        ("no signature", vec![timestamp.clone()]),
        (
            "another secret",
            vec![
                signature(webhook::sign(b"not-the-secret", &body)),
                timestamp.clone(),
            ],
        ),
        (
            "another body",
            vec![
                signature(webhook::sign(LN_SECRET.as_bytes(), &other_body)),
                timestamp.clone(),
            ],
        ),
        (
            "garbage",
            vec![signature("sha256=zz".to_owned()), timestamp.clone()],
        ),
        (
            "bare hex",
            vec![
                signature(webhook::sign(LN_SECRET.as_bytes(), &body).replace("sha256=", "")),
                timestamp.clone(),
            ],
        ),
        (
            "no timestamp",
            vec![signature(webhook::sign(LN_SECRET.as_bytes(), &body))],
        ),
        (
            "malformed timestamp",
            vec![
                signature(webhook::sign(LN_SECRET.as_bytes(), &body)),
                (webhook::TIMESTAMP_HEADER.to_owned(), "yesterday".to_owned()),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let response = fx.send("POST", "/ln/prod", &body, headers).await;
        fx.assert_refused(&response, 401, what).await;
    }
}

#[tokio::test]
async fn stale_and_future_timestamps_are_unauthorized() {
    let fx = Fixture::new().await;
    let body = ln_body("Activity", "ACT000123", "n-1");
    for age in [600, -600] {
        let response = fx.post_ln(PROD, &body, LN_SECRET, age).await;
        fx.assert_refused(&response, 401, &format!("{age} s old"))
            .await;
    }
}

#[tokio::test]
async fn a_correctly_signed_malformed_webhook_is_a_bad_request() {
    let fx = Fixture::new().await;
    for body in [
        &b"{not json"[..],
        b"",
        b"[]",
        br#"{"entity":"Activity","key":"ACT1","change":"exploded","id":"n-1"}"#,
        br#"{"entity":"Activity","key":"ACT1","change":"created"}"#,
    ] {
        let response = fx.post_ln(PROD, body, LN_SECRET, 0).await;
        fx.assert_refused(&response, 400, &String::from_utf8_lossy(body))
            .await;
    }
}

#[tokio::test]
async fn a_webhook_for_a_stopped_environment_is_acknowledged_and_ignored() {
    let fx = Fixture::new().await;
    fx.set_started(PROD, false).await;
    let body = ln_body("Activity", "ACT000123", "n-1");

    let response = fx.post_ln(PROD, &body, LN_SECRET, 0).await;

    // Acknowledged, so LN does not retry what would be ignored again.
    assert_eq!(response.status, 202, "{response:?}");
    assert!(fx.sent().is_empty());
    assert!(fx.received().await.is_empty());
}

#[tokio::test]
async fn a_failing_queue_makes_the_webhook_unavailable() {
    let fx = Fixture::new().await;
    fx.queue.down.store(true, Ordering::SeqCst);
    let body = ln_body("Activity", "ACT000123", "n-1");

    let response = fx.post_ln(PROD, &body, LN_SECRET, 0).await;

    // LN retries a 5xx; once the queue is back the retry is accepted.
    assert_eq!(response.status, 503);
    assert_eq!(*fx.queue.failed_calls.lock().expect("lock"), 1);
    fx.queue.down.store(false, Ordering::SeqCst);
    assert_eq!(fx.post_ln(PROD, &body, LN_SECRET, 0).await.status, 202);
    let (_, activity) = activity_job(&fx.received().await);
    assert_eq!(activity, ActivityKey::new("ACT000123"));
}

// ---------------------------------------------------------------------------------------------
// Logs (R41: never the push token)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_logged_path_never_holds_the_token() {
    for path in [
        format!("/ews/{PROD}/{TOKEN}"),
        format!("/ews/{PROD}/{TOKEN}/"),
        // The router routes these like the plain path, so their refusals are logged too.
        format!("//ews/{PROD}/{TOKEN}"),
        format!("/ews//{PROD}/{TOKEN}"),
        format!("/ews/{PROD}//{TOKEN}"),
    ] {
        let logged = loggable_path(&path);
        assert!(!logged.contains(TOKEN), "{path} logged as {logged}");
        assert!(logged.contains(PROD), "{path} logged as {logged}");
    }
    assert_eq!(loggable_path("/ln/prod"), "/ln/prod");
}

/// Collects formatted log output, to check what a refusal writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_and_acceptances_do_not_log_the_token() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // While it is the only registered subscriber, tracing decides whether a callsite is enabled
    // by asking the subscriber of whichever thread reaches it first: a router callsite first
    // reached by a concurrent test would be cached as disabled and this test would see nothing.
    // A second registered (silent) subscriber makes tracing ask every registered one.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    // Scoped to this thread, which runs the whole (current-thread) test.
    let _guard = tracing::subscriber::set_default(subscriber);
    let fx = Fixture::new().await;
    let valid = a_valid_notification();
    let unknown = notification("unknown", &[item("ModifiedEvent", "AAMkItemA", "AQAAAw1=")]);
    let mut oversized = valid.clone();
    oversized.resize(MAX_BODY_BYTES + 1, b' ');
    let bad = b"<bad".to_vec();
    for path in [
        format!("/ews/{PROD}/{TOKEN}"),
        format!("//ews/{PROD}/{TOKEN}"),
        format!("/ews/{PROD}//{TOKEN}/"),
    ] {
        for body in [&valid, &unknown, &oversized, &bad] {
            fx.send("POST", &path, body, &[]).await;
        }
        fx.send("GET", &path, &valid, &[]).await;
    }

    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("UTF-8");
    assert!(text.contains("push request refused"), "{text}");
    assert!(text.contains("EWS notification accepted"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn method_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just("POST".to_owned()),
        1 => Just("GET".to_owned()),
        1 => Just("PUT".to_owned()),
        1 => "[A-Za-z]{0,8}",
    ]
}

fn ews_path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(format!("/ews/{PROD}/{TOKEN}")),
        1 => Just(format!("//ews/{PROD}//{TOKEN}/")),
        1 => Just(format!("/ews/{PROD}/wrong")),
        1 => Just(format!("/ews/{STAGING}/{TOKEN}")),
        1 => Just(format!("/ews/{GHOST}/{GHOST_TOKEN}")),
    ]
}

fn ln_path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(format!("/ln/{PROD}")),
        1 => Just(format!("/ln/{STAGING}")),
        1 => Just(format!("/ln/{GHOST}")),
    ]
}

fn any_path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => ews_path_strategy(),
        2 => ln_path_strategy(),
        1 => Just("/health".to_owned()),
        2 => "(/(ews|ln|health|prod|[a-z0-9]{0,6})){0,4}/?",
        2 => "[ -~]{0,60}",
    ]
}

fn subscription_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(ALICE_SUB.to_owned()),
        4 => Just(BOB_SUB.to_owned()),
        1 => Just(OLD_SUB.to_owned()),
        1 => Just(STAGING_SUB.to_owned()),
        1 => "[A-Za-z0-9+/=]{1,24}",
    ]
}

fn event_strategy() -> impl Strategy<Value = Ev> {
    let id = "AAMk[A-Za-z0-9+/]{1,8}=?";
    let watermark = "AQAA[A-Za-z0-9]{1,8}=";
    let item_kind = prop_oneof![
        Just("CreatedEvent"),
        Just("ModifiedEvent"),
        Just("DeletedEvent"),
        Just("NewMailEvent"),
        Just("FreeBusyChangedEvent"),
    ];
    prop_oneof![
        4 => (item_kind, id, proptest::option::of(watermark)).prop_map(|(kind, id, watermark)| {
            Ev::Item { kind, id, watermark }
        }),
        1 => (prop_oneof![Just("MovedEvent"), Just("CopiedEvent")], id, id, watermark)
            .prop_map(|(kind, id, old_id, watermark)| Ev::Relocated { kind, id, old_id, watermark }),
        1 => (prop_oneof![Just("CreatedEvent"), Just("ModifiedEvent")], id, watermark)
            .prop_map(|(kind, id, watermark)| Ev::Folder { kind, id, watermark }),
        1 => watermark.prop_map(|watermark| Ev::Status { watermark }),
    ]
}

fn notification_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (
            subscription_strategy(),
            proptest::collection::vec(event_strategy(), 0..5),
        ),
        1..3,
    )
    .prop_map(|messages| {
        envelope(
            &messages
                .iter()
                .map(|(sub, events)| message(sub, events))
                .collect::<Vec<_>>(),
        )
    })
}

fn webhook_body_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            3 => Just("Activity".to_owned()),
            3 => Just("Attendee".to_owned()),
            1 => Just("Contact".to_owned()),
            1 => "[A-Za-z]{0,10}",
        ],
        prop_oneof![
            3 => "ACT[0-9]{1,6}",
            3 => "ACT[0-9]{1,6}/[0-9]{1,3}",
            1 => "[ -~]{0,12}",
        ],
        prop_oneof![6 => "[0-9a-f-]{1,12}", 1 => "[ -~]{0,12}"],
    )
        .prop_map(|(entity, key, id)| ln_body(&entity, &key, &id))
}

/// `body` with one byte changed, inserted or removed.
fn mutated(body: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (body, any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(
        |(mut body, at, byte, how)| {
            if body.is_empty() {
                return vec![byte];
            }
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                _ => {
                    body.remove(i);
                }
            }
            body
        },
    )
}

fn junk_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~\n]{0,300}".prop_map(String::into_bytes),
    ]
}

/// How the LN headers are made: absent, arbitrary, or a real signature (right or wrong secret).
#[derive(Debug, Clone)]
enum Signing {
    Absent,
    Arbitrary(String),
    Signed { with_right_secret: bool },
}

fn signing_strategy() -> impl Strategy<Value = Signing> {
    prop_oneof![
        1 => Just(Signing::Absent),
        1 => "[ -~]{0,80}".prop_map(Signing::Arbitrary),
        1 => "sha256=[0-9a-f]{64}".prop_map(Signing::Arbitrary),
        6 => Just(Signing::Signed { with_right_secret: true }),
        1 => Just(Signing::Signed { with_right_secret: false }),
    ]
}

/// Timestamp offsets stay clear of the ±300 s edge, which the router checks against its own
/// (slightly later) reading of the clock.
fn timestamp_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        6 => (-250i64..250)
            .prop_map(|offset| Some((Utc::now().timestamp() + offset).to_string())),
        1 => prop_oneof![400i64..5000, -5000i64..-400]
            .prop_map(|offset| Some((Utc::now().timestamp() + offset).to_string())),
        1 => "[ -~]{0,20}".prop_map(Some),
    ]
}

/// One generated request.
#[derive(Debug, Clone)]
struct Generated {
    method: String,
    path: String,
    body: Vec<u8>,
    signing: Signing,
    timestamp: Option<String>,
}

/// Requests aimed at the EWS endpoint, at the LN endpoint, and at anything, so that accepted,
/// refused and malformed requests of both kinds all come up often.
fn request_strategy() -> impl Strategy<Value = Generated> {
    let ews_body = prop_oneof![
        5 => notification_strategy(),
        3 => mutated(notification_strategy()),
        1 => junk_strategy(),
    ];
    let ln_body = prop_oneof![
        5 => webhook_body_strategy(),
        2 => mutated(webhook_body_strategy()),
        1 => junk_strategy(),
    ];
    let any_body = prop_oneof![
        notification_strategy(),
        webhook_body_strategy(),
        mutated(notification_strategy()),
        junk_strategy(),
    ];
    let make = |(method, path, body, signing, timestamp)| Generated {
        method,
        path,
        body,
        signing,
        timestamp,
    };
    prop_oneof![
        3 => (method_strategy(), ews_path_strategy(), ews_body, signing_strategy(), timestamp_strategy())
            .prop_map(make),
        3 => (method_strategy(), ln_path_strategy(), ln_body, signing_strategy(), timestamp_strategy())
            .prop_map(make),
        2 => (method_strategy(), any_path_strategy(), any_body, signing_strategy(), timestamp_strategy())
            .prop_map(make),
    ]
}

/// The jobs a request must produce, worked out from the specification rather than the router:
/// `None` when the request is not an authenticated notification at all.
async fn expected_outcome(
    fx: &Fixture,
    method: &str,
    path: &str,
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
) -> Option<Vec<(String, String)>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if method != "POST" || body.len() > MAX_BODY_BYTES {
        return None;
    }
    if segments == ["ews", PROD, TOKEN] {
        let notifications = notify::parse_send_notification(body).ok()?;
        let mut subs = Vec::new();
        for n in &notifications {
            subs.push(
                fx.store
                    .subscription(&EnvironmentId::new(PROD), &n.subscription)
                    .await
                    .ok()??,
            );
        }
        if subs.is_empty() || subs.iter().any(|s| !s.active) {
            // Authenticated, but nothing to enqueue (or a 400 for an empty request).
            return Some(Vec::new());
        }
        let mut jobs = BTreeSet::new();
        for (sub, n) in subs.iter().zip(&notifications) {
            for event in &n.events {
                let target = match event {
                    NotificationEvent::Item {
                        kind: EventKind::Created | EventKind::Modified | EventKind::Deleted,
                        item_id,
                        ..
                    } => Some(item_id),
                    // types.xsd gives every MovedEvent an OldItemId; without one, the item id.
                    NotificationEvent::Item {
                        kind: EventKind::Moved,
                        item_id,
                        old_item_id,
                        ..
                    } => Some(old_item_id.as_ref().unwrap_or(item_id)),
                    _ => None,
                };
                if let Some(id) = target {
                    jobs.insert((sub.user.to_string(), id.to_string()));
                }
            }
        }
        return Some(jobs.into_iter().collect());
    }
    if segments == ["ln", PROD] {
        let hook =
            webhook::verify(LN_SECRET.as_bytes(), body, signature, timestamp, Utc::now()).ok()?;
        return Some(
            hook.activity()
                .map(|a| vec![(UserId::ANY.to_owned(), a.to_string())])
                .unwrap_or_default(),
        );
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    /// Whatever arrives, the router answers without panicking; anything it cannot authenticate
    /// gets a 4xx and leaves the queue and the store alone; and what it enqueues is exactly the
    /// jobs of a valid notification of a known subscription (or signed LN webhook).
    #[test]
    fn arbitrary_requests_enqueue_only_what_authenticated_notifications_ask_for(
        request in request_strategy(),
    ) {
        let Generated { method, path, body, signing, timestamp } = request;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let fx = Fixture::new().await;
            let before = fx.all_subscriptions().await;
            let signature = match &signing {
                Signing::Absent => None,
                Signing::Arbitrary(s) => Some(s.clone()),
                Signing::Signed { with_right_secret: true } => {
                    Some(webhook::sign(LN_SECRET.as_bytes(), &body))
                }
                Signing::Signed { with_right_secret: false } => {
                    Some(webhook::sign(b"guessed", &body))
                }
            };
            let mut headers = Vec::new();
            if let Some(s) = &signature {
                headers.push((webhook::SIGNATURE_HEADER.to_owned(), s.clone()));
            }
            if let Some(t) = &timestamp {
                headers.push((webhook::TIMESTAMP_HEADER.to_owned(), t.clone()));
            }
            let expected = expected_outcome(
                &fx, &method, &path, &body, signature.as_deref(), timestamp.as_deref(),
            )
            .await;

            let response = fx.send(&method, &path, &body, &headers).await;

            prop_assert!(
                [200, 202, 400, 401, 403, 404, 405, 413].contains(&response.status),
                "{response:?}"
            );
            let sent: BTreeSet<(String, String)> = fx
                .sent()
                .iter()
                .map(|job| match &job.kind {
                    JobKind::SingleEvent { exchange_id: Some(id), activity: None } => {
                        (job.user.to_string(), id.to_string())
                    }
                    JobKind::SingleEvent { exchange_id: None, activity: Some(a) } => {
                        (job.user.to_string(), a.to_string())
                    }
                    other => (job.user.to_string(), format!("unexpected {other:?}")),
                })
                .collect();
            let health = method == "GET"
                && path.split('/').filter(|s| !s.is_empty()).eq(["health"]);
            match expected {
                None => {
                    if !health {
                        prop_assert!(
                            (400..500).contains(&response.status),
                            "unauthenticated request answered {response:?}"
                        );
                    }
                    prop_assert!(sent.is_empty(), "enqueued {sent:?}");
                    prop_assert_eq!(fx.all_subscriptions().await, before);
                }
                Some(jobs) => {
                    let jobs: BTreeSet<(String, String)> = jobs.into_iter().collect();
                    prop_assert_eq!(&sent, &jobs);
                    if !jobs.is_empty() {
                        prop_assert!(matches!(response.status, 200 | 202), "{response:?}");
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
