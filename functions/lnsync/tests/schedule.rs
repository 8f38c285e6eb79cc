//! `lnsync run --schedule`'s loop ([`run_scheduled`]) against the simulators, on a fast clock:
//! each kind runs on its own LN pull interval, on the interval's aligned boundaries (R6), from
//! the same tick and worker the Lambdas use.

use chrono::{DateTime, TimeZone, Utc};
use ln_sim::model::{Interval, Settings, TimeUnit};
use lnsync_core::model::Job;
use lnsync_core::ports::{Clock, StateStore};
use lnsync_runtime::jobs::JobOutcome;
use lnsync_runtime::runner::Connector;
use lnsync_runtime::scheduled::{SchedulePacing, run_scheduled};
use lnsync_tests::harness::{TestResult, World, live_connector, qualifying_contacts};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Simulated minutes per real second: 1 simulated minute every 200 ms, so a 5-minute calendar
/// interval is one real second, far longer than a drain of this small world takes.
const SPEED: u32 = 300;

/// lnsync's clock: `start`, moving `SPEED` times faster than real time.
struct FastClock {
    start: DateTime<Utc>,
    real: Instant,
}

impl Clock for FastClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.real.elapsed() * SPEED;
        self.start + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, h, m, s)
        .single()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_calendars_run_on_their_own_aligned_intervals() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(5))
        .start()
        .await?;
    world.ln.store().set_settings(
        "100",
        Settings {
            contact_pull_interval: Interval::new(15, TimeUnit::Minutes),
            calendar_pull_interval: Interval::new(5, TimeUnit::Minutes),
            ..Settings::default()
        },
    )?;
    // Half a minute past 07:00, so every boundary is well away from a tick.
    let start = at(7, 0, 30);
    let clock = Arc::new(FastClock {
        start,
        real: Instant::now(),
    });
    // The simulators stamp LN `lastModified` and Exchange times from the same starting point.
    world.ln.clock().set(start);
    world.ews.set_clock(start);

    let jobs: Mutex<Vec<(Job, JobOutcome)>> = Mutex::default();
    let stop_at = at(7, 32, 30);
    let stop_clock = clock.clone();
    let shutdown = async move {
        while stop_clock.now() < stop_at {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let store: Arc<dyn StateStore> = world.store.clone();
    let connector: Arc<dyn Connector> = Arc::new(live_connector());
    let summary = run_scheduled(
        &world.config,
        store,
        connector,
        clock.clone(),
        SchedulePacing {
            // 20 ms real = 6 simulated seconds.
            tick_every: Duration::from_millis(20),
            ..SchedulePacing::default()
        },
        shutdown,
        |job, outcome| {
            jobs.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((job.clone(), outcome.clone()));
        },
    )
    .await;

    let jobs = jobs.into_inner().unwrap_or_else(PoisonError::into_inner);
    for (job, outcome) in &jobs {
        assert!(
            matches!(outcome, JobOutcome::Done { .. }),
            "{}: {outcome:?}",
            job.id
        );
    }
    // Which boundaries each (user, kind) ran for: the job id ends with its boundary.
    let mut ran: BTreeMap<(String, &str), Vec<String>> = BTreeMap::new();
    for (job, _) in &jobs {
        let boundary = job.id.as_str().rsplit('/').next().unwrap_or_default();
        ran.entry((job.user.to_string(), job.kind.label()))
            .or_default()
            .push(boundary[9..13].to_owned());
    }
    let contacts = ["0700", "0715", "0730"];
    let calendar = ["0700", "0705", "0710", "0715", "0720", "0725", "0730"];
    for user in ["alice", "bob"] {
        assert_eq!(
            ran.get(&(user.to_owned(), "contacts")).map(Vec::as_slice),
            Some(&contacts.map(String::from)[..]),
            "{user}'s contact runs: {ran:#?}"
        );
        assert_eq!(
            ran.get(&(user.to_owned(), "calendar")).map(Vec::as_slice),
            Some(&calendar.map(String::from)[..]),
            "{user}'s calendar runs: {ran:#?}"
        );
    }
    assert_eq!(summary.failed, 0);
    assert!(
        summary.ticks > 100,
        "ticked every few simulated seconds: {summary:?}"
    );
    // R14: the contact feed once per boundary for both users, not once per user.
    assert_eq!(world.ln.count_calls("GET", "Contacts"), 3);
    assert_eq!(world.crm_items(world.mailbox(0, 0)).len(), 5);

    // The next due times are the intervals' next boundaries.
    let alice = world.user_state("prod", "alice").await?;
    assert_eq!(alice.next_contact_run, Some(at(7, 45, 0)));
    assert_eq!(alice.next_calendar_run, Some(at(7, 35, 0)));
    Ok(())
}
