//! The per-mailbox gate (R37, exchange.md §3.8): Outlook allows an app four concurrent requests
//! per mailbox, and a `Retry-After` answer applies to the mailbox it was given for. Each mailbox
//! gets a semaphore with `max_in_flight` permits and a "not before" instant that every one of its
//! requests waits for; other mailboxes are never delayed by it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lnsync_core::ids::MailboxAddress;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// The instant requests must wait for, when it lies in the future.
    fn pending(&self) -> Option<Instant> {
        let mut slot = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *slot {
            Some(at) if at > Instant::now() => Some(at),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }
}

/// Permission to have requests in flight for one mailbox; released on drop.
#[derive(Debug)]
pub(crate) struct Pass {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The gates of every mailbox one `GraphMailbox` has talked to.
#[derive(Debug)]
pub(crate) struct Gates {
    max_in_flight: usize,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Gates {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, mailbox: &MailboxAddress) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        gates
            .entry(mailbox.as_str().to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(Gate {
                    permits: Arc::new(Semaphore::new(self.max_in_flight)),
                    not_before: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits until the mailbox may be called again and `weight` requests of it may be in flight
    /// (a `$batch` counts as up to `max_in_flight`: Outlook runs its inner requests in
    /// parallel against the mailbox).
    pub(crate) async fn enter(&self, mailbox: &MailboxAddress, weight: usize) -> Pass {
        let gate = self.gate(mailbox);
        let weight = u32::try_from(weight.clamp(1, self.max_in_flight)).unwrap_or(1);
        loop {
            if let Some(at) = gate.pending() {
                tokio::time::sleep_until(at).await;
            }
            // The semaphore is never closed, so acquiring only fails if that changes; the
            // request then goes ahead ungated rather than failing.
            let permit = gate.permits.clone().acquire_many_owned(weight).await.ok();
            // A throttling answer may have arrived while this request queued for a permit.
            if gate.pending().is_none() {
                return Pass { _permit: permit };
            }
        }
    }

    /// Holds every request of `mailbox` back for `wait` (from now), unless it is held longer
    /// already.
    pub(crate) fn hold(&self, mailbox: &MailboxAddress, wait: Duration) {
        let gate = self.gate(mailbox);
        let until = Instant::now() + wait;
        let mut slot = gate
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(slot.map_or(until, |at| at.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn mb(s: &str) -> MailboxAddress {
        MailboxAddress::new(s)
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_in_flight_per_mailbox() {
        let gates = Arc::new(Gates::new(4));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (gates, now, peak) = (gates.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _pass = gates.enter(&mb("A@x"), 1).await;
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            assert!(t.await.is_ok());
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_only_its_mailbox() {
        let gates = Gates::new(4);
        gates.hold(&mb("a@x"), Duration::from_secs(5));
        let start = Instant::now();
        drop(gates.enter(&mb("b@x"), 1).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Case-insensitive: the same mailbox however it is spelt.
        drop(gates.enter(&mb("A@X"), 1).await);
        assert!(start.elapsed() >= Duration::from_secs(5));
        // A shorter hold does not shorten a longer one.
        gates.hold(&mb("a@x"), Duration::from_secs(10));
        gates.hold(&mb("a@x"), Duration::from_secs(1));
        let again = Instant::now();
        drop(gates.enter(&mb("a@x"), 4).await);
        assert!(again.elapsed() >= Duration::from_secs(10));
    }
}
