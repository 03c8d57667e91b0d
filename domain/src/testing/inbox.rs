use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::inbox::{FeedEvent, FeedEventBody, InboxEntry, InboxStore, Replay};
use crate::{ConversationId, StoreError, UserId};

/// Inbox entries and per-user feeds in maps, folding events as the SQL store does: an
/// event already in the feed (same conversation, kind and seq) or one that changes nothing
/// is not applied again; positions only move forward.
#[derive(Default)]
pub struct MemoryInbox {
    state: Mutex<HashMap<UserId, Feed>>,
}

#[derive(Default)]
struct Feed {
    last_cursor: i64,
    /// Every feed cursor at or below this was pruned.
    pruned_through: i64,
    events: Vec<FeedEvent>,
    entries: HashMap<ConversationId, InboxEntry>,
}

impl MemoryInbox {
    /// Every entry `user` has, in no particular order.
    pub fn entries(&self, user: UserId) -> Vec<InboxEntry> {
        lock(&self.state)
            .get(&user)
            .map(|feed| feed.entries.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn empty_entry(
    user: UserId,
    conversation: ConversationId,
    peer: UserId,
    at: DateTime<Utc>,
) -> InboxEntry {
    InboxEntry {
        user_id: user,
        conversation_id: conversation,
        peer_id: peer,
        last_message: None,
        last_seq: 0,
        read_seq: 0,
        peer_read_seq: 0,
        version: 0,
        activity: 0,
        updated_at: at,
    }
}

/// `entry` with `event` folded in at `cursor`, or `None` when it changes nothing.
fn fold(mut entry: InboxEntry, event: &FeedEventBody, cursor: i64) -> Option<InboxEntry> {
    match event {
        FeedEventBody::MessageCreated { message } => {
            if message.seq >= entry.last_seq {
                entry.last_seq = message.seq;
                entry.last_message = Some(message.clone());
                entry.activity = cursor;
                entry.updated_at = message.created_at;
            }
            let position = if message.sender_id == entry.user_id {
                &mut entry.read_seq
            } else {
                &mut entry.peer_read_seq
            };
            *position = (*position).max(message.seq);
        }
        FeedEventBody::ConversationRead {
            reader_id,
            read_seq,
            ..
        } => {
            let position = if *reader_id == entry.user_id {
                &mut entry.read_seq
            } else {
                &mut entry.peer_read_seq
            };
            if *position >= *read_seq {
                return None;
            }
            *position = *read_seq;
        }
    }
    entry.version = cursor;
    Some(entry)
}

#[async_trait]
impl InboxStore for MemoryInbox {
    async fn open_entry(
        &self,
        user: UserId,
        conversation: ConversationId,
        peer: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let feed = state.entry(user).or_default();
        if !feed.entries.contains_key(&conversation) {
            feed.last_cursor += 1;
            let mut entry = empty_entry(user, conversation, peer, at);
            entry.version = feed.last_cursor;
            entry.activity = feed.last_cursor;
            feed.entries.insert(conversation, entry);
        }
        Ok(())
    }

    async fn apply(
        &self,
        user: UserId,
        peer: UserId,
        event: &FeedEventBody,
        at: DateTime<Utc>,
    ) -> Result<Option<FeedEvent>, StoreError> {
        let mut state = lock(&self.state);
        let feed = state.entry(user).or_default();
        let conversation = event.conversation_id();
        let seen = feed.events.iter().any(|e| {
            e.body.conversation_id() == conversation
                && e.body.kind() == event.kind()
                && e.body.seq() == event.seq()
        });
        if seen {
            return Ok(None);
        }
        let cursor = feed.last_cursor + 1;
        let entry = feed
            .entries
            .get(&conversation)
            .cloned()
            .unwrap_or_else(|| empty_entry(user, conversation, peer, at));
        let Some(entry) = fold(entry, event, cursor) else {
            return Ok(None);
        };
        feed.last_cursor = cursor;
        feed.entries.insert(conversation, entry);
        let applied = FeedEvent {
            cursor,
            body: event.clone(),
            created_at: at,
        };
        feed.events.push(applied.clone());
        Ok(Some(applied))
    }

    async fn entry(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<InboxEntry>, StoreError> {
        Ok(lock(&self.state)
            .get(&user)
            .and_then(|feed| feed.entries.get(&conversation).cloned()))
    }

    async fn list(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let mut entries: Vec<_> = self
            .entries(user)
            .into_iter()
            .filter(|e| before.is_none_or(|before| e.activity < before))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.activity));
        entries.truncate(limit as usize);
        Ok(entries)
    }

    async fn changed_since(
        &self,
        user: UserId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let mut entries: Vec<_> = self
            .entries(user)
            .into_iter()
            .filter(|e| e.version > since)
            .collect();
        entries.sort_by_key(|e| e.version);
        entries.truncate(limit as usize);
        Ok(entries)
    }

    async fn replay(&self, user: UserId, since: i64, limit: u32) -> Result<Replay, StoreError> {
        let state = lock(&self.state);
        let Some(feed) = state.get(&user) else {
            return Ok(if since > 0 {
                Replay::ResyncRequired { latest: 0 }
            } else {
                Replay::Events(Vec::new())
            });
        };
        if since > feed.last_cursor || since < feed.pruned_through {
            return Ok(Replay::ResyncRequired {
                latest: feed.last_cursor,
            });
        }
        let events = feed.events.iter().filter(|e| e.cursor > since);
        Ok(Replay::Events(
            events.take(limit as usize).cloned().collect(),
        ))
    }

    async fn latest_cursor(&self, user: UserId) -> Result<i64, StoreError> {
        Ok(lock(&self.state)
            .get(&user)
            .map_or(0, |feed| feed.last_cursor))
    }

    async fn prune_feeds(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for feed in lock(&self.state).values_mut() {
            let (old, kept): (Vec<_>, Vec<_>) =
                feed.events.drain(..).partition(|e| e.created_at < before);
            if let Some(newest_pruned) = old.last() {
                feed.pruned_through = feed.pruned_through.max(newest_pruned.cursor);
            }
            pruned += old.len() as u64;
            feed.events = kept;
        }
        Ok(pruned)
    }
}
