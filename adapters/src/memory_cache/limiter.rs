//! The per-user send limit, in process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use duet_domain::UserId;
use duet_domain::cache::{SendDecision, SendLimiter, SendQuota};

use super::lock;

/// A per-user send rate in this process (GCRA: each user's theoretical arrival time).
pub struct MemorySendLimiter {
    quota: SendQuota,
    arrivals: Mutex<HashMap<UserId, Instant>>,
}

/// Above this many tracked users, idle ones are forgotten on the next check.
const PRUNE_ABOVE: usize = 10_000;

impl MemorySendLimiter {
    pub fn new(quota: SendQuota) -> Self {
        Self {
            quota,
            arrivals: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SendLimiter for MemorySendLimiter {
    async fn check(&self, user: UserId) -> SendDecision {
        let now = Instant::now();
        let mut arrivals = lock(&self.arrivals);
        if arrivals.len() > PRUNE_ABOVE {
            // A user whose arrival time has passed is as good as new.
            arrivals.retain(|_, tat| *tat > now);
        }
        let tat = arrivals.get(&user).copied().unwrap_or(now).max(now);
        let next = tat + self.quota.emission_interval();
        let allowed_from = next.checked_sub(self.quota.tolerance()).unwrap_or(now);
        if allowed_from > now {
            return SendDecision::Limited {
                retry_after: allowed_from - now,
            };
        }
        arrivals.insert(user, next);
        SendDecision::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    #[tokio::test]
    async fn the_send_limiter_allows_a_burst_then_the_steady_rate() {
        let quota = SendQuota {
            per_second: NonZeroU32::new(10).expect("non-zero"),
            burst: NonZeroU32::new(3).expect("non-zero"),
        };
        let limiter = MemorySendLimiter::new(quota);
        let (user, other) = (UserId::generate(), UserId::generate());
        for _ in 0..3 {
            assert_eq!(limiter.check(user).await, SendDecision::Allowed);
        }
        let SendDecision::Limited { retry_after } = limiter.check(user).await else {
            panic!("the fourth send within the burst must be limited");
        };
        assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}");
        assert_eq!(limiter.check(other).await, SendDecision::Allowed);
        tokio::time::sleep(retry_after).await;
        assert_eq!(limiter.check(user).await, SendDecision::Allowed);
    }
}
