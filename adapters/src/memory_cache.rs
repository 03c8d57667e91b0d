//! In-process caches for the `small` profile (one process): history pages, sessions, send
//! limits and presence. The session cache is only sound where this process is the only one
//! that can revoke a session (SQLite: one process per database file).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::cache::{
    CachedSession, HistoryCache, Presence, PresenceStatus, SendDecision, SendLimiter, SendQuota,
    SessionCache, latest_page,
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
