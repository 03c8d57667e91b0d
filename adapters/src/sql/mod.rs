//! The SQL adapter: one implementation of the storage ports over sea-orm, for SQLite and
//! PostgreSQL. Every call goes through the [`ShardRouter`]: messages by conversation id,
//! accounts, sessions and inboxes by user id, handle claims by handle. No query joins across
//! those groups, so spreading shards over several databases is configuration.
//!
//! Writes on the send path are grouped: every append goes through one writer task per
//! database ([`group_commit`]) that commits many in one transaction, and delivery applies a
//! whole relay batch to the inboxes with one transaction per user shard (`inbox_batch`).
//! Storage only stores: what an append delivered inline comes back to its caller, which
//! pushes it live.

mod accounts;
mod append_batch;
mod backup;
mod bulk;
mod conversations;
mod entities;
mod errors;
mod feed;
mod fence;
pub mod group_commit;
mod inbox;
mod inbox_batch;
mod outbox;
mod replicas;
mod router;
mod shard_map;
mod shard_move;

use std::path::PathBuf;
use std::sync::Arc;

pub use append_batch::PHASE_SECONDS as GROUP_COMMIT_PHASE_SECONDS;
pub use backup::{BackupSummary, backup_sqlite};
/// The multi-row keyed UPDATE the send path writes with, public so the bench's raw-insert
/// baseline pays for the very same statements.
pub use bulk::update_by_key;
pub use feed::FeedKind;
pub use group_commit::GroupCommitOptions;
pub use router::server_connect_options;
pub use router::{Route, Shard, ShardMap, ShardRouter, logical_shard};
pub use shard_move::{MoveOptions, MoveReport, MoveStep, PhysicalStatus, ShardStatus, plan_even};

/// Which database to connect to.
#[derive(Debug, Clone)]
pub enum SqlBackend {
    /// One SQLite file in WAL mode: one writer connection, a pool of readers.
    Sqlite {
        path: PathBuf,
        /// `synchronous=FULL` (fsync every commit) when true, `NORMAL` otherwise.
        synchronous_full: bool,
        read_connections: u32,
    },
    /// PostgreSQL: one or more physical shards, each a primary with its streaming read
    /// replicas. Their order is their identity: shard `i` of the list is physical shard `i`.
    Postgres {
        shards: Vec<PostgresShard>,
        /// Pool size per database (each primary and each replica).
        max_connections: u32,
        /// A replica further behind the primary than this leaves the rotation.
        max_replica_lag_bytes: u64,
        /// How often replicas are measured.
        replica_check_interval: std::time::Duration,
    },
}

/// One physical PostgreSQL shard.
#[derive(Debug, Clone)]
pub struct PostgresShard {
    /// The primary.
    pub url: String,
    /// Replica URLs; reads go to one that has replayed the reader's key's last write.
    pub replicas: Vec<String>,
}

/// How to build the storage.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    pub backend: SqlBackend,
    /// Fixed number of logical shards keys hash to.
    pub logical_shards: u32,
    /// How often the shard map's version is checked (PostgreSQL), so a process learns of a
    /// move without first being refused by the shard's old owner.
    pub shard_map_refresh: std::time::Duration,
}

impl SqlOptions {
    /// One SQLite file (`synchronous` FULL when `synchronous_full`), four readers, 1024
    /// logical shards: for tools and tests.
    pub fn sqlite(path: &std::path::Path, synchronous_full: bool) -> Self {
        Self {
            backend: SqlBackend::Sqlite {
                path: path.to_owned(),
                synchronous_full,
                read_connections: 4,
            },
            logical_shards: 1024,
            shard_map_refresh: std::time::Duration::from_secs(1),
        }
    }

    /// One PostgreSQL database, no replicas, defaults elsewhere: for tools and tests.
    pub fn postgres(url: &str) -> Self {
        Self::postgres_shards(&[url])
    }

    /// PostgreSQL shards without replicas, in this order, defaults elsewhere.
    pub fn postgres_shards(urls: &[&str]) -> Self {
        Self {
            backend: SqlBackend::Postgres {
                shards: urls
                    .iter()
                    .map(|url| PostgresShard {
                        url: (*url).to_owned(),
                        replicas: Vec::new(),
                    })
                    .collect(),
                max_connections: 16,
                max_replica_lag_bytes: 16 * 1024 * 1024,
                replica_check_interval: std::time::Duration::from_secs(1),
            },
            logical_shards: 1024,
            shard_map_refresh: std::time::Duration::from_secs(1),
        }
    }
}

/// Accounts, conversations, inboxes and outboxes in SQL. Cheap to clone.
#[derive(Clone)]
pub struct SqlStorage {
    router: Arc<ShardRouter>,
    outbox_signal: Arc<tokio::sync::Notify>,
    /// One group-commit writer per shard, by shard index.
    group_commit: Arc<[group_commit::GroupCommitter]>,
    /// The outbox shards this process's relay has claimed (PostgreSQL).
    relay_claims: Arc<outbox::RelayClaims>,
    /// How often the shard map's version is checked.
    map_refresh: std::time::Duration,
}

impl SqlStorage {
    /// Connects to every shard's database, with group commit on its default settings (no
    /// inline delivery).
    ///
    /// # Errors
    /// When a database cannot be opened or reached.
    pub async fn connect(options: SqlOptions) -> anyhow::Result<Self> {
        Self::connect_with(options, GroupCommitOptions::default()).await
    }

    /// Connects to every shard's database and starts its group-commit writer tasks (on the
    /// current Tokio runtime).
    ///
    /// # Errors
    /// When a database cannot be opened or reached.
    pub async fn connect_with(
        options: SqlOptions,
        group_commit: GroupCommitOptions,
    ) -> anyhow::Result<Self> {
        let router = Arc::new(ShardRouter::connect(&options).await?);
        let outbox_signal = Arc::new(tokio::sync::Notify::new());
        let writers = (0..router.shards().len())
            .map(|shard| {
                group_commit::GroupCommitter::start(
                    router.clone(),
                    shard,
                    outbox_signal.clone(),
                    group_commit,
                )
            })
            .collect();
        Ok(Self {
            router,
            outbox_signal,
            group_commit: writers,
            relay_claims: Arc::default(),
            map_refresh: options.shard_map_refresh,
        })
    }

    /// Applies pending migrations on every physical shard, then sets up and loads the shard
    /// map ([`SqlStorage::prepare_shard_map`]).
    ///
    /// # Errors
    /// When a migration fails (the message names it and the shard), or the shard map does not
    /// match the configuration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        for shard in self.router.shards() {
            <duet_migrations::Migrator as duet_migrations::MigratorTrait>::up(&shard.writer, None)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "migrating physical shard {} ({}): {e}",
                        shard.index,
                        shard.name
                    )
                })?;
        }
        self.prepare_shard_map().await
    }

    /// The routing of keys to databases.
    pub fn router(&self) -> &ShardRouter {
        &self.router
    }

    /// Checks every shard answers a trivial query.
    ///
    /// # Errors
    /// `Unavailable` when one does not.
    pub async fn ping(&self) -> Result<(), duet_domain::StoreError> {
        for shard in self.router.shards() {
            shard.writer.ping().await.map_err(errors::from_db)?;
        }
        Ok(())
    }

    /// Closes every connection pool (so a SQLite file can be reopened at once).
    pub async fn close(&self) {
        self.release_claims().await;
        self.router.stop();
        for shard in self.router.shards() {
            let _ = shard.writer.clone().close().await;
            let _ = shard.reader.clone().close().await;
            for replica in shard.replica_connections() {
                let _ = replica.close().await;
            }
        }
    }
}
