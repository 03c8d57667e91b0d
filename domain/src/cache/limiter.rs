use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;

use crate::UserId;

/// How fast one user may send: a steady `per_second` with room for `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendQuota {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl SendQuota {
    /// Generous enough that people typing, and the benchmarks, never meet it.
    pub const DEFAULT: Self = Self {
        per_second: NonZeroU32::new(20).expect("non-zero"),
        burst: NonZeroU32::new(40).expect("non-zero"),
    };

    /// The time one message "costs" in the generic cell rate algorithm (GCRA).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_secs(1) / self.per_second.get()
    }

    /// How far ahead of now a user's theoretical arrival time may run: a full burst.
    pub fn tolerance(&self) -> Duration {
        self.emission_interval() * self.burst.get()
    }
}

impl Default for SendQuota {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the limiter decided about one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendDecision {
    Allowed,
    /// Over the quota: the next send will be allowed after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// A per-user send rate, shared by every process that serves the user.
#[async_trait]
pub trait SendLimiter: Send + Sync {
    /// Counts one send by `user` and says whether it may go ahead. A backend failure is
    /// `Allowed` (fail open): a limiter outage must not stop people from talking.
    async fn check(&self, user: UserId) -> SendDecision;
}
