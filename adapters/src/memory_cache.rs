//! In-process caches for the `small` profile (one process): history pages, send limits and
//! presence. Sessions are not cached in process: in that profile they come from a local
//! SQLite file, already as cheap as a map lookup behind a lock would make them worth.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::cache::{
    HistoryCache, Presence, PresenceStatus, SendDecision, SendLimiter, SendQuota, latest_page,
};
use duet_domain::conversations::{HistoryPage, Message};
use duet_domain::{ConversationId, UserId};

use crate::redis::metrics::Lookup;
use crate::redis::{CacheCounts, CacheStats};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its map consistent: a panic cannot tear it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The newest `capacity` messages of up to `max_conversations` conversations; the least
/// recently used conversation goes first when full.
pub struct MemoryHistoryCache {
    capacity: u32,
    max_conversations: usize,
    pages: Mutex<HashMap<ConversationId, CachedPage>>,
    stats: CacheStats,
}

struct CachedPage {
    messages: BTreeMap<i64, Message>,
    used: Instant,
}

impl MemoryHistoryCache {
    pub fn new(capacity: u32, max_conversations: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_conversations: max_conversations.max(1),
            pages: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        }
    }

    /// Hits, misses and errors of this instance.
    pub fn stats(&self) -> CacheCounts {
        self.stats.counts()
    }
}

#[async_trait]
impl HistoryCache for MemoryHistoryCache {
    fn capacity(&self) -> u32 {
        self.capacity
    }

    async fn latest(&self, id: ConversationId, limit: u32, last_seq: i64) -> Option<HistoryPage> {
        let page = {
            let mut pages = lock(&self.pages);
            pages.get_mut(&id).and_then(|page| {
                page.used = Instant::now();
                let messages: Vec<Message> = page.messages.values().cloned().collect();
                latest_page(&messages, limit, last_seq)
            })
        };
        let result = if page.is_some() {
            Lookup::Hit
        } else {
            Lookup::Miss
        };
        self.stats.record("history", result);
        page
    }

    async fn remember(&self, id: ConversationId, messages: &[Message]) {
        if messages.is_empty() {
            return;
        }
        let mut pages = lock(&self.pages);
        if !pages.contains_key(&id) && pages.len() >= self.max_conversations {
            let oldest = pages
                .iter()
                .min_by_key(|(_, page)| page.used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                pages.remove(&oldest);
            }
        }
        let page = pages.entry(id).or_insert_with(|| CachedPage {
            messages: BTreeMap::new(),
            used: Instant::now(),
        });
        for message in messages {
            page.messages.insert(message.seq, message.clone());
        }
        while page.messages.len() > self.capacity as usize {
            page.messages.pop_first();
        }
    }
}

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

/// Users whose last-seen time the in-process presence keeps before forgetting the oldest.
const MAX_REMEMBERED_USERS: usize = 100_000;

/// Who is connected to this process, the only one in the `small` profile.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<UserId, Seen>>,
}

struct Seen {
    devices: u32,
    at: DateTime<Utc>,
}

impl MemoryPresence {
    pub fn new() -> Self {
        Self::default()
    }

    fn touch(&self, user: UserId, change: impl FnOnce(u32) -> u32) {
        let mut users = lock(&self.users);
        if users.len() >= MAX_REMEMBERED_USERS && !users.contains_key(&user) {
            // Bounded memory: forget the last-seen time of those offline longest.
            let cutoff = Utc::now() - chrono::Duration::hours(24);
            users.retain(|_, seen| seen.devices > 0 || seen.at > cutoff);
            if users.len() >= MAX_REMEMBERED_USERS {
                users.retain(|_, seen| seen.devices > 0);
            }
        }
        let seen = users.entry(user).or_insert(Seen {
            devices: 0,
            at: Utc::now(),
        });
        seen.devices = change(seen.devices);
        seen.at = Utc::now();
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connected(&self, user: UserId) {
        self.touch(user, |n| n + 1);
    }

    async fn disconnected(&self, user: UserId) {
        self.touch(user, |n| n.saturating_sub(1));
    }

    async fn heartbeat(&self, user: UserId) {
        let mut users = lock(&self.users);
        if let Some(seen) = users.get_mut(&user).filter(|seen| seen.devices > 0) {
            seen.at = Utc::now();
        }
    }

    async fn status(&self, users: &[UserId]) -> Vec<PresenceStatus> {
        let known = lock(&self.users);
        users
            .iter()
            .map(|user| {
                let seen = known.get(user);
                PresenceStatus {
                    user_id: *user,
                    online: seen.is_some_and(|s| s.devices > 0),
                    last_seen: seen.map(|s| s.at),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_domain::MessageId;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn message(conversation: ConversationId, seq: i64) -> Message {
        Message {
            id: MessageId::generate(),
            conversation_id: conversation,
            seq,
            sender_id: UserId::generate(),
            client_msg_id: format!("c{seq}"),
            body: format!("m{seq}"),
            created_at: duet_domain::clock::now(),
        }
    }

    #[tokio::test]
    async fn history_keeps_the_newest_messages_whatever_order_they_arrive_in() {
        let cache = MemoryHistoryCache::new(3, 10);
        let id = ConversationId(uuid::Uuid::now_v7());
        let all: Vec<Message> = (1..=5).map(|seq| message(id, seq)).collect();
        cache.remember(id, &all[3..]).await;
        cache.remember(id, &all[..3]).await;
        let page = cache.latest(id, 3, 5).await.expect("a hit");
        assert_eq!(page.items, all[2..].to_vec());
        assert!(page.has_more);
        assert!(cache.latest(id, 3, 6).await.is_none(), "seq 6 is missing");
        assert_eq!(
            cache.stats(),
            CacheCounts {
                hits: 1,
                misses: 1,
                errors: 0
            }
        );
    }

    #[tokio::test]
    async fn history_forgets_the_least_recently_used_conversation_when_full() {
        let cache = MemoryHistoryCache::new(10, 2);
        let ids: Vec<ConversationId> = (0..3)
            .map(|_| ConversationId(uuid::Uuid::now_v7()))
            .collect();
        cache.remember(ids[0], &[message(ids[0], 1)]).await;
        cache.remember(ids[1], &[message(ids[1], 1)]).await;
        assert!(cache.latest(ids[0], 10, 1).await.is_some());
        cache.remember(ids[2], &[message(ids[2], 1)]).await;
        assert!(cache.latest(ids[0], 10, 1).await.is_some());
        assert!(cache.latest(ids[1], 10, 1).await.is_none());
        assert!(cache.latest(ids[2], 10, 1).await.is_some());
    }

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

    #[tokio::test]
    async fn presence_counts_devices_and_keeps_the_last_seen_time() {
        let presence = MemoryPresence::new();
        let (user, stranger) = (UserId::generate(), UserId::generate());
        presence.connected(user).await;
        presence.connected(user).await;
        presence.disconnected(user).await;
        let [status, unknown] = presence.status(&[user, stranger]).await[..] else {
            panic!("one status per user");
        };
        assert!(status.online, "one device is still connected");
        assert!(!unknown.online && unknown.last_seen.is_none());
        let before = Utc::now();
        presence.disconnected(user).await;
        let status = presence.status(&[user]).await[0];
        assert!(!status.online);
        assert!(status.last_seen.expect("seen") >= before);
    }
}
