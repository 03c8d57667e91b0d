use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::accounts::InvalidInput;
use crate::events::Delivered;
use crate::{ConversationId, MessageId, UserId};

/// A message body: not blank, no NUL (PostgreSQL text cannot hold one), at most 4096 bytes
/// of UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_BYTES: usize = 4096;

    /// # Errors
    /// Returns [`InvalidInput`] when blank or longer than [`Self::MAX_BYTES`].
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        if raw.trim().is_empty() {
            return Err(InvalidInput::new("body", "must not be empty"));
        }
        if raw.contains('\0') {
            return Err(InvalidInput::new("body", "may not contain NUL characters"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(InvalidInput::new(
                "body",
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The sender's own id for a message, so a retry can be recognised: 1–64 visible ASCII
/// characters (a UUID is typical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// Returns [`InvalidInput`] when empty, too long or not visible ASCII.
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "client_msg_id",
                format!("must be 1–{} characters", Self::MAX_LEN),
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidInput::new(
                "client_msg_id",
                "must be visible ASCII characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A stored message. `seq` is 1, 2, 3… within its conversation, assigned at commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub body: String,
    #[serde(serialize_with = "crate::clock::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A message about to be appended; its `seq` is not known until commit.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// The authoritative record of a conversation, kept on the conversation's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    /// The two members, lower id first.
    pub members: [UserId; 2],
    /// The seq of the newest message; 0 before the first.
    pub last_seq: i64,
    /// Each member's read position, in the order of `members`.
    pub read_seqs: [i64; 2],
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Conversation {
    /// A conversation with no messages yet between `a` and `b`.
    pub fn new_between(a: UserId, b: UserId, now: DateTime<Utc>) -> Self {
        let members = if a <= b { [a, b] } else { [b, a] };
        Self {
            id: ConversationId::between(a, b),
            members,
            last_seq: 0,
            read_seqs: [0, 0],
            created_at: now,
            updated_at: now,
        }
    }

    fn index_of(&self, user: UserId) -> Option<usize> {
        self.members.iter().position(|m| *m == user)
    }

    pub fn has_member(&self, user: UserId) -> bool {
        self.index_of(user).is_some()
    }

    /// The other member. Only meaningful for a member.
    pub fn peer_of(&self, user: UserId) -> UserId {
        if self.members[0] == user {
            self.members[1]
        } else {
            self.members[0]
        }
    }

    /// `user`'s read position (0 for a non-member).
    pub fn read_seq_of(&self, user: UserId) -> i64 {
        self.index_of(user).map_or(0, |i| self.read_seqs[i])
    }
}

/// What appending a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new message, committed with the next seq.
    Created(Message),
    /// A retry: the message first stored under this `(sender, client_msg_id)`.
    Replayed(Message),
}

impl Appended {
    pub fn message(&self) -> &Message {
        match self {
            Self::Created(m) | Self::Replayed(m) => m,
        }
    }
}

/// What [`ConversationStore::append`](super::ConversationStore::append) did: the message,
/// and what it delivered to the members' inboxes in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub appended: Appended,
    /// The feed events the append applied to the members' inboxes itself (inline delivery),
    /// in cursor order per member, for the caller to push live. Empty for a replay and for
    /// a message left to the outbox, whose delivery pushes it instead.
    pub delivered: Vec<Delivered>,
}

impl From<Appended> for AppendOutcome {
    /// An append that delivered nothing itself.
    fn from(appended: Appended) -> Self {
        Self {
            appended,
            delivered: Vec::new(),
        }
    }
}

/// What moving a read position did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkedRead {
    /// The position is at `seq` or beyond. `moved` says whether this call moved it (and so
    /// wrote the `conversation.read` event for `seq`), rather than finding it there already.
    Done {
        conversation: Conversation,
        moved: bool,
    },
    /// `seq` is past the newest message.
    BeyondLast(Conversation),
}

/// Which part of a conversation's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only messages with a seq below this.
    pub before_seq: Option<i64>,
    /// Only messages with a seq above this. When set, the page starts just after it;
    /// otherwise the page ends just before `before_seq` (or at the newest message).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// A page of history, always in ascending seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub items: Vec<Message>,
    /// Whether more messages lie beyond this page in the direction it was read.
    pub has_more: bool,
}
