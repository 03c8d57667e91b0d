use async_trait::async_trait;

use super::{Appended, Conversation, HistoryQuery, MarkedRead, Message, NewMessage};
use crate::{ConversationId, StoreError, UserId};

/// Where conversations and their messages live: on the shard of the conversation id.
///
/// Every write that others must learn about also writes a durable event to the same shard's
/// outbox in the same transaction, so delivery can never miss a committed change.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores `conversation` unless one with its id exists. Returns the stored one and
    /// whether this call created it.
    async fn open(&self, conversation: Conversation) -> Result<(Conversation, bool), StoreError>;

    /// The conversation with this id, if `member` is in it. One the member is not in is
    /// indistinguishable from none, down to the queries it costs (no timing oracle).
    async fn conversation(
        &self,
        id: ConversationId,
        member: UserId,
    ) -> Result<Option<Conversation>, StoreError>;

    /// In one transaction: if `(sender, client_msg_id)` was already stored in this
    /// conversation, returns that message as `Replayed` and writes nothing; otherwise assigns
    /// the next seq, stores the message, moves the sender's read position to it and writes a
    /// `message.created` event to the outbox. `None` when the conversation does not exist
    /// or the sender is not in it (writing nothing): the membership check of a send, done in
    /// the append's own transaction instead of a read before it.
    async fn append(&self, message: NewMessage) -> Result<Option<Appended>, StoreError>;

    /// Moves `reader`'s read position forward to `seq` (never backwards) and, if it moved,
    /// writes a `conversation.read` event to the outbox. `None` when the conversation does
    /// not exist.
    async fn mark_read(
        &self,
        id: ConversationId,
        reader: UserId,
        seq: i64,
    ) -> Result<Option<MarkedRead>, StoreError>;

    /// Up to `query.limit + 1` messages matching the query, in the query's reading direction
    /// (ascending after `after_seq`, otherwise descending), so the caller can tell whether
    /// there are more.
    async fn history(
        &self,
        id: ConversationId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError>;

    /// The message with this seq.
    async fn message(&self, id: ConversationId, seq: i64) -> Result<Option<Message>, StoreError>;
}
