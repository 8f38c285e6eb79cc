//! Push latency on loopback: from an edit in Exchange (the EWS simulator, as a user in Outlook)
//! to the LN write, through the simulator's real push callback, `lnsync serve`'s endpoint, its
//! in-process queue and worker (GetItem, then the LN PATCH). 100 edits, one at a time; prints
//! p50, p95 and max. A measurement, not a test:
//!
//! ```text
//! cargo run -p lnsync-tests --example push_latency [--release] [-- EDITS]
//! ```

use ews_sim::EventEdit;
use lnsync_tests::harness::BoxError;
use lnsync_tests::push_world::Served;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), BoxError> {
    let edits: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100);
    let (s, latency) =
        Served::with_appointment(Duration::from_secs(3600), "alice", "Latency", 2, 10).await?;
    let (cal, event, key) = (s.cal.clone(), &latency.event, &latency.ln_key);
    let mut samples = Vec::with_capacity(edits);
    for i in 0..edits {
        let subject = format!("Latency #{i}");
        let started = Instant::now();
        cal.user_edits(
            "alice",
            &event.id,
            EventEdit {
                subject: Some(subject.clone()),
                ..EventEdit::default()
            },
        )?;
        loop {
            if s.ln_subject(key).as_deref() == Some(subject.as_str()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("edit {i} did not reach LN within 30 s").into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(started.elapsed());
        // Let the echo of the LN write (its webhook) pass before the next edit.
        s.settle().await?;
    }
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    println!(
        "push latency, Exchange edit → LN write, {} edits on loopback: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    s.stop().await
}
