//! The `JobQueue` contract: SQS FIFO semantics that the worker relies on, checked the same way
//! against the in-process queue and (later) SQS on a local emulator.
//!
//! Each case declares the [`QueueConfig`] it needs; [`run_all`] asks the factory for a fresh,
//! empty queue with that configuration:
//!
//! ```no_run
//! use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
//! use lnsync_core::ports::JobQueue;
//! use lnsync_tests::contract::queue::{QueueConfig, run_all};
//! use std::sync::Arc;
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn in_memory() {
//!     run_all(|c: QueueConfig| async move {
//!         let config = InMemoryQueueConfig {
//!             visibility: c.visibility,
//!             max_receives: c.max_receives,
//!             ..InMemoryQueueConfig::default()
//!         };
//!         Arc::new(InMemoryQueue::new(config)) as Arc<dyn JobQueue>
//!     })
//!     .await;
//! }
//! ```
//!
//! The cases run on real time, since an emulator's clock can't be paused. Durations are whole
//! seconds where SQS would need them (visibility, retry delay); short receive waits are
//! fractions of a second, which an SQS adapter may round up to a second. No case needs more
//! than about two seconds.
//!
//! What the contract allows, because SQS does it: several messages of one group in a single
//! batch (in order); messages of different groups in any order.

use super::CaseLike;
use chrono::Utc;
use futures::future::BoxFuture;
use lnsync_core::error::QueueError;
use lnsync_core::ids::{EnvironmentId, JobId, UserId};
use lnsync_core::model::{Job, JobKind};
use lnsync_core::ports::{Delivery, JobQueue, Receipt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The queue under test.
pub type Queue = Arc<dyn JobQueue>;

/// What a case needs configured on its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Visibility timeout of a received message.
    pub visibility: Duration,
    /// Deliveries before a message goes to the dead-letter queue.
    pub max_receives: u32,
}

/// Long enough that no message reappears by itself during a case.
const STEADY: QueueConfig = QueueConfig {
    visibility: Duration::from_secs(30),
    max_receives: 5,
};

/// Short enough to watch a message reappear within a case.
const SHORT_VISIBILITY: QueueConfig = QueueConfig {
    visibility: Duration::from_secs(1),
    max_receives: 5,
};

/// Long enough for the first message of a case to arrive.
const ARRIVAL: Duration = Duration::from_secs(1);

/// How long a case waits to conclude "nothing is deliverable".
const QUIET: Duration = Duration::from_millis(300);

/// Timing slack for lower bounds (timer granularity).
const SLACK: Duration = Duration::from_millis(100);

/// One case of the queue contract: a name, the configuration it needs, and the test.
pub struct QueueCase {
    pub name: &'static str,
    pub config: QueueConfig,
    pub run: fn(Queue) -> BoxFuture<'static, ()>,
}

impl std::fmt::Debug for QueueCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCase")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

impl CaseLike<Queue> for QueueCase {
    fn name(&self) -> &'static str {
        self.name
    }
    fn start(&self, queue: Queue) -> BoxFuture<'static, ()> {
        (self.run)(queue)
    }
}

macro_rules! cases {
    ($($name:ident: $config:expr),* $(,)?) => {
        /// Every case of the queue contract with the configuration it needs.
        pub const CASES: &[QueueCase] = &[
            $(QueueCase { name: stringify!($name), config: $config, run: |q| Box::pin($name(q)) },)*
        ];
    };
}

cases!(
    fifo_within_each_group: STEADY,
    group_is_blocked_while_in_flight: STEADY,
    other_groups_are_not_blocked: STEADY,
    receive_returns_at_most_max: STEADY,
    duplicate_ids_are_dropped: STEADY,
    receive_waits_for_a_message: STEADY,
    receive_times_out_when_empty: STEADY,
    unfinished_message_reappears_after_visibility: SHORT_VISIBILITY,
    completed_message_does_not_reappear: SHORT_VISIBILITY,
    retry_later_delays_redelivery: STEADY,
    dead_letter_after_max_receives: QueueConfig { max_receives: 2, ..STEADY },
    unknown_receipt_is_rejected: STEADY,
);

/// Runs every case, each on a fresh empty queue made with the case's configuration, and panics
/// listing all failures.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn(QueueConfig) -> Fut,
    Fut: Future<Output = Queue>,
{
    super::run_cases("JobQueue", CASES, |case: &QueueCase| make(case.config)).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Job `id` in the group of user `user` (environment "e").
fn job(id: &str, user: &str) -> Job {
    Job {
        id: JobId::new(id),
        env: EnvironmentId::new("e"),
        user: UserId::new(user),
        kind: JobKind::ContactPull,
        enqueued_at: Utc::now(),
    }
}

fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.job.id.as_str().to_owned())
        .collect()
}

/// Receives exactly one delivery, waiting up to `wait`.
async fn receive_one(queue: &Queue, wait: Duration) -> Delivery {
    let mut got = queue.receive(1, wait).await.expect("receive");
    assert_eq!(
        got.len(),
        1,
        "expected one delivery within {wait:?}, got {:?}",
        ids(&got)
    );
    got.remove(0)
}

/// Asserts that nothing is delivered within [`QUIET`].
async fn assert_quiet(queue: &Queue, why: &str) {
    let got = queue.receive(10, QUIET).await.expect("receive");
    assert!(got.is_empty(), "{why}: got {:?}", ids(&got));
}

/// Receives and completes until `n` jobs were delivered (or two seconds passed), completing
/// each batch in order; returns the job ids in delivery order.
async fn drain(queue: &Queue, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut order = Vec::new();
    while order.len() < n && Instant::now() < deadline {
        for d in queue
            .receive(10, Duration::from_millis(500))
            .await
            .expect("receive")
        {
            order.push(d.job.id.as_str().to_owned());
            queue.complete(&d.receipt).await.expect("complete");
        }
    }
    order
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

pub async fn fifo_within_each_group(queue: Queue) {
    // 12 of user a in one call (more than one SQS batch), interleaved calls for user b.
    let a: Vec<Job> = (0..12).map(|i| job(&format!("a{i:02}"), "a")).collect();
    queue.enqueue(&a[..1]).await.expect("enqueue a00");
    for i in 0..3 {
        queue
            .enqueue(&[job(&format!("b{i}"), "b")])
            .await
            .expect("enqueue b");
    }
    queue.enqueue(&a[1..]).await.expect("enqueue the rest of a");

    let order = drain(&queue, 15).await;
    let mut per_group: BTreeMap<char, Vec<String>> = BTreeMap::new();
    for id in &order {
        per_group
            .entry(id.chars().next().unwrap_or('?'))
            .or_default()
            .push(id.clone());
    }
    let expected_a: Vec<String> = a.iter().map(|j| j.id.as_str().to_owned()).collect();
    assert_eq!(
        per_group.get(&'a'),
        Some(&expected_a),
        "order of a in {order:?}"
    );
    assert_eq!(
        per_group.get(&'b'),
        Some(&vec!["b0".to_owned(), "b1".to_owned(), "b2".to_owned()]),
        "order of b in {order:?}"
    );
}

pub async fn group_is_blocked_while_in_flight(queue: Queue) {
    queue.enqueue(&[job("a1", "a")]).await.expect("enqueue a1");
    queue.enqueue(&[job("a2", "a")]).await.expect("enqueue a2");
    let first = receive_one(&queue, ARRIVAL).await;
    assert_eq!(first.job.id.as_str(), "a1");
    assert_eq!(first.receive_count, 1);
    assert_quiet(&queue, "a2 must wait while a1 is in flight").await;

    queue.complete(&first.receipt).await.expect("complete a1");
    let second = receive_one(&queue, ARRIVAL).await;
    assert_eq!(second.job.id.as_str(), "a2");
    assert_eq!(second.receive_count, 1);
    queue.complete(&second.receipt).await.expect("complete a2");
}

pub async fn other_groups_are_not_blocked(queue: Queue) {
    queue
        .enqueue(&[
            job("a1", "a"),
            job("a2", "a"),
            job("b1", "b"),
            job("c1", "c"),
        ])
        .await
        .expect("enqueue");
    // One at a time and nothing completed: each group gives its head, a2 stays back.
    let mut heads = Vec::new();
    for _ in 0..3 {
        heads.push(receive_one(&queue, ARRIVAL).await);
    }
    let got: BTreeSet<String> = ids(&heads).into_iter().collect();
    let expected: BTreeSet<String> = ["a1", "b1", "c1"].map(str::to_owned).into();
    assert_eq!(got, expected);
    assert_quiet(&queue, "every group has its head in flight").await;

    let a1 = heads
        .iter()
        .find(|d| d.job.id.as_str() == "a1")
        .expect("a1 delivered");
    queue.complete(&a1.receipt).await.expect("complete a1");
    assert_eq!(receive_one(&queue, ARRIVAL).await.job.id.as_str(), "a2");
}

pub async fn receive_returns_at_most_max(queue: Queue) {
    let jobs: Vec<Job> = ["a", "b", "c", "d"]
        .iter()
        .map(|u| job(&format!("{u}1"), u))
        .collect();
    queue.enqueue(&jobs).await.expect("enqueue");
    let first = queue.receive(2, ARRIVAL).await.expect("receive");
    assert!(
        (1..=2).contains(&first.len()),
        "receive(2) gave {:?}",
        ids(&first)
    );
    let rest = drain(&queue, 4 - first.len()).await;
    let mut all: Vec<String> = ids(&first).into_iter().chain(rest).collect();
    all.sort();
    assert_eq!(all, ["a1", "b1", "c1", "d1"]);
}

pub async fn duplicate_ids_are_dropped(queue: Queue) {
    queue
        .enqueue(&[job("j1", "a"), job("j1", "a")])
        .await
        .expect("same id twice in one call");
    queue
        .enqueue(&[job("j1", "a")])
        .await
        .expect("same id again");
    queue.enqueue(&[job("j2", "a")]).await.expect("another id");
    assert_eq!(drain(&queue, 2).await, ["j1", "j2"]);
    // Completed or not, the id is remembered for the de-duplication window.
    queue
        .enqueue(&[job("j1", "a")])
        .await
        .expect("after completion");
    assert_quiet(&queue, "a re-sent id within the window is dropped").await;
}

pub async fn receive_waits_for_a_message(queue: Queue) {
    let sender = Arc::clone(&queue);
    let started = Instant::now();
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.enqueue(&[job("late", "a")]).await.expect("enqueue");
    });
    let got = queue
        .receive(1, Duration::from_millis(1500))
        .await
        .expect("receive");
    let waited = started.elapsed();
    send.await.expect("sender");
    assert_eq!(ids(&got), ["late"]);
    assert!(
        waited >= Duration::from_millis(300) - SLACK,
        "returned before the send: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1400),
        "kept waiting after the send: {waited:?}"
    );
}

pub async fn receive_times_out_when_empty(queue: Queue) {
    let started = Instant::now();
    let got = queue
        .receive(10, Duration::from_millis(500))
        .await
        .expect("receive");
    let waited = started.elapsed();
    assert!(got.is_empty(), "got {:?}", ids(&got));
    assert!(
        waited >= Duration::from_millis(500) - SLACK,
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1800),
        "waited far too long: {waited:?}"
    );
}

pub async fn unfinished_message_reappears_after_visibility(queue: Queue) {
    queue.enqueue(&[job("a1", "a")]).await.expect("enqueue");
    let first = receive_one(&queue, ARRIVAL).await;
    let received_at = Instant::now();
    assert_eq!(first.receive_count, 1);
    assert_quiet(&queue, "invisible while in flight").await;

    let again = receive_one(&queue, Duration::from_millis(1500)).await;
    let after = received_at.elapsed();
    assert_eq!(again.job.id.as_str(), "a1");
    assert_eq!(again.receive_count, 2);
    assert!(
        after >= Duration::from_secs(1) - SLACK,
        "reappeared after {after:?}"
    );
    queue
        .complete(&again.receipt)
        .await
        .expect("complete with the latest receipt");
}

pub async fn completed_message_does_not_reappear(queue: Queue) {
    queue.enqueue(&[job("a1", "a")]).await.expect("enqueue");
    let d = receive_one(&queue, ARRIVAL).await;
    queue.complete(&d.receipt).await.expect("complete");
    let got = queue
        .receive(10, Duration::from_millis(1300))
        .await
        .expect("receive");
    assert!(got.is_empty(), "completed job came back: {:?}", ids(&got));
}

pub async fn retry_later_delays_redelivery(queue: Queue) {
    queue.enqueue(&[job("a1", "a")]).await.expect("enqueue a1");
    let first = receive_one(&queue, ARRIVAL).await;
    queue.enqueue(&[job("b1", "b")]).await.expect("enqueue b1");
    queue
        .retry_later(&first.receipt, Duration::from_secs(1))
        .await
        .expect("retry later");
    let asked_at = Instant::now();

    // A throttled mailbox must not stall the others (R37).
    let other = receive_one(&queue, ARRIVAL).await;
    assert_eq!(other.job.id.as_str(), "b1");
    queue.complete(&other.receipt).await.expect("complete b1");

    let again = receive_one(&queue, Duration::from_millis(1500)).await;
    let after = asked_at.elapsed();
    assert_eq!(again.job.id.as_str(), "a1");
    assert_eq!(again.receive_count, 2);
    assert!(
        after >= Duration::from_secs(1) - SLACK,
        "redelivered after {after:?}"
    );
    queue.complete(&again.receipt).await.expect("complete a1");
}

pub async fn dead_letter_after_max_receives(queue: Queue) {
    // max_receives = 2.
    queue
        .enqueue(&[job("a1", "a"), job("a2", "a")])
        .await
        .expect("enqueue");
    for attempt in 1..=2 {
        let d = receive_one(&queue, ARRIVAL).await;
        assert_eq!(d.job.id.as_str(), "a1");
        assert_eq!(d.receive_count, attempt);
        // Zero delay: visible again at once, which also counts as a failed attempt.
        queue
            .retry_later(&d.receipt, Duration::ZERO)
            .await
            .expect("retry now");
    }
    // The third delivery of a1 would exceed the limit: it is dead-lettered and a2 follows.
    let next = receive_one(&queue, ARRIVAL).await;
    assert_eq!(next.job.id.as_str(), "a2");
    assert_eq!(next.receive_count, 1);
    queue.complete(&next.receipt).await.expect("complete a2");

    let deadline = Instant::now() + Duration::from_secs(1);
    let dead = loop {
        let dead = queue.dead_letters().await.expect("dead letters");
        if !dead.is_empty() || Instant::now() >= deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead_ids: Vec<&str> = dead.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(dead_ids, ["a1"]);
    assert_eq!(dead[0].group(), job("a1", "a").group());
}

pub async fn unknown_receipt_is_rejected(queue: Queue) {
    let bogus = Receipt("not-a-receipt".to_owned());
    assert!(
        matches!(
            queue.complete(&bogus).await,
            Err(QueueError::UnknownReceipt)
        ),
        "complete with a bogus receipt"
    );
    assert!(
        matches!(
            queue.retry_later(&bogus, Duration::from_secs(1)).await,
            Err(QueueError::UnknownReceipt)
        ),
        "retry_later with a bogus receipt"
    );
}
