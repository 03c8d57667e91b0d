//! The cache metrics, shared by the Redis and in-process adapters:
//!
//! - `duet_cache_requests_total{cache, result}`: `cache` is `session` or `history`, `result`
//!   is `hit`, `miss` or `error`; the history hit ratio is `hit / (hit + miss + error)`.
//! - `duet_cache_fallbacks_total{cache, reason}`: calls that went without Redis (`reason` is
//!   `circuit_open`, `timeout` or `error`): a miss, an "allowed" send, an offline answer.
//! - `duet_cache_circuit_open`: 1 while the breaker skips Redis.

/// How a cache lookup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Hit,
    Miss,
    Error,
}

pub(crate) fn lookup(cache: &'static str, result: Lookup) {
    let result = match result {
        Lookup::Hit => "hit",
        Lookup::Miss => "miss",
        Lookup::Error => "error",
    };
    metrics::counter!("duet_cache_requests_total", "cache" => cache, "result" => result)
        .increment(1);
}

pub(crate) fn fallback(cache: &'static str, reason: &'static str) {
    metrics::counter!("duet_cache_fallbacks_total", "cache" => cache, "reason" => reason)
        .increment(1);
}

pub(crate) fn circuit_open(open: bool) {
    metrics::gauge!("duet_cache_circuit_open").set(if open { 1.0 } else { 0.0 });
}
