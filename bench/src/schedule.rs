//! The open loop's timeline. Send `i` is due at `i / rate` seconds after the start, whatever
//! happened to the sends before it: a server that stalls does not slow the arrivals down, so
//! latency measured from these due times shows the stall (no coordinated omission).

use std::time::Duration;

use crate::args::Limits;

/// When send `index` is due, counted from the start of the run.
pub fn due_at(index: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate)
}

/// How many sends the open loop schedules: every due time inside the duration, at most
/// `count`. `None` when neither bounds it (the caller refuses that).
pub fn planned_sends(limits: Limits, rate: f64) -> Option<u64> {
    let by_duration = limits.duration.map(|d| {
        // Sends due at 0, 1/rate, … strictly before the end.
        let exact = d.as_secs_f64() * rate;
        let whole = exact.ceil();
        if whole > u64::MAX as f64 {
            u64::MAX
        } else {
            whole as u64
        }
    });
    match (by_duration, limits.count) {
        (Some(d), Some(c)) => Some(d.min(c)),
        (d, c) => d.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_evenly_spaced_from_zero() {
        assert_eq!(due_at(0, 100.0), Duration::ZERO);
        assert_eq!(due_at(1, 100.0), Duration::from_millis(10));
        assert_eq!(due_at(250, 100.0), Duration::from_millis(2500));
        assert_eq!(due_at(3, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn the_timeline_does_not_drift_over_a_long_run() {
        // Summing 1/3 s steps would drift; computing each due time from its index does not.
        let due = due_at(3_000_000, 3.0);
        assert_eq!(due, Duration::from_secs(1_000_000));
    }

    #[test]
    fn the_duration_and_the_count_bound_the_sends_whichever_is_first() {
        let ten_seconds = Some(Duration::from_secs(10));
        let limits = |duration, count| Limits { duration, count };
        assert_eq!(planned_sends(limits(ten_seconds, None), 100.0), Some(1000));
        assert_eq!(
            planned_sends(limits(ten_seconds, Some(50)), 100.0),
            Some(50)
        );
        assert_eq!(planned_sends(limits(None, Some(50)), 100.0), Some(50));
        assert_eq!(planned_sends(limits(None, None), 100.0), None);
        // 2.5 sends in 1 s at 2.5/s: due at 0, 0.4 and 0.8 s.
        assert_eq!(
            planned_sends(limits(Some(Duration::from_secs(1)), None), 2.5),
            Some(3)
        );
    }
}
