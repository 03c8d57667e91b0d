//! The cache section of the settings (and the send limit) become the optional accelerators
//! the services use: session and history caches, the send limiter and presence.
//!
//! - `none`: every read goes to the database; presence and the send limit are per process.
//! - `memory`: the latest page of each conversation is cached in process too (safe with any
//!   number of processes: a cached page is used only when it reaches the conversation's
//!   `last_seq` read from the database). Sessions are cached in process only when this
//!   process is the only one that can revoke them (SQLite: one process per database file);
//!   with PostgreSQL several processes may share the sessions, and a log-out on one must
//!   hold on all at once, which only Redis gives.
//! - `redis`: sessions, history pages, presence and the send limit live in Redis, shared by
//!   every process; when Redis is down or slow everything falls back to the database.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use duet_adapters::memory_cache::{
    MemoryHistoryCache, MemoryPresence, MemorySendLimiter, MemorySessionCache,
};
use duet_adapters::redis::{
    RedisCache, RedisHistoryCache, RedisOptions, RedisPresence, RedisSendLimiter, RedisSessionCache,
};
use duet_domain::cache::{HistoryCache, Presence, SendLimiter, SendQuota, SessionCache};

use crate::config::{CacheKind, CacheSettings, LimitSettings};

/// Conversations whose latest page the in-process cache keeps (least recently used go).
const MEMORY_CONVERSATIONS: usize = 10_000;
/// How long an untouched conversation's page stays in Redis.
const HISTORY_TTL: Duration = Duration::from_secs(3600);
/// How long Redis remembers when a user was last seen.
const LAST_SEEN_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The wired accelerators; `None` means the service goes to the database.
pub struct CacheStack {
    pub sessions: Option<Arc<dyn SessionCache>>,
    pub history: Option<Arc<dyn HistoryCache>>,
    pub send_limit: Option<Arc<dyn SendLimiter>>,
    pub presence: Arc<dyn Presence>,
    /// Set with Redis: reported by the readiness check.
    pub redis: Option<RedisCache>,
}

/// Redis options from the settings.
pub fn redis_options(settings: &CacheSettings) -> RedisOptions {
    let redis = &settings.redis;
    let timeout = Duration::from_millis(redis.timeout_ms.max(1));
    RedisOptions {
        url: redis.url.expose().to_owned(),
        key_prefix: redis.key_prefix.clone(),
        pool_size: redis.pool_size,
        connect_timeout: timeout,
        command_timeout: timeout,
        failure_threshold: redis.breaker_failures.max(1),
        cool_down: Duration::from_millis(redis.breaker_cooldown_ms),
    }
}

/// The send quota, or `None` when `limits.sends_per_second` is 0 (no limit).
pub fn send_quota(limits: &LimitSettings) -> Option<SendQuota> {
    Some(SendQuota {
        per_second: NonZeroU32::new(limits.sends_per_second)?,
        burst: NonZeroU32::new(limits.send_burst)?,
    })
}

/// Builds what the settings ask for. `sole_revoker` says whether this process is the only
/// one that can revoke a session (SQLite storage); only then may `memory` cache sessions.
///
/// # Errors
/// A malformed Redis URL (Redis being down is not an error: it is optional).
pub fn build(
    settings: &CacheSettings,
    limits: &LimitSettings,
    sole_revoker: bool,
) -> anyhow::Result<CacheStack> {
    let quota = send_quota(limits);
    let presence_ttl = Duration::from_secs(settings.presence_ttl_secs.max(1));
    let session_ttl = Duration::from_secs(settings.session_ttl_secs.max(1));
    let history_messages = u32::try_from(settings.history_messages).unwrap_or(u32::MAX);
    match settings.kind {
        CacheKind::None | CacheKind::Memory => Ok(CacheStack {
            sessions: (settings.kind == CacheKind::Memory && sole_revoker)
                .then(|| Arc::new(MemorySessionCache::new(session_ttl)) as Arc<dyn SessionCache>),
            history: (settings.kind == CacheKind::Memory).then(|| {
                Arc::new(MemoryHistoryCache::new(
                    history_messages,
                    MEMORY_CONVERSATIONS,
                )) as Arc<dyn HistoryCache>
            }),
            send_limit: quota
                .map(|quota| Arc::new(MemorySendLimiter::new(quota)) as Arc<dyn SendLimiter>),
            presence: Arc::new(MemoryPresence::new()),
            redis: None,
        }),
        CacheKind::Redis => {
            let redis = RedisCache::connect(&redis_options(settings))
                .map_err(|err| anyhow::anyhow!("cache.redis: {err}"))?;
            Ok(CacheStack {
                sessions: Some(Arc::new(RedisSessionCache::new(redis.clone(), session_ttl))),
                history: Some(Arc::new(RedisHistoryCache::new(
                    redis.clone(),
                    history_messages,
                    HISTORY_TTL,
                ))),
                send_limit: quota.map(|quota| {
                    Arc::new(RedisSendLimiter::new(redis.clone(), quota)) as Arc<dyn SendLimiter>
                }),
                presence: Arc::new(RedisPresence::new(
                    redis.clone(),
                    presence_ttl,
                    LAST_SEEN_RETENTION,
                )),
                redis: Some(redis),
            })
        }
    }
}
