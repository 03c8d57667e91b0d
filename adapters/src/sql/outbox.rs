//! The outbox, read by the relay. On PostgreSQL, where several processes share a database,
//! a relay claims a shard's outbox with a transaction-scoped advisory lock held from
//! `pending` until `remove` (or `release`), so one process relays a shard at a time and the
//! others skip it; the rows are deleted in that same transaction, only after the hand-off.
//! A crashed relay's lock ends with its connection. SQLite needs no claim: it is one file,
//! in practice one process.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::StoreError;
use duet_domain::events::{Backlog, Outbox, OutboxEntry};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::SqlStorage;
use super::conversations::begin_write;
use super::entities::outbox;
use super::errors::from_db;
use super::router::Shard;

/// The outboxes' oldest row: the oldest event not yet handed to the queue.
#[async_trait]
impl Backlog for SqlStorage {
    async fn oldest_waiting(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut oldest: Option<DateTime<Utc>> = None;
        for shard in self.router.shards() {
            // The reader (SQLite's read pool, PostgreSQL's primary): on SQLite the writer
            // connection is the group commit's.
            let first = outbox::Entity::find()
                .order_by_asc(outbox::Column::Id)
                .one(&shard.reader)
                .await
                .map_err(from_db)?;
            if let Some(first) = first {
                oldest = Some(oldest.map_or(first.created_at, |o| o.min(first.created_at)));
            }
        }
        Ok(oldest)
    }
}

/// The advisory lock key of shard `index`'s outbox: "duet" in the high bytes, so it cannot
/// collide with small keys other software may use.
fn relay_lock_key(index: usize) -> i64 {
    0x6475_6574_0000_0000 | index as i64
}

/// Claims held by this process's relay: shard index → the transaction holding its lock.
pub(super) type RelayClaims = tokio::sync::Mutex<HashMap<usize, DatabaseTransaction>>;

impl SqlStorage {
    /// Ends this process's relay claims (at close, so the pools can shut down).
    pub(super) async fn release_claims(&self) {
        for (_, txn) in self.relay_claims.lock().await.drain() {
            let _ = txn.rollback().await;
        }
    }

    /// Takes shard's relay lock in a new transaction, or `None` when another process holds it.
    async fn claim(&self, shard: &Shard) -> Result<Option<DatabaseTransaction>, StoreError> {
        let txn = shard.writer.begin().await.map_err(from_db)?;
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [relay_lock_key(shard.index).into()],
            ))
            .await
            .map_err(from_db)?;
        let locked = row
            .map(|r| r.try_get::<bool>("", "locked"))
            .transpose()
            .map_err(from_db)?
            .unwrap_or(false);
        if locked {
            Ok(Some(txn))
        } else {
            txn.rollback().await.map_err(from_db)?;
            Ok(None)
        }
    }
}

/// Decodes rows; also returns the ids (and why) of rows whose payload is not an event.
/// Those can never be delivered, so they are set aside at once instead of failing every
/// relay run.
fn decode(shard: usize, rows: Vec<outbox::Model>) -> (Vec<OutboxEntry>, Vec<(i64, String)>) {
    let mut entries = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in rows {
        match serde_json::from_str(&row.payload) {
            Ok(event) => entries.push(OutboxEntry {
                partition: shard,
                id: row.id,
                event,
            }),
            Err(err) => unreadable.push((row.id, format!("payload is not a durable event: {err}"))),
        }
    }
    (entries, unreadable)
}

async fn set_unreadable_aside<C: ConnectionTrait>(
    db: &C,
    unreadable: &[(i64, String)],
) -> Result<(), StoreError> {
    for (id, error) in unreadable {
        tracing::error!(entry = id, error, "outbox entry set aside");
        move_aside(db, *id, error).await?;
    }
    Ok(())
}

fn oldest(limit: u32) -> sea_orm::Select<outbox::Entity> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .limit(u64::from(limit))
}

/// Copies the outbox row `id` to `outbox_dead_letters` with `error`, then deletes it.
async fn move_aside<C: ConnectionTrait>(db: &C, id: i64, error: &str) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let copy = format!(
        "INSERT INTO outbox_dead_letters (id, event_id, payload, created_at, failed_at, error) \
         SELECT id, event_id, payload, created_at, {}, {} FROM outbox WHERE id = {}",
        p(1),
        p(2),
        p(3)
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        copy,
        [
            duet_domain::clock::now().into(),
            error.to_owned().into(),
            id.into(),
        ],
    ))
    .await
    .map_err(from_db)?;
    outbox::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map_err(from_db)?;
    metrics::counter!("duet_outbox_set_aside_total").increment(1);
    Ok(())
}

async fn delete(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::delete_many()
        .filter(outbox::Column::Id.is_in(ids))
        .exec(db)
        .await
        .map_err(from_db)?;
    Ok(())
}

fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

#[async_trait]
impl Outbox for SqlStorage {
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut claims = self.relay_claims.lock().await;
        // A claim left from a run that never finished ends here; its entries come back below.
        for (_, txn) in claims.drain() {
            let _ = txn.rollback().await;
        }
        let mut entries = Vec::new();
        for shard in self.router.shards() {
            if !is_postgres(&shard.writer) {
                // WAL readers see every commit: the writer connection stays free for writes.
                let rows = oldest(limit).all(&shard.reader).await.map_err(from_db)?;
                let (readable, unreadable) = decode(shard.index, rows);
                if !unreadable.is_empty() {
                    let txn = begin_write(&shard.writer).await?;
                    set_unreadable_aside(&txn, &unreadable).await?;
                    txn.commit().await.map_err(from_db)?;
                }
                entries.extend(readable);
                continue;
            }
            let Some(txn) = self.claim(shard).await? else {
                continue;
            };
            let rows = oldest(limit).all(&txn).await.map_err(from_db)?;
            if rows.is_empty() {
                txn.rollback().await.map_err(from_db)?;
                continue;
            }
            let (readable, unreadable) = decode(shard.index, rows);
            set_unreadable_aside(&txn, &unreadable).await?;
            if readable.is_empty() {
                // Nothing to hand off: keep what was set aside and end the claim now.
                txn.commit().await.map_err(from_db)?;
                continue;
            }
            entries.extend(readable);
            claims.insert(shard.index, txn);
        }
        Ok(entries)
    }

    async fn remove(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let mut claims = self.relay_claims.lock().await;
        for shard in self.router.shards() {
            let ids: Vec<i64> = entries
                .iter()
                .filter(|e| e.partition == shard.index)
                .map(|e| e.id)
                .collect();
            match claims.remove(&shard.index) {
                Some(txn) => {
                    delete(&txn, ids).await?;
                    txn.commit().await.map_err(from_db)?;
                }
                None => delete(&shard.writer, ids).await?,
            }
        }
        Ok(())
    }

    async fn release(&self) {
        self.release_claims().await;
    }

    async fn set_aside(&self, entry: &OutboxEntry, error: &str) -> Result<(), StoreError> {
        let claims = self.relay_claims.lock().await;
        if let Some(txn) = claims.get(&entry.partition) {
            return move_aside(txn, entry.id, error).await;
        }
        let shard = self.router.shard(entry.partition);
        let txn = begin_write(&shard.writer).await?;
        move_aside(&txn, entry.id, error).await?;
        txn.commit().await.map_err(from_db)
    }

    async fn wait_for_entries(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.outbox_signal.notified()).await;
    }
}
