//! The ownership fence: every write checks, inside its own transaction on the database it
//! writes to, that this database owns the logical shards of the keys it writes, and is
//! refused otherwise. A process whose map is stale (a move finished elsewhere) is refused by
//! the former owner, reloads the map and retries on the new one ([`SqlStorage::owned`]), so no
//! write lands on a database that gave its logical shard away.
//!
//! On PostgreSQL the check is `duet_unowned` (see the migration), which also takes a shared
//! advisory lock per logical shard that a move's fence waits for. SQLite is one database
//! that owns everything; it has nothing to check.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use duet_domain::StoreError;
use sea_orm::{ConnectionTrait, DbBackend};

use super::SqlStorage;
use super::errors::from_db;
use super::shard_map::statement;

/// A write reached a database that does not own (or has fenced) one of its logical shards.
#[derive(Debug, thiserror::Error)]
#[error("this database does not own logical shards {logical:?} (the shard map moved on)")]
pub(super) struct NotOwner {
    pub logical: Vec<u32>,
}

/// How long a write keeps retrying on refusals: covers a move's fence (the time to copy a
/// logical shard's last changes and switch owners) with room to spare.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// The `StoreError` of a refused write: `Unavailable`, so a caller that runs out of retries
/// answers 503 with Retry-After.
pub(super) fn not_owner(logical: Vec<u32>) -> StoreError {
    StoreError::Unavailable(anyhow::Error::new(NotOwner { logical }))
}

/// Whether `err` is a refusal by the ownership fence.
pub(super) fn is_not_owner(err: &StoreError) -> bool {
    match err {
        StoreError::Unavailable(inner) => inner.downcast_ref::<NotOwner>().is_some(),
        StoreError::Unexpected(_) => false,
    }
}

/// Of `logical`, those the database behind `txn` does not own or has fenced; each checked
/// one is share-locked until `txn` ends. Always empty on SQLite.
pub(super) async fn unowned(
    txn: &impl ConnectionTrait,
    logical: impl IntoIterator<Item = u32>,
) -> Result<BTreeSet<u32>, StoreError> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(BTreeSet::new());
    }
    let wanted: BTreeSet<u32> = logical.into_iter().collect();
    if wanted.is_empty() {
        return Ok(wanted);
    }
    // As text, so one statement text (and one prepared statement) serves every list.
    let list = format!(
        "{{{}}}",
        wanted
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let row = txn
        .query_one_raw(statement(
            txn,
            "SELECT array_to_string(duet_unowned(CAST($1 AS integer[])), ',') AS missing",
            [list.into()],
        ))
        .await
        .map_err(from_db)?;
    let missing: String = match row {
        Some(row) => row.try_get("", "missing").map_err(from_db)?,
        None => String::new(),
    };
    Ok(missing
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Refuses with [`NotOwner`] unless the database behind `txn` owns every one of `logical`.
pub(super) async fn require(
    txn: &impl ConnectionTrait,
    logical: impl IntoIterator<Item = u32>,
) -> Result<(), StoreError> {
    let missing = unowned(txn, logical).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(not_owner(missing.into_iter().collect()))
    }
}

impl SqlStorage {
    /// Runs `write` (which routes its keys with the current map each time it is called)
    /// until it is not refused by the fence: after each refusal the map is reloaded, and
    /// while a logical shard is fenced by a move (owned by nobody for a moment) it waits a
    /// little more each time, for up to [`RETRY_FOR`].
    pub(super) async fn owned<T, F, Fut>(&self, write: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(2);
        loop {
            match write().await {
                Err(err) if is_not_owner(&err) && tokio::time::Instant::now() < deadline => {
                    metrics::counter!("duet_shard_refusals_total").increment(1);
                    let before = self.router.map().version;
                    if let Err(error) = self.reload_shard_map().await {
                        tracing::warn!(%error, "cannot reload the shard map");
                    }
                    if self.router.map().version == before {
                        // Nobody owns it yet: a move is switching it over.
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                }
                other => return other,
            }
        }
    }
}
