use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::accounts::User;
use crate::conversations::Message;
use crate::{ConversationId, UserId};

/// One conversation as one of its members sees it, kept on that member's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub user_id: UserId,
    pub conversation_id: ConversationId,
    pub peer_id: UserId,
    pub last_message: Option<Message>,
    pub last_seq: i64,
    pub read_seq: i64,
    pub peer_read_seq: i64,
    /// The user's feed cursor when this entry last changed (any change): sync orders by it.
    pub version: i64,
    /// The user's feed cursor of the newest message (or of opening, before the first):
    /// the conversation list orders by it, so reading does not reorder the list.
    pub activity: i64,
    pub updated_at: DateTime<Utc>,
}

/// What happened in a conversation, as recorded in each member's feed.
///
/// Serialized with a `type` tag; the names are part of the public event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FeedEventBody {
    #[serde(rename = "message.created")]
    MessageCreated { message: Message },
    #[serde(rename = "conversation.read")]
    ConversationRead {
        conversation_id: ConversationId,
        reader_id: UserId,
        read_seq: i64,
    },
}

impl FeedEventBody {
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Self::MessageCreated { message } => message.conversation_id,
            Self::ConversationRead {
                conversation_id, ..
            } => *conversation_id,
        }
    }

    /// The event's name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MessageCreated { .. } => "message.created",
            Self::ConversationRead { .. } => "conversation.read",
        }
    }

    /// The seq this event is about: the message's, or the new read position. Together with
    /// the conversation and kind it identifies the event, which makes applying it idempotent.
    pub fn seq(&self) -> i64 {
        match self {
            Self::MessageCreated { message } => message.seq,
            Self::ConversationRead { read_seq, .. } => *read_seq,
        }
    }
}

/// An event in one user's feed, at a cursor that only grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub cursor: i64,
    #[serde(flatten)]
    pub body: FeedEventBody,
    #[serde(serialize_with = "crate::clock::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The answer to "what happened since cursor N".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Every event after the cursor, oldest first, up to the limit.
    Events(Vec<FeedEvent>),
    /// Events after the cursor were pruned (or the cursor is from the future): the client
    /// must resynchronise its state with `GET /v1/sync` and continue from `latest`.
    ResyncRequired { latest: i64 },
}

/// A conversation as the API shows it to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    pub id: ConversationId,
    pub peer: User,
    pub last_message: Option<Message>,
    pub last_seq: i64,
    pub read_seq: i64,
    pub peer_read_seq: i64,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl ConversationView {
    /// Messages after the read position. Sending moves the sender's read position to their
    /// own message, so everything after it is from the peer.
    pub fn unread_count(&self) -> i64 {
        (self.last_seq - self.read_seq).max(0)
    }
}

/// A page of conversations, newest activity first.
#[derive(Debug, Clone)]
pub struct InboxPage {
    pub items: Vec<ConversationView>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<i64>,
}

/// Conversations changed since a cursor, oldest change first.
#[derive(Debug, Clone)]
pub struct SyncPage {
    pub changes: Vec<ConversationView>,
    /// The cursor to pass next time.
    pub cursor: i64,
    pub has_more: bool,
}
