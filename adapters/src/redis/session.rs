//! Sessions by token hash: `{prefix}:session:{hash}` → `"{user id} {expiry µs}"`.
//!
//! Revocation writes a tombstone instead of deleting: `invalidate` overwrites the key with
//! `revoked` (for as long as any entry may live), and `put` is `SET … NX`, so a fill that
//! read the session from the database just before the log-out deleted it cannot land after
//! the tombstone and revive it.
//!
//! When a tombstone cannot be written (Redis unreachable from this process), the hash goes
//! on an in-process retry list, and this process reads no session from Redis until the
//! list is flushed. The residual window: another process that still reaches Redis may
//! answer the revoked session from its entry until that entry's TTL (at most
//! [`RedisSessionCache::new`]'s `max_ttl`) runs out.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use duet_domain::UserId;
use duet_domain::cache::{CachedSession, SessionCache};

use super::metrics::Lookup;
use super::{CacheStats, RedisCache};

const CACHE: &str = "session";
const TOMBSTONE: &str = "revoked";
/// More revocations than this waiting for Redis, and this process stops reading sessions
/// from Redis for a whole entry TTL instead of remembering each one.
const MAX_PENDING: usize = 10_000;

/// A [`SessionCache`] in Redis shared by every process.
pub struct RedisSessionCache {
    redis: RedisCache,
    max_ttl: Duration,
    pending: Mutex<Pending>,
    stats: CacheStats,
}

#[derive(Default)]
struct Pending {
    /// Token hashes whose tombstone could not be written yet.
    hashes: HashSet<String>,
    /// Too many to track: nothing is read from Redis before this (every entry written
    /// before the overflow has expired by then).
    blind_until: Option<Instant>,
}

impl RedisSessionCache {
    /// Entries live `max_ttl` at most (60 s is a good default), and never past the
    /// session's own expiry. `max_ttl` also bounds how long a revoked session may still be
    /// answered by another process while Redis is unreachable from the revoking one.
    pub fn new(redis: RedisCache, max_ttl: Duration) -> Self {
        Self {
            redis,
            max_ttl,
            pending: Mutex::new(Pending::default()),
            stats: CacheStats::default(),
        }
    }

    /// Hits, misses and errors of this instance.
    pub fn stats(&self) -> super::CacheCounts {
        self.stats.counts()
    }

    /// How many revocations wait to be written to Redis.
    pub fn pending_revocations(&self) -> usize {
        self.lock().hashes.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tombstone_ms(&self) -> u64 {
        u64::try_from(self.max_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Writes every pending tombstone. Returns whether none is left, i.e. whether reading
    /// sessions from Redis is safe again.
    async fn flush_pending(&self, token_hash: &str) -> bool {
        let hashes: Vec<String> = {
            let mut pending = self.lock();
            if pending
                .blind_until
                .is_some_and(|until| Instant::now() < until)
            {
                return false;
            }
            pending.blind_until = None;
            if pending.hashes.contains(token_hash) {
                // Never answer a revoked session, even if the flush below succeeds late.
                return false;
            }
            pending.hashes.iter().cloned().collect()
        };
        if hashes.is_empty() {
            return true;
        }
        let mut pipe = redis::pipe();
        for hash in &hashes {
            pipe.cmd("SET")
                .arg(self.redis.key(CACHE, hash))
                .arg(TOMBSTONE)
                .arg("PX")
                .arg(self.tombstone_ms())
                .ignore();
        }
        let written = self
            .redis
            .run(CACHE, |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
            .is_ok();
        if written {
            let mut pending = self.lock();
            for hash in &hashes {
                pending.hashes.remove(hash);
            }
            tracing::info!(count = hashes.len(), "pending session revocations written");
            pending.hashes.is_empty()
        } else {
            false
        }
    }
}

#[async_trait]
impl SessionCache for RedisSessionCache {
    async fn get(&self, token_hash: &str) -> Option<CachedSession> {
        if !self.flush_pending(token_hash).await {
            self.stats.record(CACHE, Lookup::Error);
            return None;
        }
        let key = self.redis.key(CACHE, token_hash);
        let found = self
            .redis
            .run(CACHE, |mut conn| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await;
        let session = match found {
            Err(_) => {
                self.stats.record(CACHE, Lookup::Error);
                return None;
            }
            Ok(value) => value.as_deref().and_then(decode),
        };
        let result = if session.is_some() {
            Lookup::Hit
        } else {
            Lookup::Miss
        };
        self.stats.record(CACHE, result);
        session
    }

    async fn put(&self, token_hash: &str, session: CachedSession) {
        let left = (session.expires_at - duet_domain::clock::now())
            .to_std()
            .unwrap_or_default();
        let ttl = left.min(self.max_ttl);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 || self.lock().hashes.contains(token_hash) {
            return;
        }
        let key = self.redis.key(CACHE, token_hash);
        let value = encode(&session);
        // NX: an entry already there is either the same session or a tombstone to keep.
        let _ = self
            .redis
            .run(CACHE, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms)
                    .arg("NX")
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await;
    }

    async fn invalidate(&self, token_hash: &str) {
        let key = self.redis.key(CACHE, token_hash);
        let ttl_ms = self.tombstone_ms();
        let written = self
            .redis
            .run(CACHE, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(TOMBSTONE)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if written.is_ok() {
            return;
        }
        let mut pending = self.lock();
        if pending.hashes.len() < MAX_PENDING {
            pending.hashes.insert(token_hash.to_owned());
        } else {
            tracing::warn!("too many pending session revocations: session cache off for a TTL");
            pending.hashes.clear();
            pending.blind_until = Some(Instant::now() + self.max_ttl);
        }
    }
}

fn encode(session: &CachedSession) -> String {
    format!(
        "{} {}",
        session.user_id,
        session.expires_at.timestamp_micros()
    )
}

/// The session in an entry; `None` for a tombstone or anything unreadable (a miss).
fn decode(value: &str) -> Option<CachedSession> {
    let (user, expires) = value.split_once(' ')?;
    Some(CachedSession {
        user_id: UserId(user.parse().ok()?),
        expires_at: DateTime::<Utc>::from_timestamp_micros(expires.parse().ok()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_tombstones_read_as_misses() {
        let session = CachedSession {
            user_id: UserId::generate(),
            expires_at: duet_domain::clock::now(),
        };
        assert_eq!(decode(&encode(&session)), Some(session));
        assert_eq!(decode(TOMBSTONE), None);
        assert_eq!(decode("not-a-uuid 12"), None);
    }
}
