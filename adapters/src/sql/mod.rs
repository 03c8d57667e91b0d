//! The SQL adapter: one implementation of the storage ports over sea-orm, for SQLite and
//! PostgreSQL. Every call goes through the [`ShardRouter`]: messages by conversation id,
//! accounts, sessions and inboxes by user id, handle claims by handle. No query joins across
//! those groups, so spreading shards over several databases is configuration.

mod accounts;
pub mod baseline;
mod conversations;
mod entities;
mod errors;
mod inbox;
mod outbox;
mod replicas;
mod router;

use std::path::PathBuf;
use std::sync::Arc;

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
}

impl SqlStorage {
    /// Connects to every shard's database.
    ///
    /// # Errors
    /// When a database cannot be opened or reached.
    pub async fn connect(options: SqlOptions) -> anyhow::Result<Self> {
        let router = ShardRouter::connect(&options).await?;
        Ok(Self {
            router: Arc::new(router),
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
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
