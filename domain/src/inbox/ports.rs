use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{FeedEvent, FeedEventBody, InboxEntry, Replay};
use crate::events::DurableEvent;
use crate::{ConversationId, StoreError, UserId};

/// One event to fold into one member's inbox: the arguments of [`InboxStore::apply`].
#[derive(Debug, Clone, Copy)]
pub struct InboxUpdate<'a> {
    pub user: UserId,
    pub peer: UserId,
    pub event: &'a FeedEventBody,
    pub at: DateTime<Utc>,
}

impl<'a> InboxUpdate<'a> {
    /// Both members' updates for `event`: each member's inbox learns it, with the other as
    /// peer.
    pub fn for_members(event: &'a DurableEvent) -> [Self; 2] {
        let [a, b] = event.members;
        [(a, b), (b, a)].map(|(user, peer)| InboxUpdate {
            user,
            peer,
            event: &event.body,
            at: event.at,
        })
    }
}

/// Where each user's inbox entries and feed live: on the user's shard.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Makes sure `user` has an entry for the conversation, so it shows in their list before
    /// the first message. Idempotent.
    async fn open_entry(
        &self,
        user: UserId,
        conversation: ConversationId,
        peer: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// In one transaction on `user`'s shard: unless this event (conversation, kind, seq) is
    /// already in the user's feed, appends it at the next cursor and folds it into the entry
    /// (positions only move forward). Returns the appended event, or `None` if it was already
    /// applied or changes nothing.
    async fn apply(
        &self,
        user: UserId,
        peer: UserId,
        event: &FeedEventBody,
        at: DateTime<Utc>,
    ) -> Result<Option<FeedEvent>, StoreError>;

    /// `apply` for each update in order, with the same outcome, but in one transaction per
    /// user shard where the store can. The answers are in the order of `updates`.
    ///
    /// # Errors
    /// When a shard's transaction fails: shards before it may have committed, so the caller
    /// retries the whole batch (applying is idempotent).
    async fn apply_many(
        &self,
        updates: &[InboxUpdate<'_>],
    ) -> Result<Vec<Option<FeedEvent>>, StoreError> {
        let mut applied = Vec::with_capacity(updates.len());
        for update in updates {
            applied.push(
                self.apply(update.user, update.peer, update.event, update.at)
                    .await?,
            );
        }
        Ok(applied)
    }

    /// `user`'s entry for a conversation.
    async fn entry(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<InboxEntry>, StoreError>;

    /// Up to `limit` entries with an activity below `before` (all when `None`), newest
    /// activity first.
    async fn list(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError>;

    /// Up to `limit` entries with a version above `since`, oldest change first.
    async fn changed_since(
        &self,
        user: UserId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError>;

    /// Up to `limit` feed events after `since`, or `ResyncRequired` when some of them were
    /// pruned or `since` is beyond the newest cursor.
    async fn replay(&self, user: UserId, since: i64, limit: u32) -> Result<Replay, StoreError>;

    /// The newest cursor in `user`'s feed (0 before the first event).
    async fn latest_cursor(&self, user: UserId) -> Result<i64, StoreError>;

    /// Deletes feed events older than `before` on every shard; returns how many.
    async fn prune_feeds(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
