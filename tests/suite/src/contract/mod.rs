//! The contract suites and the runner they share.
//!
//! A suite is a table of [`Case`]s: a name and a function that takes a fresh instance of the
//! port (a store, a queue, or a mailbox client with its simulator). [`run_cases`] runs them concurrently, one task each, and panics at the end with the
//! names and messages of every failed case, so one broken case doesn't hide the others.

pub mod mailbox;
pub mod queue;
pub mod store;

use futures::future::BoxFuture;
use std::future::Future;

/// One named test of a suite, run against a fresh `T` (a store, or a queue).
pub struct Case<T> {
    pub name: &'static str,
    pub run: fn(T) -> BoxFuture<'static, ()>,
}

impl<T> std::fmt::Debug for Case<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// Runs every case on its own instance from `make`, concurrently, and panics listing every
/// failure. Needs a tokio runtime; a multi-threaded one makes the race cases meaningful.
pub async fn run_cases<T, C, M, Fut>(suite: &str, cases: &[C], make: M)
where
    C: CaseLike<T>,
    M: Fn(&C) -> Fut,
    Fut: Future<Output = T>,
{
    let mut running = Vec::with_capacity(cases.len());
    for case in cases {
        let instance = make(case).await;
        running.push((case.name(), tokio::spawn(case.start(instance))));
    }
    let mut failures = Vec::new();
    for (name, handle) in running {
        if let Err(e) = handle.await {
            let message = if e.is_panic() {
                let payload = e.into_panic();
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned())
            } else {
                e.to_string()
            };
            failures.push(format!("  {name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {suite} contract cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What [`run_cases`] needs from a case table entry.
pub trait CaseLike<T> {
    fn name(&self) -> &'static str;
    fn start(&self, instance: T) -> BoxFuture<'static, ()>;
}

impl<T> CaseLike<T> for Case<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn start(&self, instance: T) -> BoxFuture<'static, ()> {
        (self.run)(instance)
    }
}
