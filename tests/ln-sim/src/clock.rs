//! The simulator's notion of "now" for server-assigned timestamps.
//!
//! LN stamps `lastModified` and `deletedAt` itself; the synchronizer's watermark logic depends on
//! those values, including the awkward case of several rows sharing one timestamp. Tests therefore
//! need to pin or move server time, while everything else (token lifetimes, the request log) keeps
//! following the real clock.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A clock that follows system time until a test freezes or offsets it.
///
/// Cloning shares the same clock, so a test can hold a handle while the server uses another.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    inner: Arc<Mutex<ClockMode>>,
}

#[derive(Debug, Clone, Copy, Default)]
enum ClockMode {
    /// System time plus an offset (zero by default).
    #[default]
    System,
    Offset(Duration),
    Frozen(DateTime<Utc>),
}

impl SimClock {
    /// A clock that follows system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock frozen at `at`.
    pub fn frozen(at: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.freeze_at(at);
        clock
    }

    /// Current server time, truncated to milliseconds because LN stores timestamps at that
    /// precision; untruncated values would make round-trips through filters lossy.
    pub fn now(&self) -> DateTime<Utc> {
        let now = match *self.mode() {
            ClockMode::System => Utc::now(),
            ClockMode::Offset(offset) => Utc::now() + offset,
            ClockMode::Frozen(at) => at,
        };
        truncate_ms(now)
    }

    /// Stop the clock at `at`: every write stamps exactly this time until the clock moves again.
    pub fn freeze_at(&self, at: DateTime<Utc>) {
        *self.mode() = ClockMode::Frozen(truncate_ms(at));
    }

    /// Stop the clock at the current time.
    pub fn freeze(&self) -> DateTime<Utc> {
        let now = self.now();
        self.freeze_at(now);
        now
    }

    /// Move the clock by `by` (frozen clocks stay frozen, running clocks keep running).
    pub fn advance(&self, by: Duration) {
        let mut mode = self.mode();
        *mode = match *mode {
            ClockMode::System => ClockMode::Offset(by),
            ClockMode::Offset(offset) => ClockMode::Offset(offset + by),
            ClockMode::Frozen(at) => ClockMode::Frozen(truncate_ms(at + by)),
        };
    }

    /// Keep running from `at` onwards (system time shifted so that now == `at`).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.mode() = ClockMode::Offset(at - Utc::now());
    }

    /// Back to plain system time.
    pub fn reset(&self) {
        *self.mode() = ClockMode::System;
    }

    /// Whether the clock is frozen.
    pub fn is_frozen(&self) -> bool {
        matches!(*self.mode(), ClockMode::Frozen(_))
    }

    fn mode(&self) -> std::sync::MutexGuard<'_, ClockMode> {
        // A panic while holding this lock cannot leave the mode half-written (it is Copy), so a
        // poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Truncate to whole milliseconds.
pub fn truncate_ms(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::milliseconds(1)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_repeats_and_advances() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T10:00:00.123456Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let clock = SimClock::frozen(at);
        assert_eq!(clock.now(), clock.now());
        assert_eq!(clock.now().timestamp_subsec_micros(), 123_000);
        clock.advance(Duration::seconds(5));
        assert_eq!(clock.now(), truncate_ms(at) + Duration::seconds(5));
        assert!(clock.is_frozen());
        clock.reset();
        assert!(!clock.is_frozen());
    }

    #[test]
    fn set_keeps_running_from_given_time() {
        let clock = SimClock::system();
        let at = Utc::now() - Duration::days(30);
        clock.set(at);
        let now = clock.now();
        assert!(now >= truncate_ms(at) && now < at + Duration::seconds(5));
    }
}
