//! Push latency on loopback: from an edit in Exchange (the simulator, as a user in Outlook) to
//! the LN write, through the simulator's real notification (an EWS push callback, or a Graph
//! change notification), `lnsync serve`'s endpoint, its in-process queue and worker (the item
//! read, then the LN PATCH). 100 edits, one at a time; prints p50, p95 and max. On Graph this
//! includes the simulator's notification batching window (100 ms by default, as Graph batches
//! changes too). A measurement, not a test:
//!
//! ```text
//! cargo run -p lnsync-tests --example push_latency [--release] [-- [--exchange ews|graph] [EDITS]]
//! ```

use ews_sim::EventEdit;
use lnsync_tests::harness::{Backend, BoxError};
use lnsync_tests::push_world::Served;
use std::time::{Duration, Instant};

/// `[--exchange ews|graph] [EDITS]`, in any order.
fn args() -> Result<(Backend, usize), BoxError> {
    let (mut backend, mut edits) = (Backend::Ews, 100);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exchange" => {
                backend = match args.next().as_deref() {
                    Some("ews") => Backend::Ews,
                    Some("graph") => Backend::Graph,
                    other => return Err(format!("--exchange ews|graph, not {other:?}").into()),
                }
            }
            n => edits = n.parse()?,
        }
    }
    Ok((backend, edits))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), BoxError> {
    let (backend, edits) = args()?;
    let (s, latency) = Served::with_appointment(
        backend,
        Duration::from_secs(3600),
        "alice",
        "Latency",
        2,
        10,
    )
    .await?;
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
        "push latency ({backend}), Exchange edit → LN write, {} edits on loopback: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if backend == Backend::Graph {
        // Graph collects the changes of a short window into one POST, and so does the
        // simulator: that wait is Graph's, not lnsync's.
        println!(
            "  including the simulator's Graph batching window of {} ms before each notification",
            cal.world.ews.graph_push_config().batch_window_ms
        );
    }
    s.stop().await
}
