//! Batched delivery: many feed events applied to inboxes with one transaction per user
//! shard, instead of one transaction per member per event.
//!
//! Inside the transaction every touched feed row is locked first, in user order (the same
//! lock a single `apply` takes, so the two serialise), then the batch reads what it needs
//! (which events are already in the feeds, the current entries), folds the events in memory
//! in order, and writes the results with a few multi-row statements. The outcome is the
//! same as applying the events one by one: idempotent on (user, conversation, kind, seq),
//! cursors gap-free per user, positions only forward.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use duet_domain::StoreError;
use duet_domain::inbox::{FeedEvent, InboxUpdate};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, QueryTrait, Statement, Value};
use uuid::Uuid;

use super::bulk::{Lock, chunks, execute_all, find_by_keys, update_by_key};
use super::conversations::begin_write;
use super::entities::{feed_events, inbox_entries, user_feeds};
use super::errors::from_db;
use super::feed::{self, Identity};
use super::inbox::{active, empty_entry, fold};
use super::{SqlStorage, fence};

impl SqlStorage {
    /// See [`duet_domain::inbox::InboxStore::apply_many`].
    pub(super) async fn apply_batch(
        &self,
        updates: &[InboxUpdate<'_>],
    ) -> Result<Vec<Option<FeedEvent>>, StoreError> {
        let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut logical = Vec::with_capacity(updates.len());
        for (i, update) in updates.iter().enumerate() {
            let route = self.router.for_user(update.user);
            by_shard.entry(route.shard.index).or_default().push(i);
            logical.push(route.logical);
        }
        let mut results = vec![None; updates.len()];
        for (shard, indices) in by_shard {
            let shard = self.router.shard(shard);
            let batch: Vec<&InboxUpdate<'_>> = indices.iter().map(|i| &updates[*i]).collect();
            let txn = begin_write(&shard.writer).await?;
            // Refused as a whole when one user moved away: the caller reloads the map and
            // applies the batch again (what committed on other shards is recognised then).
            let owned = fence::require(&txn, indices.iter().map(|i| logical[*i])).await;
            let applied = match owned {
                Err(err) => Err(err),
                Ok(()) => apply_in_txn(&txn, &batch).await,
            };
            let applied = match applied {
                Ok(applied) => applied,
                Err(err) => {
                    let _ = txn.rollback().await;
                    return Err(err);
                }
            };
            if applied.iter().all(Option::is_none) {
                // Roll back now: the feed rows stay locked until then.
                txn.rollback().await.map_err(from_db)?;
                continue;
            }
            txn.commit().await.map_err(from_db)?;
            let slots: BTreeSet<usize> = batch
                .iter()
                .zip(&applied)
                .filter(|(_, a)| a.is_some())
                .map(|(u, _)| self.router.for_user(u.user).slot)
                .collect();
            shard.wrote_all(slots).await;
            for (i, event) in indices.into_iter().zip(applied) {
                results[i] = event;
            }
        }
        Ok(results)
    }
}

async fn apply_in_txn(
    txn: &DatabaseTransaction,
    batch: &[&InboxUpdate<'_>],
) -> Result<Vec<Option<FeedEvent>>, StoreError> {
    let plan = plan_apply(txn, batch, Origin::Delivered).await?;
    execute_all(txn, plan.statements).await.map_err(from_db)?;
    Ok(plan.applied)
}

/// What applying a batch of inbox updates in a transaction comes to.
pub(super) struct ApplyPlan {
    /// The writes, for the caller to run in that transaction (alone or with its own).
    pub statements: Vec<Statement>,
    /// How many rows they change in all.
    pub rows: u64,
    /// Per update, the feed event it adds (`None` for one the feed already holds).
    pub applied: Vec<Option<FeedEvent>>,
}

/// Where a batch of inbox updates comes from, which decides whether a feed can already hold
/// one of its events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Handed over by the relay or a consumer: it may be a redelivery.
    Delivered,
    /// Created by the transaction applying them (an inline delivery): each event's seq was
    /// assigned in this transaction, so no feed can hold it yet and there is nothing to probe.
    SameTransaction,
}

/// Plans applying `batch` in `txn`. Locks the touched feed rows, in user order, first.
pub(super) async fn plan_apply(
    txn: &DatabaseTransaction,
    batch: &[&InboxUpdate<'_>],
    origin: Origin,
) -> Result<ApplyPlan, StoreError> {
    let users: BTreeSet<Uuid> = batch.iter().map(|u| u.user.0).collect();

    let keys: Vec<Vec<Value>> = users.iter().map(|user| vec![(*user).into()]).collect();
    // Per user: the cursor loaded, the cursor reached, and since when the feed holds events.
    let mut cursors: HashMap<Uuid, (i64, i64, Option<DateTime<Utc>>)> =
        find_by_keys::<user_feeds::Entity, _>(txn, &["user_id"], Lock::ForUpdate, &keys)
            .await
            .map_err(from_db)?
            .into_iter()
            .map(|f| (f.user_id, (f.last_cursor, f.last_cursor, f.oldest_at)))
            .collect();
    let mut seen = match origin {
        Origin::Delivered => applied_before(txn, batch).await?,
        Origin::SameTransaction => HashSet::new(),
    };
    let pairs: BTreeSet<(Uuid, Uuid)> = batch
        .iter()
        .map(|u| (u.user.0, u.event.conversation_id().0))
        .collect();
    let keys: Vec<Vec<Value>> = pairs
        .into_iter()
        .map(|(user, conversation)| vec![user.into(), conversation.into()])
        .collect();
    let mut entries: HashMap<(Uuid, Uuid), (inbox_entries::Model, bool)> =
        find_by_keys::<inbox_entries::Entity, _>(
            txn,
            &["user_id", "conversation_id"],
            Lock::None,
            &keys,
        )
        .await
        .map_err(from_db)?
        .into_iter()
        .map(|row| ((row.user_id, row.conversation_id), (row, false)))
        .collect();

    // One stamp for the batch: age order stays cursor order, which pruning relies on.
    let now = duet_domain::clock::now();
    let mut applied = Vec::with_capacity(batch.len());
    let mut feed_rows = Vec::new();
    for update in batch {
        let (user, event) = (update.user, update.event);
        let conversation = event.conversation_id();
        let identity = feed::identity(user, event);
        if seen.contains(&identity) {
            applied.push(None);
            continue;
        }
        let Some((_, last_cursor, _)) = cursors.get_mut(&user.0) else {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "user {user} has no feed"
            )));
        };
        let key = (user.0, conversation.0);
        let entry = entries.get(&key).map_or_else(
            || empty_entry(user, conversation, update.peer, update.at),
            |(row, _)| row.clone(),
        );
        let cursor = *last_cursor + 1;
        let Some(entry) = fold(entry, user, event, cursor)? else {
            applied.push(None);
            continue;
        };
        *last_cursor = cursor;
        entries.insert(key, (entry, true));
        seen.insert(identity);
        feed_rows.push(feed::feed_row(user, cursor, event, now));
        applied.push(Some(FeedEvent {
            cursor,
            body: event.clone(),
            created_at: now,
        }));
    }

    // The writes: cursors, entries, feed rows.
    let backend = txn.get_database_backend();
    let moved: Vec<Vec<Value>> = cursors
        .iter()
        .filter(|(_, (loaded, last, _))| last != loaded)
        .map(|(user, (_, last, oldest))| {
            vec![(*user).into(), (*last).into(), oldest.unwrap_or(now).into()]
        })
        .collect();
    let mut statements = update_by_key(
        backend,
        "user_feeds",
        &["user_id", "last_cursor", "oldest_at"],
        &["last_cursor", "oldest_at"],
        &[],
        &moved,
    );
    let changed: Vec<_> = entries
        .into_values()
        .filter(|(_, dirty)| *dirty)
        .map(|(row, _)| active(row))
        .collect();
    for chunk in chunks(&changed) {
        statements.push(
            inbox_entries::Entity::insert_many(chunk.iter().cloned())
                .on_conflict(upsert_entry())
                .build(backend),
        );
    }
    for chunk in chunks(&feed_rows) {
        statements.push(feed_events::Entity::insert_many(chunk.iter().cloned()).build(backend));
    }
    let rows = (moved.len() + changed.len() + feed_rows.len()) as u64;
    Ok(ApplyPlan {
        statements,
        rows,
        applied,
    })
}

/// Which events of the batch the feeds already hold (a redelivery): one exact probe of the
/// unique identity index per distinct event.
async fn applied_before(
    txn: &DatabaseTransaction,
    batch: &[&InboxUpdate<'_>],
) -> Result<HashSet<Identity>, StoreError> {
    let identities: BTreeSet<Identity> = batch
        .iter()
        .map(|u| feed::identity(u.user, u.event))
        .collect();
    let keys: Vec<Vec<Value>> = identities
        .iter()
        .map(|(user, conversation, kind, seq)| {
            vec![
                (*user).into(),
                (*conversation).into(),
                kind.code().into(),
                (*seq).into(),
            ]
        })
        .collect();
    let stored: HashSet<(Uuid, Uuid, i16, i64)> = find_by_keys::<feed_events::Entity, _>(
        txn,
        &["user_id", "conversation_id", "kind", "seq"],
        Lock::None,
        &keys,
    )
    .await
    .map_err(from_db)?
    .into_iter()
    .map(|row| (row.user_id, row.conversation_id, row.kind, row.seq))
    .collect();
    Ok(identities
        .into_iter()
        .filter(|(user, conversation, kind, seq)| {
            stored.contains(&(*user, *conversation, kind.code(), *seq))
        })
        .collect())
}

/// An entry row replaces the stored one: it was folded from it under the feed lock.
pub(super) fn upsert_entry() -> OnConflict {
    OnConflict::columns([
        inbox_entries::Column::UserId,
        inbox_entries::Column::ConversationId,
    ])
    .update_columns([
        inbox_entries::Column::LastSeq,
        inbox_entries::Column::ReadSeq,
        inbox_entries::Column::PeerReadSeq,
        inbox_entries::Column::LastMessage,
        inbox_entries::Column::Version,
        inbox_entries::Column::Activity,
        inbox_entries::Column::UpdatedAt,
    ])
    .to_owned()
}
