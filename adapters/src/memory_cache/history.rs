//! The latest page of each conversation, in process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use duet_domain::ConversationId;
use duet_domain::cache::{HistoryCache, latest_page};
use duet_domain::conversations::{HistoryPage, Message};

use crate::redis::metrics::Lookup;
use crate::redis::{CacheCounts, CacheStats};

use super::lock;

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

#[cfg(test)]
mod tests {
    use super::*;
    use duet_domain::{MessageId, UserId};

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
}
