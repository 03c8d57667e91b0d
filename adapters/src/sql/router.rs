use std::time::Duration;

use anyhow::Context;
use duet_domain::accounts::Handle;
use duet_domain::{ConversationId, UserId};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::{SqlBackend, SqlOptions};

/// One physical database: a connection for writes and one for reads (the same pool on
/// PostgreSQL; on SQLite a single writer connection beside a reader pool, so writers never
/// contend for the file lock).
#[derive(Clone)]
pub struct Shard {
    pub index: usize,
    pub writer: DatabaseConnection,
    pub reader: DatabaseConnection,
}

/// Maps keys to shards through a fixed number of logical shards, so moving data between
/// databases later moves whole logical shards and never rehashes a key.
pub struct ShardRouter {
    shards: Vec<Shard>,
    logical_shards: u32,
}

impl ShardRouter {
    pub(super) async fn connect(options: &SqlOptions) -> anyhow::Result<Self> {
        let shard = match &options.backend {
            SqlBackend::Sqlite {
                path,
                synchronous_full,
                read_connections,
            } => connect_sqlite(path, *synchronous_full, *read_connections).await?,
            SqlBackend::Postgres {
                url,
                max_connections,
            } => {
                let mut opts = ConnectOptions::new(url.clone());
                opts.max_connections(*max_connections)
                    .min_connections(1)
                    .connect_timeout(Duration::from_secs(5))
                    .acquire_timeout(Duration::from_secs(5))
                    .sqlx_logging(false);
                let db = Database::connect(opts)
                    .await
                    .context("cannot connect to PostgreSQL (storage.postgres.url)")?;
                Shard {
                    index: 0,
                    writer: db.clone(),
                    reader: db,
                }
            }
        };
        Ok(Self {
            shards: vec![shard],
            logical_shards: options.logical_shards.max(1),
        })
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    pub fn shard(&self, index: usize) -> &Shard {
        &self.shards[index % self.shards.len()]
    }

    /// The shard holding a user's account, sessions, inbox and feed.
    pub fn for_user(&self, id: UserId) -> &Shard {
        self.by_key(id.0.as_bytes())
    }

    /// The shard holding a conversation, its messages and its outbox events.
    pub fn for_conversation(&self, id: ConversationId) -> &Shard {
        self.by_key(id.0.as_bytes())
    }

    /// The shard holding a handle's claim.
    pub fn for_handle(&self, handle: &Handle) -> &Shard {
        self.by_key(handle.as_str().as_bytes())
    }

    fn by_key(&self, key: &[u8]) -> &Shard {
        let logical = fnv1a(key) % u64::from(self.logical_shards);
        // Contiguous ranges of logical shards per physical shard.
        let physical = logical * self.shards.len() as u64 / u64::from(self.logical_shards);
        &self.shards[physical as usize]
    }
}

/// FNV-1a: stable across versions and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn connect_sqlite(
    path: &std::path::Path,
    synchronous_full: bool,
    read_connections: u32,
) -> anyhow::Result<Shard> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let open = |connections: u32| {
        let mut opts = ConnectOptions::new(url.clone());
        opts.max_connections(connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(if synchronous_full {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    })
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        opts
    };
    let writer = Database::connect(open(1))
        .await
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    let reader = Database::connect(open(read_connections.max(1))).await?;
    Ok(Shard {
        index: 0,
        writer,
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn the_shard_hash_is_stable_fnv1a() {
        // Reference value of 64-bit FNV-1a; changing the hash would move every key.
        assert_eq!(fnv1a(b"duet"), 0x1ce4_7266_f551_c193);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
