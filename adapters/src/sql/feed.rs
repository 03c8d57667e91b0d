//! Feed rows: what a member's feed holds of each event, and the events read back from them.
//!
//! A row references its change instead of copying it: (user, cursor) orders it, (conversation,
//! seq, kind) identifies it. A message event is read back from `messages` by (conversation,
//! seq), on the conversation's shard; a read receipt is whole from the row itself, since its
//! kind says whose it is and its seq is the new read position (the peer's id comes from the
//! inbox entry beside the feed).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use duet_domain::conversations::Message;
use duet_domain::inbox::{FeedEvent, FeedEventBody};
use duet_domain::{ConversationId, StoreError, UserId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Value,
};

use super::bulk::{Lock, find_by_keys};
use super::conversations::{begin_write, to_message};
use super::entities::{feed_events, inbox_entries, messages, user_feeds};
use super::errors::from_db;
use super::router::ShardRouter;

/// What a feed row records, stored as a small integer in `feed_events.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum FeedKind {
    /// `message.created`: the message at the row's seq.
    Message = 1,
    /// `conversation.read` by the feed's owner (from another of their devices).
    ReadByOwner = 2,
    /// `conversation.read` by the owner's peer: a read receipt.
    ReadByPeer = 3,
}

impl FeedKind {
    /// How `user`'s feed records `event`.
    pub fn of(user: UserId, event: &FeedEventBody) -> Self {
        match event {
            FeedEventBody::MessageCreated { .. } => Self::Message,
            FeedEventBody::ConversationRead { reader_id, .. } if *reader_id == user => {
                Self::ReadByOwner
            }
            FeedEventBody::ConversationRead { .. } => Self::ReadByPeer,
        }
    }

    pub fn code(self) -> i16 {
        self as i16
    }

    fn from_code(code: i16) -> Result<Self, StoreError> {
        match code {
            1 => Ok(Self::Message),
            2 => Ok(Self::ReadByOwner),
            3 => Ok(Self::ReadByPeer),
            other => Err(StoreError::Unexpected(anyhow::anyhow!(
                "unknown feed event kind {other}"
            ))),
        }
    }
}

/// An event's identity in one user's feed: (user, conversation, kind, seq).
pub(super) type Identity = (uuid::Uuid, uuid::Uuid, FeedKind, i64);

pub(super) fn identity(user: UserId, event: &FeedEventBody) -> Identity {
    (
        user.0,
        event.conversation_id().0,
        FeedKind::of(user, event),
        event.seq(),
    )
}

/// The row recording `event` in `user`'s feed at `cursor`.
pub(super) fn feed_row(
    user: UserId,
    cursor: i64,
    event: &FeedEventBody,
    at: DateTime<Utc>,
) -> feed_events::ActiveModel {
    feed_events::ActiveModel {
        user_id: Set(user.0),
        cursor: Set(cursor),
        conversation_id: Set(event.conversation_id().0),
        kind: Set(FeedKind::of(user, event).code()),
        seq: Set(event.seq()),
        created_at: Set(at),
    }
}

/// The events `rows` of `user`'s feed record, in the rows' order. `peers` are the user's
/// peers by conversation (for read receipts); the messages are read by (conversation, seq)
/// on their conversations' shards.
pub(super) async fn events(
    router: &ShardRouter,
    user: UserId,
    rows: Vec<feed_events::Model>,
    peers: &HashMap<uuid::Uuid, uuid::Uuid>,
) -> Result<Vec<FeedEvent>, StoreError> {
    let mut wanted: BTreeMap<usize, (Vec<usize>, Vec<Vec<Value>>)> = BTreeMap::new();
    for row in &rows {
        if FeedKind::from_code(row.kind)? == FeedKind::Message {
            let route = router.for_conversation(ConversationId(row.conversation_id));
            let (slots, keys) = wanted.entry(route.shard.index).or_default();
            slots.push(route.slot);
            keys.push(vec![row.conversation_id.into(), row.seq.into()]);
        }
    }
    let mut messages: HashMap<(uuid::Uuid, i64), Message> = HashMap::new();
    for (shard, (slots, keys)) in wanted {
        let shard = router.shard(shard);
        let read = |db: DatabaseConnection, keys: Vec<Vec<Value>>| async move {
            find_by_keys::<messages::Entity, _>(&db, &["conversation_id", "seq"], Lock::None, &keys)
                .await
        };
        let found = shard
            .read(&slots, |db| read(db, keys.clone()))
            .await
            .map_err(from_db)?;
        let complete = found.len() == keys.len();
        messages.extend(
            found
                .into_iter()
                .map(|row| ((row.conversation_id, row.seq), to_message(row))),
        );
        if !complete {
            // A replica behind the primary (the message was written through another
            // process): what it lacks, the primary has.
            let missing: Vec<Vec<Value>> = keys
                .into_iter()
                .filter(|key| {
                    let (Value::Uuid(Some(conversation)), Value::BigInt(Some(seq))) =
                        (&key[0], &key[1])
                    else {
                        return true;
                    };
                    !messages.contains_key(&(*conversation, *seq))
                })
                .collect();
            let found = read(shard.reader.clone(), missing).await.map_err(from_db)?;
            messages.extend(
                found
                    .into_iter()
                    .map(|row| ((row.conversation_id, row.seq), to_message(row))),
            );
        }
    }
    rows.into_iter()
        .map(|row| {
            let conversation_id = ConversationId(row.conversation_id);
            let body = match FeedKind::from_code(row.kind)? {
                FeedKind::Message => FeedEventBody::MessageCreated {
                    message: messages
                        .remove(&(row.conversation_id, row.seq))
                        .ok_or_else(|| missing(user, &row, "message"))?,
                },
                kind => FeedEventBody::ConversationRead {
                    conversation_id,
                    reader_id: if kind == FeedKind::ReadByOwner {
                        user
                    } else {
                        UserId(
                            *peers
                                .get(&row.conversation_id)
                                .ok_or_else(|| missing(user, &row, "inbox entry"))?,
                        )
                    },
                    read_seq: row.seq,
                },
            };
            Ok(FeedEvent {
                cursor: row.cursor,
                body,
                created_at: row.created_at,
            })
        })
        .collect()
}

fn missing(user: UserId, row: &feed_events::Model, what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!(
        "feed event {} of user {user} references a {what} that is not stored (conversation {}, seq {})",
        row.cursor,
        row.conversation_id,
        row.seq
    ))
}

/// The peers of `user` in `conversations`, from the inbox entries beside the feed.
pub(super) async fn peers<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    rows: &[feed_events::Model],
) -> Result<HashMap<uuid::Uuid, uuid::Uuid>, DbErr> {
    let mut conversations: Vec<uuid::Uuid> = rows
        .iter()
        .filter(|row| row.kind != FeedKind::Message.code())
        .map(|row| row.conversation_id)
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    if conversations.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<Vec<Value>> = conversations
        .into_iter()
        .map(|conversation| vec![user.0.into(), conversation.into()])
        .collect();
    Ok(find_by_keys::<inbox_entries::Entity, _>(
        db,
        &["user_id", "conversation_id"],
        Lock::None,
        &keys,
    )
    .await?
    .into_iter()
    .map(|entry| (entry.conversation_id, entry.peer_id))
    .collect())
}

/// Rows a pruning step reads of one feed at a time.
const PRUNE_PAGE: u64 = 512;
/// Stale feeds the pruner lists at a time.
const STALE_FEEDS_PAGE: u64 = 1000;

/// Deletes the events of every feed on `db` added before `before`, through each feed's
/// primary-key range (no index on age): only feeds whose `oldest_at` is older are visited,
/// and of each only the old rows (and one page past them) are read. Remembers per feed the
/// newest cursor that is gone, so a client resuming from before it resynchronises instead of
/// silently missing events. Returns how many events it deleted.
pub(super) async fn prune(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    prune_paged(db, before, STALE_FEEDS_PAGE).await
}

/// [`prune`], listing `page` stale feeds at a time.
async fn prune_paged(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    page_size: u64,
) -> Result<u64, StoreError> {
    let mut pruned = 0;
    let mut after: Option<uuid::Uuid> = None;
    loop {
        // The stale feeds a page at a time, in user order.
        let mut page = user_feeds::Entity::find()
            .select_only()
            .column(user_feeds::Column::UserId)
            .filter(user_feeds::Column::OldestAt.lt(before));
        if let Some(after) = after {
            page = page.filter(user_feeds::Column::UserId.gt(after));
        }
        let users: Vec<uuid::Uuid> = page
            .order_by_asc(user_feeds::Column::UserId)
            .limit(page_size)
            .into_tuple()
            .all(db)
            .await
            .map_err(from_db)?;
        for user in &users {
            pruned += prune_feed(db, *user, before).await?;
        }
        if (users.len() as u64) < page_size {
            return Ok(pruned);
        }
        after = users.last().copied();
    }
}

async fn prune_feed(
    db: &DatabaseConnection,
    user: uuid::Uuid,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut pruned = 0;
    loop {
        // The feed row's lock orders this against a concurrent apply (PostgreSQL; SQLite's
        // write transaction holds the file).
        let txn = begin_write(db).await?;
        let feed = user_feeds::Entity::find_by_id(user)
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(from_db)?;
        let Some(feed) = feed else {
            return Ok(pruned);
        };
        // Cursor order is age order within a feed: the old rows are a prefix.
        let page: Vec<(i64, DateTime<Utc>)> = feed_events::Entity::find()
            .select_only()
            .column(feed_events::Column::Cursor)
            .column(feed_events::Column::CreatedAt)
            .filter(feed_events::Column::UserId.eq(user))
            .order_by_asc(feed_events::Column::Cursor)
            .limit(PRUNE_PAGE)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(from_db)?;
        let old = page.iter().take_while(|(_, at)| *at < before).count();
        let Some(&(through, _)) = old.checked_sub(1).and_then(|last| page.get(last)) else {
            // Nothing old after all (a concurrent prune, or events added since): just
            // record when the oldest remaining one was added.
            set_oldest(&txn, feed, page.first().map(|(_, at)| *at)).await?;
            txn.commit().await.map_err(from_db)?;
            return Ok(pruned);
        };
        let deleted = feed_events::Entity::delete_many()
            .filter(feed_events::Column::UserId.eq(user))
            .filter(feed_events::Column::Cursor.lte(through))
            .exec(&txn)
            .await
            .map_err(from_db)?;
        pruned += deleted.rows_affected;
        let more = old as u64 == PRUNE_PAGE;
        // With more to prune, the newest deleted row's age keeps the feed among the stale
        // ones should this stop before the next page.
        let oldest = page.get(old).or(page.get(old - 1).filter(|_| more));
        let mut feed: user_feeds::ActiveModel = feed.into();
        feed.pruned_through = Set(through);
        feed.oldest_at = Set(oldest.map(|(_, at)| *at));
        user_feeds::Entity::update(feed)
            .exec(&txn)
            .await
            .map_err(from_db)?;
        txn.commit().await.map_err(from_db)?;
        if !more {
            return Ok(pruned);
        }
    }
}

async fn set_oldest<C: ConnectionTrait>(
    db: &C,
    feed: user_feeds::Model,
    oldest: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    if feed.oldest_at == oldest {
        return Ok(());
    }
    let mut feed: user_feeds::ActiveModel = feed.into();
    feed.oldest_at = Set(oldest);
    user_feeds::Entity::update(feed)
        .exec(db)
        .await
        .map_err(from_db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::PaginatorTrait;

    use super::*;
    use crate::sql::{SqlOptions, SqlStorage};

    /// Five feeds of three old events each, listed two feeds at a time: every old event goes,
    /// every feed remembers how far it was pruned, and none is left marked stale.
    #[tokio::test]
    async fn every_stale_feed_is_pruned_whatever_the_page() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let storage = SqlStorage::connect(SqlOptions::sqlite(&dir.path().join("duet.db"), true))
            .await
            .expect("SQLite opens");
        storage.migrate().await.expect("migrates");
        let db = storage.router().shard(0).writer.clone();
        let old = duet_domain::clock::now() - chrono::Duration::days(2);
        for _ in 0..5 {
            let user = uuid::Uuid::now_v7();
            user_feeds::Entity::insert(user_feeds::ActiveModel {
                user_id: Set(user),
                last_cursor: Set(3),
                pruned_through: Set(0),
                oldest_at: Set(Some(old)),
            })
            .exec_without_returning(&db)
            .await
            .expect("a feed");
            for cursor in 1..=3 {
                feed_events::Entity::insert(feed_events::ActiveModel {
                    user_id: Set(user),
                    cursor: Set(cursor),
                    conversation_id: Set(uuid::Uuid::now_v7()),
                    kind: Set(FeedKind::Message.code()),
                    seq: Set(cursor),
                    created_at: Set(old),
                })
                .exec_without_returning(&db)
                .await
                .expect("an event");
            }
        }
        let before = duet_domain::clock::now() - chrono::Duration::days(1);
        assert_eq!(prune_paged(&db, before, 2).await.expect("prunes"), 15);
        assert_eq!(
            feed_events::Entity::find()
                .count(&db)
                .await
                .expect("counts"),
            0
        );
        let feeds = user_feeds::Entity::find().all(&db).await.expect("reads");
        assert!(
            feeds
                .iter()
                .all(|f| f.pruned_through == 3 && f.oldest_at.is_none())
        );
        storage.close().await;
    }
}
