use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::conversations::Message;
use duet_domain::inbox::{FeedEvent, FeedEventBody, InboxEntry, InboxStore, InboxUpdate, Replay};
use duet_domain::{ConversationId, StoreError, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tracing::instrument;

use super::conversations::begin_write;
use super::entities::{feed_events, inbox_entries, user_feeds};
use super::errors::{from_db, from_json};
use super::feed::{self, FeedKind, feed_row};
use super::{SqlStorage, fence};

fn to_entry(row: inbox_entries::Model) -> Result<InboxEntry, StoreError> {
    let last_message = row
        .last_message
        .as_deref()
        .map(serde_json::from_str::<Message>)
        .transpose()
        .map_err(from_json)?;
    Ok(InboxEntry {
        user_id: UserId(row.user_id),
        conversation_id: ConversationId(row.conversation_id),
        peer_id: UserId(row.peer_id),
        last_message,
        last_seq: row.last_seq,
        read_seq: row.read_seq,
        peer_read_seq: row.peer_read_seq,
        version: row.version,
        activity: row.activity,
        updated_at: row.updated_at,
    })
}

/// Takes the next cursor of `user`'s feed inside `txn` (the row lock orders concurrent
/// appliers on PostgreSQL; SQLite has one writer), for an event added `at`.
async fn next_cursor(
    txn: &DatabaseTransaction,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let updated = user_feeds::Entity::update_many()
        .col_expr(
            user_feeds::Column::LastCursor,
            Expr::col(user_feeds::Column::LastCursor).add(1),
        )
        .col_expr(
            user_feeds::Column::OldestAt,
            Expr::expr(Func::coalesce([
                Expr::col(user_feeds::Column::OldestAt),
                Expr::val(at),
            ])),
        )
        .filter(user_feeds::Column::UserId.eq(user.0))
        .exec_with_returning(txn)
        .await
        .map_err(from_db)?;
    match updated.into_iter().next() {
        Some(row) => Ok(row.last_cursor),
        None => Err(StoreError::Unexpected(anyhow::anyhow!(
            "user {user} has no feed"
        ))),
    }
}

/// The entry with `event` folded in, or `None` when the event changes nothing.
pub(super) fn fold(
    entry: inbox_entries::Model,
    user: UserId,
    event: &FeedEventBody,
    cursor: i64,
) -> Result<Option<inbox_entries::Model>, StoreError> {
    let mut next = entry;
    match event {
        FeedEventBody::MessageCreated { message } => {
            if message.seq >= next.last_seq {
                next.last_seq = message.seq;
                next.last_message = Some(serde_json::to_string(message).map_err(from_json)?);
                next.activity = cursor;
                next.updated_at = message.created_at;
            }
            if message.sender_id == user {
                next.read_seq = Ord::max(next.read_seq, message.seq);
            } else {
                next.peer_read_seq = Ord::max(next.peer_read_seq, message.seq);
            }
        }
        FeedEventBody::ConversationRead {
            reader_id,
            read_seq,
            ..
        } => {
            let position = if *reader_id == user {
                &mut next.read_seq
            } else {
                &mut next.peer_read_seq
            };
            if *position >= *read_seq {
                return Ok(None);
            }
            *position = *read_seq;
        }
    }
    next.version = cursor;
    Ok(Some(next))
}

pub(super) fn active(row: inbox_entries::Model) -> inbox_entries::ActiveModel {
    inbox_entries::ActiveModel {
        user_id: Set(row.user_id),
        conversation_id: Set(row.conversation_id),
        peer_id: Set(row.peer_id),
        last_seq: Set(row.last_seq),
        read_seq: Set(row.read_seq),
        peer_read_seq: Set(row.peer_read_seq),
        last_message: Set(row.last_message),
        version: Set(row.version),
        activity: Set(row.activity),
        updated_at: Set(row.updated_at),
    }
}

pub(super) fn empty_entry(
    user: UserId,
    conversation: ConversationId,
    peer: UserId,
    at: DateTime<Utc>,
) -> inbox_entries::Model {
    inbox_entries::Model {
        user_id: user.0,
        conversation_id: conversation.0,
        peer_id: peer.0,
        last_seq: 0,
        read_seq: 0,
        peer_read_seq: 0,
        last_message: None,
        version: 0,
        activity: 0,
        updated_at: at,
    }
}

impl SqlStorage {
    /// See [`InboxStore::open_entry`].
    async fn open_entry_once(
        &self,
        user: UserId,
        conversation: ConversationId,
        peer: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let route = self.router.for_user(user);
        let existing = inbox_entries::Entity::find_by_id((user.0, conversation.0))
            .one(route.writer())
            .await
            .map_err(from_db)?;
        if existing.is_some() {
            return Ok(());
        }
        let txn = begin_write(route.writer()).await?;
        if let Err(err) = fence::require(&txn, [route.logical]).await {
            let _ = txn.rollback().await;
            return Err(err);
        }
        let cursor = next_cursor(&txn, user, duet_domain::clock::now()).await?;
        let mut entry = empty_entry(user, conversation, peer, at);
        entry.version = cursor;
        entry.activity = cursor;
        let inserted = inbox_entries::Entity::insert(active(entry))
            .on_conflict_do_nothing_on([
                inbox_entries::Column::UserId,
                inbox_entries::Column::ConversationId,
            ])
            .exec_without_returning(&txn)
            .await
            .map_err(from_db)?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            txn.commit().await.map_err(from_db)?;
            route.wrote().await;
        } else {
            txn.rollback().await.map_err(from_db)?;
        }
        Ok(())
    }

    async fn apply_in_txn(
        &self,
        txn: &DatabaseTransaction,
        user: UserId,
        peer: UserId,
        event: &FeedEventBody,
        at: DateTime<Utc>,
    ) -> Result<Option<FeedEvent>, StoreError> {
        let conversation = event.conversation_id();
        // Take the cursor first: on PostgreSQL its row lock serialises every writer of this
        // user's feed, so the reads below cannot be overtaken by a concurrent apply.
        // Stamped when it entered the feed, so age order is cursor order and pruning (by
        // age) always removes a prefix of the feed.
        let now = duet_domain::clock::now();
        let cursor = next_cursor(txn, user, now).await?;
        let seen = feed_events::Entity::find()
            .filter(feed_events::Column::UserId.eq(user.0))
            .filter(feed_events::Column::ConversationId.eq(conversation.0))
            .filter(feed_events::Column::Kind.eq(FeedKind::of(user, event).code()))
            .filter(feed_events::Column::Seq.eq(event.seq()))
            .one(txn)
            .await
            .map_err(from_db)?;
        if seen.is_some() {
            return Ok(None);
        }
        let existing = inbox_entries::Entity::find_by_id((user.0, conversation.0))
            .one(txn)
            .await
            .map_err(from_db)?;
        let is_new = existing.is_none();
        let entry = existing.unwrap_or_else(|| empty_entry(user, conversation, peer, at));
        let Some(entry) = fold(entry, user, event, cursor)? else {
            return Ok(None);
        };
        if is_new {
            inbox_entries::Entity::insert(active(entry))
                .exec_without_returning(txn)
                .await
                .map_err(from_db)?;
        } else {
            inbox_entries::Entity::update(active(entry))
                .exec(txn)
                .await
                .map_err(from_db)?;
        }
        feed_events::Entity::insert(feed_row(user, cursor, event, now))
            .exec_without_returning(txn)
            .await
            .map_err(from_db)?;
        Ok(Some(FeedEvent {
            cursor,
            body: event.clone(),
            created_at: now,
        }))
    }
}

#[async_trait]
impl InboxStore for SqlStorage {
    async fn open_entry(
        &self,
        user: UserId,
        conversation: ConversationId,
        peer: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.owned(|| self.open_entry_once(user, conversation, peer, at))
            .await
    }

    #[instrument(skip(self, event, at), fields(kind = event.kind(), seq = event.seq()))]
    async fn apply(
        &self,
        user: UserId,
        peer: UserId,
        event: &FeedEventBody,
        at: DateTime<Utc>,
    ) -> Result<Option<FeedEvent>, StoreError> {
        self.owned(|| async {
            let route = self.router.for_user(user);
            let txn = begin_write(route.writer()).await?;
            let applied = match fence::require(&txn, [route.logical]).await {
                Ok(()) => self.apply_in_txn(&txn, user, peer, event, at).await,
                Err(err) => Err(err),
            };
            match applied {
                Ok(Some(applied)) => {
                    txn.commit().await.map_err(from_db)?;
                    route.wrote().await;
                    Ok(Some(applied))
                }
                // Roll back now: the cursor bump holds the feed's row lock until then.
                other => {
                    txn.rollback().await.map_err(from_db)?;
                    other
                }
            }
        })
        .await
    }

    async fn apply_many(
        &self,
        updates: &[InboxUpdate<'_>],
    ) -> Result<Vec<Option<FeedEvent>>, StoreError> {
        self.owned(|| self.apply_batch(updates)).await
    }

    async fn entry(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<InboxEntry>, StoreError> {
        self.router
            .for_user(user)
            .find(|db| async move {
                inbox_entries::Entity::find_by_id((user.0, conversation.0))
                    .one(&db)
                    .await
            })
            .await
            .map_err(from_db)?
            .map(to_entry)
            .transpose()
    }

    async fn list(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let mut select =
            inbox_entries::Entity::find().filter(inbox_entries::Column::UserId.eq(user.0));
        if let Some(before) = before {
            select = select.filter(inbox_entries::Column::Activity.lt(before));
        }
        let select = select
            .order_by_desc(inbox_entries::Column::Activity)
            .limit(u64::from(limit));
        self.router
            .for_user(user)
            .read(|db| {
                let select = select.clone();
                async move { select.all(&db).await }
            })
            .await
            .map_err(from_db)?
            .into_iter()
            .map(to_entry)
            .collect()
    }

    async fn changed_since(
        &self,
        user: UserId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        self.router
            .for_user(user)
            .read(|db| async move {
                inbox_entries::Entity::find()
                    .filter(inbox_entries::Column::UserId.eq(user.0))
                    .filter(inbox_entries::Column::Version.gt(since))
                    .order_by_asc(inbox_entries::Column::Version)
                    .limit(u64::from(limit))
                    .all(&db)
                    .await
            })
            .await
            .map_err(from_db)?
            .into_iter()
            .map(to_entry)
            .collect()
    }

    async fn replay(&self, user: UserId, since: i64, limit: u32) -> Result<Replay, StoreError> {
        // The events first, the feed's bounds second (a later snapshot): if pruning ran in
        // between, the bounds say so and the answer is a resync, never a silent gap.
        let (feed, (rows, peers)) = self
            .router
            .for_user(user)
            .read(|db| async move {
                let rows = feed_events::Entity::find()
                    .filter(feed_events::Column::UserId.eq(user.0))
                    .filter(feed_events::Column::Cursor.gt(since))
                    .order_by_asc(feed_events::Column::Cursor)
                    .limit(u64::from(limit))
                    .all(&db)
                    .await?;
                let peers = feed::peers(&db, user, &rows).await?;
                let feed = user_feeds::Entity::find_by_id(user.0).one(&db).await?;
                Ok((feed, (rows, peers)))
            })
            .await
            .map_err(from_db)?;
        let (latest, pruned_through) = feed.map_or((0, 0), |f| (f.last_cursor, f.pruned_through));
        if since > latest || since < pruned_through {
            return Ok(Replay::ResyncRequired { latest });
        }
        let events = feed::events(&self.router, user, rows, &peers).await?;
        Ok(Replay::Events(events))
    }

    async fn latest_cursor(&self, user: UserId) -> Result<i64, StoreError> {
        Ok(self
            .router
            .for_user(user)
            .find(|db| async move { user_feeds::Entity::find_by_id(user.0).one(&db).await })
            .await
            .map_err(from_db)?
            .map_or(0, |f| f.last_cursor))
    }

    async fn prune_feeds(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for shard in self.router.shards() {
            pruned += feed::prune(&shard.writer, before).await?;
        }
        Ok(pruned)
    }
}
