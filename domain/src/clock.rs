//! The time Duet stamps on what it stores, and the [`Clock`] port services read it from, so
//! a test can hold time still or move it on (a session that expires at exactly its TTL).

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps no finer, and a time returned in a 201
/// must equal the same time read back later, on every backend.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Where a service reads the current time.
pub trait Clock: Send + Sync {
    /// The current time, in whole microseconds (see [`now`]).
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock: what every service uses unless given another.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_times_have_whole_microseconds() {
        assert_eq!(super::now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
