//! The `JobQueue` contract against the in-process queue and against SQS FIFO queues on a moto
//! server (`lnsync_tests::moto`: `MOTO_ENDPOINT`, or `.venv/moto` from `make tools`; never
//! skipped), plus the in-process queue's default timings (minutes) checked on paused tokio time.

use lnsync_adapters::memqueue::{InMemoryQueue, InMemoryQueueConfig};
use lnsync_adapters::sqs::{QueueUrls, SqsJobQueue, create_queues};
use lnsync_core::ids::{EnvironmentId, JobId, UserId};
use lnsync_core::model::{Job, JobKind};
use lnsync_core::ports::JobQueue;
use lnsync_tests::contract::queue::{QueueConfig, run_all};
use lnsync_tests::moto::{moto, unique_name};
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

// ---------------------------------------------------------------------------------------------
// SQS FIFO on moto: the contract, plus what only the SQS queue does.
// ---------------------------------------------------------------------------------------------

/// Fresh FIFO queues (job queue + dead-letter queue) on this process's moto server.
async fn sqs_queues(visibility: Duration, max_receives: u32) -> (SqsJobQueue, QueueUrls) {
    let client = moto().sqs();
    let urls = create_queues(
        &client,
        &unique_name("lnsync-jobs"),
        visibility,
        max_receives,
    )
    .await
    .expect("create queues");
    let queue = SqsJobQueue::new(client, urls.queue_url.clone())
        .with_dead_letter_queue(urls.dead_letter_url.clone());
    (queue, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_fifo_on_moto() {
    run_all(|c: QueueConfig| async move {
        Arc::new(sqs_queues(c.visibility, c.max_receives).await.0) as Arc<dyn JobQueue>
    })
    .await;
}

#[tokio::test]
async fn sqs_dead_letter_queue_is_found_from_the_redrive_policy() {
    let (_, urls) = sqs_queues(Duration::from_secs(30), 3).await;
    let queue = SqsJobQueue::new(moto().sqs(), urls.queue_url.clone());
    assert_eq!(
        queue.dead_letter_url().await.expect("discover"),
        urls.dead_letter_url
    );
    assert!(queue.dead_letters().await.expect("empty").is_empty());
}

/// Reading dead letters does not consume them: the console can look twice.
#[tokio::test]
async fn sqs_dead_letters_are_read_not_consumed() {
    let (queue, urls) = sqs_queues(Duration::from_secs(30), 3).await;
    let client = moto().sqs();
    for (id, user) in [("d1", "a"), ("d2", "a"), ("d3", "b")] {
        let j = job(id, user);
        client
            .send_message()
            .queue_url(&urls.dead_letter_url)
            .message_body(serde_json::to_string(&j).expect("encode"))
            .message_group_id(j.group())
            .message_deduplication_id(id)
            .send()
            .await
            .expect("send to the dead-letter queue");
    }
    let ids = |jobs: Vec<Job>| {
        let mut ids: Vec<String> = jobs.iter().map(|j| j.id.as_str().to_owned()).collect();
        ids.sort();
        ids
    };
    let first = ids(queue.dead_letters().await.expect("first look"));
    assert_eq!(first, ["d1", "d2", "d3"]);
    let second = ids(queue.dead_letters().await.expect("second look"));
    assert_eq!(second, first);
}

/// SQS (unlike the in-process queue) may hand out several messages of one group in one
/// receive, in order: the worker must process them in order and stop at the first failure.
#[tokio::test]
async fn sqs_one_receive_may_hold_several_jobs_of_one_user_in_order() {
    let (queue, _) = sqs_queues(Duration::from_secs(30), 3).await;
    queue
        .enqueue(&[job("a1", "a"), job("a2", "a"), job("a3", "a")])
        .await
        .expect("enqueue");
    let got = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    let ids: Vec<&str> = got.iter().map(|d| d.job.id.as_str()).collect();
    assert!(!ids.is_empty());
    assert_eq!(ids, ["a1", "a2", "a3"][..ids.len()]);
}

/// Ids SQS would refuse as group or de-duplication ids (non-ASCII, too long) are hashed; the
/// job itself travels unchanged and still de-duplicates.
#[tokio::test]
async fn sqs_ids_outside_the_fifo_alphabet_still_work() {
    let (queue, _) = sqs_queues(Duration::from_secs(30), 3).await;
    let odd = Job {
        id: JobId::new(format!("jöb {}", "x".repeat(200))),
        ..job("unused", "Zoë Müller")
    };
    queue
        .enqueue(&[odd.clone(), odd.clone()])
        .await
        .expect("enqueue");
    let got = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job, odd);
}
