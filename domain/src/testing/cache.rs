use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::lock;
use crate::cache::{HistoryCache, SendDecision, SendLimiter};
use crate::conversations::{HistoryPage, Message};
use crate::{ConversationId, UserId};

/// A history cache that answers the newest messages it holds *without* checking they are
/// the conversation's newest, as a faulty adapter might: the service must check.
/// Records every seq it is given, in order.
pub struct UncheckedHistoryCache {
    capacity: u32,
    messages: Mutex<HashMap<ConversationId, Vec<Message>>>,
    written: Mutex<Vec<i64>>,
}

impl UncheckedHistoryCache {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            messages: Mutex::new(HashMap::new()),
            written: Mutex::new(Vec::new()),
        }
    }

    /// Every seq `remember` was given, in call order, repeats included.
    pub fn written(&self) -> Vec<i64> {
        lock(&self.written).clone()
    }

    /// The seqs held for a conversation, ascending.
    pub fn seqs(&self, id: ConversationId) -> Vec<i64> {
        let messages = lock(&self.messages);
        messages
            .get(&id)
            .map(|held| held.iter().map(|m| m.seq).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl HistoryCache for UncheckedHistoryCache {
    fn capacity(&self) -> u32 {
        self.capacity
    }

    async fn latest(&self, id: ConversationId, limit: u32, _last_seq: i64) -> Option<HistoryPage> {
        let messages = lock(&self.messages);
        let held = messages.get(&id).filter(|held| !held.is_empty())?;
        let newest = held.len().saturating_sub(limit as usize);
        Some(HistoryPage {
            items: held[newest..].to_vec(),
            has_more: newest > 0,
        })
    }

    async fn remember(&self, id: ConversationId, messages: &[Message]) {
        lock(&self.written).extend(messages.iter().map(|m| m.seq));
        let mut held = lock(&self.messages);
        let held = held.entry(id).or_default();
        for message in messages {
            if !held.iter().any(|m| m.seq == message.seq) {
                held.push(message.clone());
            }
        }
        held.sort_by_key(|m| m.seq);
        let extra = held.len().saturating_sub(self.capacity as usize);
        held.drain(..extra);
    }
}

/// A send limiter that refuses every send.
pub struct RefusingLimiter {
    pub retry_after: Duration,
}

#[async_trait]
impl SendLimiter for RefusingLimiter {
    async fn check(&self, _user: UserId) -> SendDecision {
        SendDecision::Limited {
            retry_after: self.retry_after,
        }
    }
}
