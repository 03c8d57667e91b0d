//! The shard map as data: each database's identity and owned logical shards, the directory
//! on the first physical shard, and this process's copy of it (see the migration
//! `m20261203_000001_shard_map` for the tables).
//!
//! A new cluster spreads the logical shards evenly, in contiguous ranges, over the configured
//! physical shards. A physical shard added to the configuration later joins owning nothing;
//! `duet shards move` and `rebalance` give it logical shards.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use super::SqlStorage;
use super::router::{ShardMap, ShardRouter};

/// `?` on SQLite, `$n` on PostgreSQL.
pub(super) fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

pub(super) fn statement(
    db: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// The rows of `sql` as `(i64, i64)` pairs of its columns `a` and `b`.
pub(super) async fn pairs(
    db: &impl ConnectionTrait,
    sql: &str,
) -> Result<Vec<(i64, i64)>, sea_orm::DbErr> {
    db.query_all_raw(statement(db, sql, []))
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get::<i64>("", "a")?, row.try_get::<i64>("", "b")?)))
        .collect()
}

/// The single `int8` column `value` of `sql`'s first row; `None` without a row or when it
/// is NULL (`max` of nothing).
pub(super) async fn scalar(
    db: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<Option<i64>, sea_orm::DbErr> {
    Ok(db
        .query_one_raw(statement(db, sql, values))
        .await?
        .map(|row| row.try_get::<Option<i64>>("", "value"))
        .transpose()?
        .flatten())
}

impl SqlStorage {
    /// Checks every database is the physical shard the configuration says it is, sets up the
    /// map of a new cluster, and loads it. Run after migrations; idempotent, and safe when
    /// several processes start at once.
    ///
    /// # Errors
    /// When a database is another physical shard than its place in the configured list, the
    /// stored number of logical shards differs from the configured one, or the map names a
    /// physical shard that is not configured.
    pub async fn prepare_shard_map(&self) -> anyhow::Result<()> {
        let router = &self.router;
        for shard in router.shards() {
            claim_identity(&shard.writer, shard.index)
                .await
                .with_context(|| format!("physical shard {} ({})", shard.index, shard.name))?;
        }
        let directory = &router.shard(0).writer;
        let stored = scalar(
            directory,
            "SELECT CAST(logical_shards AS bigint) AS value FROM shard_map WHERE id = 1",
            [],
        )
        .await?;
        match stored {
            Some(count) => anyhow::ensure!(
                count == i64::from(router.logical_shards()),
                "this cluster has {count} logical shards but storage.logical_shards is {}: \
                 the number can never change on existing data",
                router.logical_shards()
            ),
            None => bootstrap(router).await?,
        }
        self.reload_shard_map().await?;
        if router.shard(0).writer.get_database_backend() == DbBackend::Postgres {
            router.keep(tokio::spawn(watch(self.router.clone(), self.map_refresh)));
        }
        Ok(())
    }

    /// Reads the directory and installs it when it is newer than this process's copy.
    ///
    /// # Errors
    /// When the directory cannot be read or names a physical shard that is not configured.
    pub async fn reload_shard_map(&self) -> anyhow::Result<Arc<ShardMap>> {
        let map = read_map(&self.router).await?;
        self.router.install(map);
        Ok(self.router.map())
    }
}

/// Records that `db` is physical shard `index`, or checks that it already is.
async fn claim_identity(db: &DatabaseConnection, index: usize) -> anyhow::Result<()> {
    let index = i64::try_from(index)?;
    let insert = format!(
        "INSERT INTO shard_identity (physical) SELECT {} WHERE NOT EXISTS \
         (SELECT 1 FROM shard_identity)",
        placeholder(db.get_database_backend(), 1)
    );
    db.execute_raw(statement(db, &insert, [index.into()]))
        .await?;
    let stored = pairs(
        db,
        "SELECT CAST(physical AS bigint) AS a, CAST(count(*) OVER () AS bigint) AS b \
         FROM shard_identity",
    )
    .await?;
    anyhow::ensure!(
        stored == [(index, 1)],
        "this database is physical shard {} of its cluster, not {index}: keep the order of \
         storage.postgres.shards (add new shards at the end)",
        stored
            .iter()
            .map(|(p, _)| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// A new cluster: each physical shard takes its even share of the logical shards, then the
/// directory records it (last, so a crash before leaves a cluster that bootstraps again).
async fn bootstrap(router: &ShardRouter) -> anyhow::Result<()> {
    let plan = ShardMap::contiguous(router.logical_shards(), router.shards().len());
    for shard in router.shards() {
        let owned: Vec<u32> = plan
            .owners()
            .filter(|(_, owner)| *owner == shard.index)
            .map(|(logical, _)| logical)
            .collect();
        let txn = shard.writer.begin().await?;
        insert_owned(&txn, &owned).await?;
        txn.commit().await?;
    }
    let directory = router.shard(0).writer.begin().await?;
    let backend = directory.get_database_backend();
    let entries: Vec<(u32, usize)> = plan.owners().collect();
    for chunk in entries.chunks(256) {
        let rows = chunk
            .iter()
            .map(|(logical, physical)| format!("({logical}, {physical})"))
            .collect::<Vec<_>>()
            .join(", ");
        directory
            .execute_unprepared(&format!(
                "INSERT INTO shard_directory (logical, physical) VALUES {rows} \
                 ON CONFLICT (logical) DO NOTHING"
            ))
            .await?;
    }
    directory
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO shard_map (id, version, logical_shards) VALUES (1, 1, {}) \
                 ON CONFLICT (id) DO NOTHING",
                placeholder(backend, 1)
            ),
            [i64::from(router.logical_shards()).into()],
        ))
        .await?;
    directory.commit().await?;
    tracing::info!(
        physical = router.shards().len(),
        logical = router.logical_shards(),
        "new cluster: logical shards spread over the physical shards"
    );
    Ok(())
}

/// Adds `logical` shards to the ones `db` owns (unfenced).
pub(super) async fn insert_owned(
    db: &impl ConnectionTrait,
    logical: &[u32],
) -> Result<(), sea_orm::DbErr> {
    for chunk in logical.chunks(256) {
        let rows = chunk
            .iter()
            .map(|l| format!("({l}, false)"))
            .collect::<Vec<_>>()
            .join(", ");
        db.execute_unprepared(&format!(
            "INSERT INTO shard_owners (logical, fenced) VALUES {rows} \
             ON CONFLICT (logical) DO UPDATE SET fenced = false"
        ))
        .await?;
    }
    Ok(())
}

/// The stored map.
async fn read_map(router: &ShardRouter) -> anyhow::Result<ShardMap> {
    let directory = &router.shard(0).writer;
    let version = scalar(
        directory,
        "SELECT version AS value FROM shard_map WHERE id = 1",
        [],
    )
    .await?
    .context("the shard map is missing: run `duet migrate`")?;
    let rows = pairs(
        directory,
        "SELECT CAST(logical AS bigint) AS a, CAST(physical AS bigint) AS b \
         FROM shard_directory ORDER BY logical",
    )
    .await?;
    let logical = router.logical_shards() as usize;
    let mut owners = vec![usize::MAX; logical];
    for (l, physical) in rows {
        let (Ok(l), Ok(physical)) = (usize::try_from(l), usize::try_from(physical)) else {
            anyhow::bail!("the shard directory holds a negative number");
        };
        anyhow::ensure!(
            physical < router.shards().len(),
            "the shard map gives logical shard {l} to physical shard {physical}, but only {} \
             are configured",
            router.shards().len()
        );
        if let Some(owner) = owners.get_mut(l) {
            *owner = physical;
        }
    }
    if let Some(l) = owners.iter().position(|o| *o == usize::MAX) {
        anyhow::bail!("the shard directory has no owner for logical shard {l}");
    }
    Ok(ShardMap::new(version, owners))
}

/// Checks the map's version every `every` and reloads it when it changed.
async fn watch(router: Arc<ShardRouter>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let stored = scalar(
            &router.shard(0).writer,
            "SELECT version AS value FROM shard_map WHERE id = 1",
            [],
        )
        .await;
        match stored {
            Ok(Some(version)) if version > router.map().version => match read_map(&router).await {
                Ok(map) => router.install(map),
                Err(error) => tracing::warn!(%error, "cannot reload the shard map"),
            },
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cannot read the shard map's version"),
        }
    }
}
