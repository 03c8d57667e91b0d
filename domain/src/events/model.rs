use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inbox::{FeedEvent, FeedEventBody};
use crate::{ConversationId, UserId};

/// A committed change that both members' inboxes must learn about. Written to the outbox in
/// the same transaction as the change; `id` deduplicates it in brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableEvent {
    pub id: Uuid,
    pub members: [UserId; 2],
    pub body: FeedEventBody,
    pub at: DateTime<Utc>,
}

impl DurableEvent {
    pub fn new(members: [UserId; 2], body: FeedEventBody, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            members,
            body,
            at,
        }
    }
}

/// An outbox row waiting to be relayed. `partition` says which shard's outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub partition: usize,
    pub id: i64,
    pub event: DurableEvent,
}

/// A feed event newly applied to `user`'s inbox: what their connected devices are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub user: UserId,
    pub event: FeedEvent,
}

/// Something pushed to a user's connected devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveEvent {
    /// A feed event: durable, carries a cursor, can be replayed.
    Feed(FeedEvent),
    /// Ephemeral and droppable: never stored, never replayed.
    Ephemeral(Ephemeral),
}

/// Signals that ride the droppable lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Ephemeral {
    #[serde(rename = "typing")]
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
    },
    /// A conversation peer came online or went offline (sent to the peers of `user_id`).
    #[serde(rename = "presence")]
    Presence {
        user_id: UserId,
        online: bool,
        #[serde(serialize_with = "crate::clock::serialize_rfc3339_option")]
        last_seen: Option<DateTime<Utc>>,
    },
}

/// What a live subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveItem {
    Event(LiveEvent),
    /// The subscriber fell behind and events were dropped: catch up from the feed.
    Lagged,
}
