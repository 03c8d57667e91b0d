//! The newest messages of each conversation: `{prefix}:history:{conversation}` is a sorted
//! set of JSON messages scored by seq, trimmed to the newest `capacity`, with a TTL.
//!
//! A sorted set makes writers commute: a write-through of seq 7 and one of seq 8 may land in
//! either order, and a fill from an older database read only adds members below the newest,
//! which trimming then drops. Each add first removes any member with the same seq, so a
//! message is never in the set twice. Reads are validated by
//! [`duet_domain::cache::latest_page`] against the conversation's `last_seq`.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis;
use duet_domain::ConversationId;
use duet_domain::cache::{HistoryCache, latest_page};
use duet_domain::conversations::{HistoryPage, Message};

use super::metrics::Lookup;
use super::{CacheStats, RedisCache};

const CACHE: &str = "history";

/// A [`HistoryCache`] in Redis shared by every process.
pub struct RedisHistoryCache {
    redis: RedisCache,
    capacity: u32,
    ttl: Duration,
    stats: CacheStats,
}

impl RedisHistoryCache {
    /// Keeps the newest `capacity` messages (at least the default page size, 50) of each
    /// conversation read or written in the last `ttl` (e.g. 10 minutes).
    pub fn new(redis: RedisCache, capacity: u32, ttl: Duration) -> Self {
        Self {
            redis,
            capacity: capacity.max(1),
            ttl,
            stats: CacheStats::default(),
        }
    }

    /// Hits, misses and errors of this instance.
    pub fn stats(&self) -> super::CacheCounts {
        self.stats.counts()
    }
}

#[async_trait]
impl HistoryCache for RedisHistoryCache {
    fn capacity(&self) -> u32 {
        self.capacity
    }

    async fn latest(&self, id: ConversationId, limit: u32, last_seq: i64) -> Option<HistoryPage> {
        let key = self.redis.key(CACHE, id);
        let newest = -i64::from(limit.max(1));
        let found = self
            .redis
            .run(CACHE, |mut conn| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(newest)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await;
        let Ok(members) = found else {
            self.stats.record(CACHE, Lookup::Error);
            return None;
        };
        // An unreadable member (another version's format) makes the page unusable: a miss.
        let messages: Option<Vec<Message>> = members
            .iter()
            .map(|member| serde_json::from_str(member).ok())
            .collect();
        let page = messages.and_then(|messages| latest_page(&messages, limit, last_seq));
        let result = if page.is_some() {
            Lookup::Hit
        } else {
            Lookup::Miss
        };
        self.stats.record(CACHE, result);
        page
    }

    async fn remember(&self, id: ConversationId, messages: &[Message]) {
        if messages.is_empty() {
            return;
        }
        let key = self.redis.key(CACHE, id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for message in messages {
            let Ok(member) = serde_json::to_string(message) else {
                return;
            };
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg(message.seq)
                .arg(message.seq)
                .ignore();
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(message.seq)
                .arg(member)
                .ignore();
        }
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-i64::from(self.capacity) - 1)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(
                u64::try_from(self.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .ignore();
        // A lost write-through only costs a miss: the next read sees the gap and refills.
        let _ = self
            .redis
            .run(CACHE, |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await;
    }
}
