//! A circuit breaker: after `threshold` consecutive failures Redis is skipped for a
//! cool-down, then one call probes it. While open, cache calls cost nothing and the caller
//! goes to the database, so a dead Redis adds no latency beyond the first few timeouts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: go ahead.
    Go,
    /// Half-open: this call is the one probe; its outcome closes or reopens the breaker.
    Probe,
    /// Open: do not touch Redis.
    Skip,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight since `since`. A probe whose future was dropped never reports,
    /// so after another cool-down a new probe is let through.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cool_down: Duration,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cool_down,
        }
    }

    pub(crate) fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    pub(crate) fn admit_at(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until } | State::HalfOpen { since: until } if now < until => {
                Admission::Skip
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen {
                    since: now + self.cool_down,
                };
                Admission::Probe
            }
        }
    }

    /// A call succeeded: the breaker closes. Returns whether it was open before.
    pub(crate) fn succeeded(&self) -> bool {
        let mut state = self.lock();
        let was_open = !matches!(*state, State::Closed { .. });
        *state = State::Closed { failures: 0 };
        was_open
    }

    /// A call failed. Returns whether this failure opened the breaker.
    pub(crate) fn failed(&self) -> bool {
        self.failed_at(Instant::now())
    }

    pub(crate) fn failed_at(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let open = State::Open {
            until: now + self.cool_down,
        };
        match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *state = open;
                true
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::HalfOpen { .. } => {
                *state = open;
                true
            }
            // A call admitted before the breaker opened: it is open already.
            State::Open { .. } => false,
        }
    }

    /// Whether calls are being skipped (open, or half-open waiting for its probe).
    pub(crate) fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-updated.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(5);

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_only() {
        let breaker = Breaker::new(3, COOL_DOWN);
        let now = Instant::now();
        assert!(!breaker.failed_at(now));
        assert!(!breaker.failed_at(now));
        breaker.succeeded();
        assert!(!breaker.failed_at(now));
        assert!(!breaker.failed_at(now));
        assert_eq!(breaker.admit_at(now), Admission::Go);
        assert!(breaker.failed_at(now));
        assert_eq!(breaker.admit_at(now), Admission::Skip);
        assert!(breaker.is_open());
    }

    #[test]
    fn after_the_cool_down_exactly_one_probe_goes_through() {
        let breaker = Breaker::new(1, COOL_DOWN);
        let now = Instant::now();
        breaker.failed_at(now);
        assert_eq!(breaker.admit_at(now + COOL_DOWN / 2), Admission::Skip);
        assert_eq!(breaker.admit_at(now + COOL_DOWN), Admission::Probe);
        assert_eq!(breaker.admit_at(now + COOL_DOWN), Admission::Skip);
        // The probe failed: open for another cool-down.
        assert!(breaker.failed_at(now + COOL_DOWN));
        assert_eq!(breaker.admit_at(now + COOL_DOWN * 3 / 2), Admission::Skip);
        assert_eq!(breaker.admit_at(now + COOL_DOWN * 2), Admission::Probe);
        // This one succeeded: closed again.
        assert!(breaker.succeeded());
        assert_eq!(breaker.admit_at(now + COOL_DOWN * 2), Admission::Go);
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_cool_down() {
        let breaker = Breaker::new(1, COOL_DOWN);
        let now = Instant::now();
        breaker.failed_at(now);
        assert_eq!(breaker.admit_at(now + COOL_DOWN), Admission::Probe);
        assert_eq!(breaker.admit_at(now + COOL_DOWN * 2), Admission::Probe);
    }
}
