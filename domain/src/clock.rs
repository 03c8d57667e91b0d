//! The time Duet stamps on what it stores.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps no finer, and a time returned in a 201
/// must equal the same time read back later, on every backend.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_times_have_whole_microseconds() {
        assert_eq!(super::now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
