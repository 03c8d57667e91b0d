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

/// Deletes the events of every feed on `db` added before `before`, through each feed's
/// primary-key range (no index on age): only feeds whose `oldest_at` is older are visited,
/// and of each only the old rows (and one page past them) are read. Remembers per feed the
/// newest cursor that is gone, so a client resuming from before it resynchronises instead of
/// silently missing events. Returns how many events it deleted.
pub(super) async fn prune(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let stale: Vec<user_feeds::Model> = user_feeds::Entity::find()
        .filter(user_feeds::Column::OldestAt.lt(before))
        .all(db)
        .await
        .map_err(from_db)?;
    let mut pruned = 0;
    for feed in stale {
        pruned += prune_feed(db, feed.user_id, before).await?;
    }
    Ok(pruned)
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
