use async_trait::async_trait;

use super::{AppendOutcome, Conversation, HistoryQuery, MarkedRead, Message, NewMessage};
use crate::{ConversationId, StoreError, UserId};

/// Where conversations and their messages live: on the shard of the conversation id.
///
/// Every write that others must learn about also hands a durable event to delivery in the
/// same transaction (an outbox row, or for an inline-delivered message both inboxes
/// themselves), so delivery can never miss a committed change.
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
    /// the next seq, stores the message, moves the sender's read position to it and hands
    /// the `message.created` event to delivery. `None` when the conversation does not exist
    /// or the sender is not in it (writing nothing): the membership check of a send, done in
    /// the append's own transaction instead of a read before it.
    ///
    /// The hand-off is either a row in the outbox, or (inline delivery, where the store is
    /// built for it and both members' inboxes share the conversation's database) the event
    /// applied to both inboxes in the same transaction. What was applied inline comes back in
    /// [`AppendOutcome::delivered`]; nobody has pushed it live yet, so the caller does,
    /// after this returns (the relay's delivery never sees these events).
    ///
    /// # Errors
    /// `Unavailable` when the database cannot take the write now; `Unexpected` otherwise.
    /// When the commit itself failed, the message may have been stored all the same: a retry
    /// with the same client id then answers the original.
    async fn append(&self, message: NewMessage) -> Result<Option<AppendOutcome>, StoreError>;

    /// Moves `reader`'s read position forward to `seq` (never backwards) and, if it moved,
    /// writes a `conversation.read` event to the outbox and says so (`moved`). `None` when
    /// the conversation does not exist.
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
