//! Sessions by token hash, in process (sound only where this process alone can revoke them).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::cache::{CachedSession, SessionCache};

use crate::redis::metrics::Lookup;
use crate::redis::{CacheCounts, CacheStats};

use super::lock;

/// Sessions the in-process cache keeps at most (and as many tombstones): a miss only costs a
/// database read.
const MAX_SESSIONS: usize = 100_000;
/// `max_ttl` is capped so that `Instant + max_ttl` cannot overflow; no session lives longer.
const LONGEST_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A [`SessionCache`] in this process: sound only when this process is the only one that
/// can revoke a session, since nothing tells it of a log-out elsewhere.
///
/// Revocation keeps a tombstone per invalidated hash for `max_ttl`, during which `put` is a
/// no-op for that hash: a request that read the session from the database just before the
/// log-out deleted it cannot revive it. A fill arriving more than `max_ttl` after the
/// log-out could, for `max_ttl` at most (as with [`crate::redis::RedisSessionCache`]).
///
/// Memory is bounded: at most `capacity` entries and `capacity` tombstones. When entries
/// are full, expired ones go first, then arbitrary ones (an eighth of the capacity, so the
/// sweep is paid once per many puts). When tombstones are full and none has expired, they
/// are replaced by refusing every `put` for `max_ttl`, which covers all of them.
pub struct MemorySessionCache {
    max_ttl: Duration,
    capacity: usize,
    state: Mutex<Sessions>,
    stats: CacheStats,
}

#[derive(Default)]
struct Sessions {
    entries: HashMap<String, SessionEntry>,
    /// Invalidated hashes, each with the instant until which a `put` for it is refused.
    tombstones: HashMap<String, Instant>,
    /// Set when the tombstones overflowed: every `put` is refused before this instant.
    refuse_puts_until: Option<Instant>,
}

struct SessionEntry {
    session: CachedSession,
    /// `inserted + max_ttl`; the session's own `expires_at` is checked beside it.
    stale_at: Instant,
}

impl SessionEntry {
    fn is_fresh(&self, now: Instant, wall: DateTime<Utc>) -> bool {
        now < self.stale_at && wall < self.session.expires_at
    }
}

impl MemorySessionCache {
    /// Entries live `max_ttl` at most, and never past the session's own expiry.
    pub fn new(max_ttl: Duration) -> Self {
        Self {
            max_ttl: max_ttl.min(LONGEST_TTL),
            capacity: MAX_SESSIONS,
            state: Mutex::new(Sessions::default()),
            stats: CacheStats::default(),
        }
    }

    /// Keeps at most `capacity` sessions (and as many tombstones) instead of 100 000.
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Hits, misses and errors of this instance.
    pub fn stats(&self) -> CacheCounts {
        self.stats.counts()
    }
}

impl Sessions {
    /// Frees at least an eighth of `capacity`: expired entries first, then arbitrary ones.
    fn make_room(&mut self, capacity: usize, now: Instant, wall: DateTime<Utc>) {
        self.entries.retain(|_, entry| entry.is_fresh(now, wall));
        let keep = capacity - capacity.div_ceil(8);
        let mut excess = self.entries.len().saturating_sub(keep);
        self.entries.retain(|_, _| {
            let drop = excess > 0;
            excess = excess.saturating_sub(1);
            !drop
        });
    }

    fn puts_refused(&mut self, token_hash: &str, now: Instant) -> bool {
        if self.refuse_puts_until.is_some_and(|until| now < until) {
            return true;
        }
        match self.tombstones.get(token_hash) {
            Some(until) if now < *until => true,
            Some(_) => {
                self.tombstones.remove(token_hash);
                false
            }
            None => false,
        }
    }
}

#[async_trait]
impl SessionCache for MemorySessionCache {
    async fn get(&self, token_hash: &str) -> Option<CachedSession> {
        let (now, wall) = (Instant::now(), Utc::now());
        let session = {
            let mut state = lock(&self.state);
            match state.entries.get(token_hash) {
                Some(entry) if entry.is_fresh(now, wall) => Some(entry.session),
                Some(_) => {
                    state.entries.remove(token_hash);
                    None
                }
                None => None,
            }
        };
        let result = if session.is_some() {
            Lookup::Hit
        } else {
            Lookup::Miss
        };
        self.stats.record("session", result);
        session
    }

    async fn put(&self, token_hash: &str, session: CachedSession) {
        let (now, wall) = (Instant::now(), Utc::now());
        if session.expires_at <= wall {
            return;
        }
        let mut state = lock(&self.state);
        if state.puts_refused(token_hash, now) {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(token_hash) {
            state.make_room(self.capacity, now, wall);
        }
        let entry = SessionEntry {
            session,
            stale_at: now + self.max_ttl,
        };
        state.entries.insert(token_hash.to_owned(), entry);
    }

    async fn invalidate(&self, token_hash: &str) {
        let now = Instant::now();
        let until = now + self.max_ttl;
        let mut state = lock(&self.state);
        state.entries.remove(token_hash);
        if state.tombstones.len() >= self.capacity && !state.tombstones.contains_key(token_hash) {
            state.tombstones.retain(|_, until| now < *until);
            if state.tombstones.len() >= self.capacity {
                // Every tombstone ends before `until`: refusing all puts until then covers
                // them, in constant memory.
                tracing::warn!("too many session revocations: session cache fills off for a TTL");
                state.tombstones.clear();
                state.refuse_puts_until = Some(until);
            }
        }
        state.tombstones.insert(token_hash.to_owned(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_domain::UserId;

    fn session_for(lifetime: chrono::Duration) -> CachedSession {
        CachedSession {
            user_id: UserId::generate(),
            expires_at: Utc::now() + lifetime,
        }
    }

    fn cached_sessions(cache: &MemorySessionCache) -> usize {
        lock(&cache.state).entries.len()
    }

    #[tokio::test]
    async fn a_cached_session_is_answered_until_it_is_invalidated() {
        let cache = MemorySessionCache::new(Duration::from_secs(60));
        let session = session_for(chrono::Duration::hours(1));
        assert_eq!(cache.get("h").await, None);
        cache.put("h", session).await;
        assert_eq!(cache.get("h").await, Some(session));
        assert_eq!(cache.get("other").await, None);
        cache.invalidate("h").await;
        assert_eq!(cache.get("h").await, None);
        assert_eq!(
            cache.stats(),
            CacheCounts {
                hits: 1,
                misses: 3,
                errors: 0
            }
        );
    }

    #[tokio::test]
    async fn a_fill_after_the_log_out_does_not_revive_the_session() {
        let cache = MemorySessionCache::new(Duration::from_secs(60));
        let session = session_for(chrono::Duration::hours(1));
        cache.put("h", session).await;
        cache.invalidate("h").await;
        // A request that read the session from the database before it was deleted.
        cache.put("h", session).await;
        assert_eq!(cache.get("h").await, None);
        cache.put("other", session).await;
        assert_eq!(
            cache.get("other").await,
            Some(session),
            "only `h` is revoked"
        );
    }

    #[tokio::test]
    async fn the_tombstone_ends_after_the_entry_ttl() {
        let cache = MemorySessionCache::new(Duration::from_millis(250));
        let session = session_for(chrono::Duration::hours(1));
        cache.invalidate("h").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cache.put("h", session).await;
        assert_eq!(cache.get("h").await, Some(session));
    }

    #[tokio::test]
    async fn an_expired_session_is_never_answered() {
        let cache = MemorySessionCache::new(Duration::from_secs(60));
        cache
            .put("past", session_for(chrono::Duration::seconds(-1)))
            .await;
        assert_eq!(cache.get("past").await, None);
        let soon = session_for(chrono::Duration::milliseconds(250));
        cache.put("soon", soon).await;
        assert_eq!(cache.get("soon").await, Some(soon));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cache.get("soon").await, None, "expired while cached");
    }

    #[tokio::test]
    async fn an_entry_is_not_answered_after_the_entry_ttl() {
        let cache = MemorySessionCache::new(Duration::from_millis(250));
        let session = session_for(chrono::Duration::hours(1));
        cache.put("h", session).await;
        assert_eq!(cache.get("h").await, Some(session));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cache.get("h").await, None);
    }

    #[tokio::test]
    async fn the_session_cache_keeps_at_most_its_capacity() {
        let cache = MemorySessionCache::new(Duration::from_secs(60)).with_capacity(10);
        let session = session_for(chrono::Duration::hours(1));
        for n in 0..25 {
            cache.put(&format!("h{n}"), session).await;
            assert!(cached_sessions(&cache) <= 10, "after {n}");
        }
        assert_eq!(cache.get("h24").await, Some(session), "the newest is kept");
    }

    #[tokio::test]
    async fn too_many_revocations_still_revive_none() {
        let cache = MemorySessionCache::new(Duration::from_secs(60)).with_capacity(2);
        let session = session_for(chrono::Duration::hours(1));
        for n in 0..5 {
            cache.invalidate(&format!("h{n}")).await;
            assert!(lock(&cache.state).tombstones.len() <= 2, "after {n}");
        }
        for n in 0..5 {
            cache.put(&format!("h{n}"), session).await;
            assert_eq!(cache.get(&format!("h{n}")).await, None, "h{n} revived");
        }
    }
}
