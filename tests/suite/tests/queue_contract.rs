//! The `JobQueue` contract against the in-process queue, plus the in-process queue's default
//! timings (minutes) checked on paused tokio time.

use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
use lnsync_core::ids::{EnvironmentId, JobId, UserId};
use lnsync_core::model::{Job, JobKind};
use lnsync_core::ports::JobQueue;
use lnsync_tests::contract::queue::{QueueConfig, run_all};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_queue() {
    run_all(|c: QueueConfig| async move {
        Arc::new(InMemoryQueue::new(InMemoryQueueConfig {
            visibility: c.visibility,
            max_receives: c.max_receives,
            ..InMemoryQueueConfig::default()
        })) as Arc<dyn JobQueue>
    })
    .await;
}

fn job(id: &str, user: &str) -> Job {
    Job {
        id: JobId::new(id),
        env: EnvironmentId::new("e"),
        user: UserId::new(user),
        kind: JobKind::CalendarPull,
        enqueued_at: chrono::Utc::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn default_visibility_is_a_minute() {
    let q = InMemoryQueue::new(InMemoryQueueConfig::default());
    q.enqueue(&[job("a1", "a")]).await.expect("enqueue");
    let first = q.receive(1, Duration::ZERO).await.expect("receive");
    assert_eq!(first.len(), 1);
    let start = tokio::time::Instant::now();
    // With paused time the wait auto-advances straight to the visibility deadline.
    let again = q
        .receive(1, Duration::from_secs(120))
        .await
        .expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn default_dedup_window_is_five_minutes() {
    let q = InMemoryQueue::new(InMemoryQueueConfig::default());
    q.enqueue(&[job("j1", "a")]).await.expect("enqueue");
    let d = q
        .receive(1, Duration::ZERO)
        .await
        .expect("receive")
        .remove(0);
    q.complete(&d.receipt).await.expect("complete");

    tokio::time::advance(Duration::from_secs(299)).await;
    q.enqueue(&[job("j1", "a")])
        .await
        .expect("within the window");
    assert!(
        q.receive(1, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty()
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    q.enqueue(&[job("j1", "a")])
        .await
        .expect("after the window");
    assert_eq!(
        q.receive(1, Duration::ZERO).await.expect("receive").len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn default_dead_letters_after_five_receives() {
    let q = InMemoryQueue::new(InMemoryQueueConfig::default());
    q.enqueue(&[job("a1", "a")]).await.expect("enqueue");
    for n in 1..=5 {
        let d = q
            .receive(1, Duration::from_secs(3600))
            .await
            .expect("receive")
            .remove(0);
        assert_eq!(d.receive_count, n);
        // Not completed: it comes back when its visibility ends.
    }
    assert!(
        q.receive(1, Duration::from_secs(3600))
            .await
            .expect("receive")
            .is_empty()
    );
    let dead = q.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id.as_str(), "a1");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_sees_a_shorter_retry_delay() {
    let q = Arc::new(InMemoryQueue::new(InMemoryQueueConfig::default()));
    q.enqueue(&[job("a1", "a")]).await.expect("enqueue");
    let d = q
        .receive(1, Duration::ZERO)
        .await
        .expect("receive")
        .remove(0);
    let start = tokio::time::Instant::now();
    let waiter = {
        let q = Arc::clone(&q);
        tokio::spawn(async move { q.receive(1, Duration::from_secs(3600)).await })
    };
    tokio::task::yield_now().await;
    // The waiter went to sleep until the 60 s visibility; the retry must wake it earlier.
    q.retry_later(&d.receipt, Duration::from_secs(5))
        .await
        .expect("retry later");
    let again = waiter.await.expect("waiter").expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}
