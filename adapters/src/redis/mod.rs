//! Redis: session and history caches, presence, shared send rate limits.
//!
//! Everything goes through one [`RedisCache`] handle: a deadpool pool with bounded
//! wait/create/recycle timeouts, a per-call deadline, a key prefix (so deployments and test
//! runs never collide) and a circuit breaker. Redis is an accelerator: every failure becomes
//! a miss, an "allowed" or an "offline" in the port implementations, counted in
//! [`metrics`](self::metrics), never an error to the caller.
//!
//! - [`RedisSessionCache`]: token hash → (user id, expiry), with revocation tombstones.
//! - [`RedisHistoryCache`]: per conversation, a sorted set of the newest messages by seq.
//! - [`RedisSendLimiter`]: a per-user GCRA in a Lua script, shared by every process.
//! - [`RedisPresence`]: per-user sorted set of live processes, plus a longer-lived last-seen.

mod breaker;
mod client;
mod history;
mod limiter;
pub(crate) mod metrics;
mod presence;
mod session;

pub use client::{RedisCache, RedisOptions};
pub use history::RedisHistoryCache;
pub use limiter::RedisSendLimiter;
pub use presence::RedisPresence;
pub use session::RedisSessionCache;

/// Hit, miss and error counts of one cache instance, beside the process-wide metrics, for
/// tests and diagnostics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`CacheStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
}

impl CacheStats {
    pub(crate) fn record(&self, cache: &'static str, result: metrics::Lookup) {
        use std::sync::atomic::Ordering::Relaxed;
        let counter = match result {
            metrics::Lookup::Hit => &self.hits,
            metrics::Lookup::Miss => &self.misses,
            metrics::Lookup::Error => &self.errors,
        };
        counter.fetch_add(1, Relaxed);
        metrics::lookup(cache, result);
    }

    pub fn counts(&self) -> CacheCounts {
        use std::sync::atomic::Ordering::Relaxed;
        CacheCounts {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}
