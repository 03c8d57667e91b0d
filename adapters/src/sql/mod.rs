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
pub mod group_commit;
mod inbox;
mod inbox_batch;
mod outbox;
mod replicas;
mod router;

use std::path::PathBuf;
use std::sync::Arc;

pub use append_batch::PHASE_SECONDS as GROUP_COMMIT_PHASE_SECONDS;
pub use backup::{BackupSummary, backup_sqlite};
/// The multi-row keyed UPDATE the send path writes with, public so the bench's raw-insert
/// baseline pays for the very same statements.
pub use bulk::update_by_key;
pub use group_commit::GroupCommitOptions;
pub use router::server_connect_options;
pub use router::{Route, Shard, ShardRouter};

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
    /// One PostgreSQL primary and its streaming read replicas.
    Postgres {
        url: String,
        max_connections: u32,
        /// Replica URLs; reads go to one that has replayed the reader's key's last write.
        replicas: Vec<String>,
        /// A replica further behind the primary than this leaves the rotation.
        max_replica_lag_bytes: u64,
        /// How often replicas are measured.
        replica_check_interval: std::time::Duration,
    },
}

/// How to build the storage.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    pub backend: SqlBackend,
    /// Fixed number of logical shards keys hash to.
    pub logical_shards: u32,
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
        })
    }

    /// Applies pending migrations on every shard.
    ///
    /// # Errors
    /// When a migration fails; the message names it.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        for shard in self.router.shards() {
            <duet_migrations::Migrator as duet_migrations::MigratorTrait>::up(&shard.writer, None)
                .await?;
        }
        Ok(())
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
