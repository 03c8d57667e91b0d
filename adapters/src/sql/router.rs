use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use duet_domain::accounts::Handle;
use duet_domain::{ConversationId, UserId};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use tokio::task::JoinHandle;

use super::replicas::{self, Replica, ReplicaSet};
use super::{PostgresShard, SqlBackend, SqlOptions};

/// One physical database: a connection for writes and one for reads (the same pool on
/// PostgreSQL; on SQLite a single writer connection beside a reader pool, so writers never
/// contend for the file lock), plus any read replicas.
#[derive(Clone)]
pub struct Shard {
    pub index: usize,
    /// `host:port/db` or the SQLite file, for logs and `duet shards status`.
    pub name: String,
    pub writer: DatabaseConnection,
    pub reader: DatabaseConnection,
    replicas: Option<Arc<ReplicaSet>>,
}

impl Shard {
    /// Runs a read of the keys in `slots` on a replica that has replayed this process's
    /// writes to them, else on the primary (or SQLite's reader pool). A replica that fails
    /// the read is skipped and the primary answers.
    pub async fn read<T, F, Fut>(&self, slots: &[usize], query: F) -> Result<T, DbErr>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        if let Some(set) = &self.replicas {
            if let Some(replica) = set.pick(slots) {
                match query(replica.db.clone()).await {
                    Ok(value) => {
                        metrics::counter!("duet_db_reads_total", "target" => "replica")
                            .increment(1);
                        return Ok(value);
                    }
                    Err(error) => {
                        tracing::warn!(replica = %replica.name, %error, "replica read failed; using the primary");
                        if matches!(error, DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) {
                            replica.set_unhealthy();
                        }
                    }
                }
            }
            metrics::counter!("duet_db_reads_total", "target" => "primary").increment(1);
        }
        query(self.reader.clone()).await
    }

    /// Connections to this shard's replicas.
    pub fn replica_connections(&self) -> Vec<DatabaseConnection> {
        self.replicas
            .iter()
            .flat_map(|set| set.replicas.iter().map(|r| r.db.clone()))
            .collect()
    }

    /// Runs a read on the primary whatever the write marks say, counted as a primary read
    /// when there are replicas.
    pub async fn read_primary<T, Fut>(&self, query: Fut) -> Result<T, DbErr>
    where
        Fut: Future<Output = Result<T, DbErr>>,
    {
        if self.replicas.is_some() {
            metrics::counter!("duet_db_reads_total", "target" => "primary").increment(1);
        }
        query.await
    }

    /// [`Shard::wrote`] for every slot a batch wrote, reading the primary's position once.
    pub async fn wrote_all(&self, slots: impl IntoIterator<Item = usize>) {
        if let Some(set) = &self.replicas
            && let Err(error) = set.mark_written_all(&self.writer, slots).await
        {
            tracing::warn!(%error, "cannot read the primary's WAL position");
        }
    }

    /// Records, after a commit, that the key in `slot` was written: its reads stay on the
    /// primary until a replica has replayed this far. A no-op without replicas.
    pub async fn wrote(&self, slot: usize) {
        if let Some(set) = &self.replicas
            && let Err(error) = set.mark_written(&self.writer, slot).await
        {
            tracing::warn!(%error, "cannot read the primary's WAL position");
        }
    }
}

/// A key's place: its physical shard, its logical shard (what the owning database fences
/// on) and its write-mark slot there.
pub struct Route<'a> {
    pub shard: &'a Shard,
    pub logical: u32,
    pub slot: usize,
}

impl Route<'_> {
    pub fn writer(&self) -> &DatabaseConnection {
        &self.shard.writer
    }

    /// See [`Shard::read`].
    pub async fn read<T, F, Fut>(&self, query: F) -> Result<T, DbErr>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        self.shard.read(&[self.slot], query).await
    }

    /// Like [`Route::read`] for a lookup that may find nothing: a miss on a replica is
    /// asked again of the primary, because the row may be newer than the replica (written
    /// through another process, whose write marks this one cannot see). Hits stay on the
    /// replica; only "not found" pays for certainty.
    pub async fn find<T, F, Fut>(&self, query: F) -> Result<Option<T>, DbErr>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<Option<T>, DbErr>>,
    {
        match self.read(&query).await? {
            Some(found) => Ok(Some(found)),
            None if self.shard.replicas.is_some() => query(self.shard.writer.clone()).await,
            None => Ok(None),
        }
    }

    /// See [`Shard::wrote`].
    pub async fn wrote(&self) {
        self.shard.wrote(self.slot).await;
    }
}

/// Maps keys to physical shards through a fixed number of logical shards and the shard map
/// (which physical shard owns each logical one), so growing moves whole logical shards and
/// never rehashes a key. The map is data kept in the databases ([`super::shard_map`]); this
/// process holds a copy, reloaded when its version changes or a database refuses a write
/// because it no longer owns the key.
pub struct ShardRouter {
    shards: Vec<Shard>,
    logical_shards: u32,
    map: RwLock<Arc<ShardMap>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ShardRouter {
    pub(super) async fn connect(options: &SqlOptions) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let shards = match &options.backend {
            SqlBackend::Sqlite {
                path,
                synchronous_full,
                read_connections,
            } => vec![connect_sqlite(path, *synchronous_full, *read_connections).await?],
            SqlBackend::Postgres {
                shards: configured,
                max_connections,
                max_replica_lag_bytes,
                replica_check_interval,
            } => {
                anyhow::ensure!(!configured.is_empty(), "no PostgreSQL shard is configured");
                let mut shards = Vec::with_capacity(configured.len());
                let mut watched = Vec::new();
                for (index, config) in configured.iter().enumerate() {
                    let shard =
                        connect_postgres(index, config, *max_connections, *max_replica_lag_bytes)
                            .await?;
                    if let Some(set) = &shard.replicas {
                        watched.push((shard.writer.clone(), set.clone()));
                    }
                    shards.push(shard);
                }
                if !watched.is_empty() {
                    tasks.push(tokio::spawn(replicas::watch(
                        watched,
                        *replica_check_interval,
                    )));
                }
                shards
            }
        };
        let logical_shards = options.logical_shards.max(1);
        let map = ShardMap::contiguous(logical_shards, shards.len());
        Ok(Self {
            shards,
            logical_shards,
            map: RwLock::new(Arc::new(map)),
            tasks: Mutex::new(tasks),
        })
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    pub fn shard(&self, index: usize) -> &Shard {
        &self.shards[index % self.shards.len()]
    }

    /// The fixed number of logical shards keys hash to.
    pub fn logical_shards(&self) -> u32 {
        self.logical_shards
    }

    /// This process's copy of the shard map.
    pub fn map(&self) -> Arc<ShardMap> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the map when `map` is newer than the one held.
    pub(super) fn install(&self, map: ShardMap) {
        let mut held = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.version > held.version {
            tracing::info!(version = map.version, "shard map loaded");
            *held = Arc::new(map);
        }
    }

    /// Runs `task` until [`ShardRouter::stop`].
    pub(super) fn keep(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Stops watching replicas and the shard map.
    pub fn stop(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    /// Where a user's account, sessions, inbox and feed live.
    pub fn for_user(&self, id: UserId) -> Route<'_> {
        self.by_key(id.0.as_bytes())
    }

    /// Where a conversation, its messages and its outbox events live.
    pub fn for_conversation(&self, id: ConversationId) -> Route<'_> {
        self.by_key(id.0.as_bytes())
    }

    /// Where a handle's claim lives.
    pub fn for_handle(&self, handle: &Handle) -> Route<'_> {
        self.by_key(handle.as_str().as_bytes())
    }

    fn by_key(&self, key: &[u8]) -> Route<'_> {
        let hash = fnv1a(key);
        let logical = logical_of(hash, self.logical_shards);
        let physical = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .owner(logical);
        Route {
            shard: self.shard(physical),
            logical,
            slot: ReplicaSet::slot(hash),
        }
    }
}

/// The logical shard of a key hash.
fn logical_of(hash: u64, logical_shards: u32) -> u32 {
    // The remainder is below `logical_shards`, a u32.
    u32::try_from(hash % u64::from(logical_shards)).unwrap_or(0)
}

/// The logical shard of a user id, conversation id (its 16 bytes) or handle (its text).
pub fn logical_shard(key: &[u8], logical_shards: u32) -> u32 {
    logical_of(fnv1a(key), logical_shards.max(1))
}

/// Which physical shard owns each logical shard, and the map's version (0 before the map
/// was read from the databases: then it is the even split a new cluster starts with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    pub version: i64,
    owners: Vec<usize>,
}

impl ShardMap {
    /// Contiguous, even ranges of logical shards per physical shard: a new cluster's map.
    pub fn contiguous(logical_shards: u32, physical: usize) -> Self {
        let owners = (0..u64::from(logical_shards))
            .map(|logical| {
                let owner = logical * physical as u64 / u64::from(logical_shards);
                usize::try_from(owner).unwrap_or(0)
            })
            .collect();
        Self { version: 0, owners }
    }

    /// A map read from the directory: `owners[logical]` is the owner of each.
    pub fn new(version: i64, owners: Vec<usize>) -> Self {
        Self { version, owners }
    }

    /// The physical shard owning `logical`.
    pub fn owner(&self, logical: u32) -> usize {
        self.owners.get(logical as usize).copied().unwrap_or(0)
    }

    /// Every logical shard with its owner.
    pub fn owners(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        (0u32..).zip(self.owners.iter().copied())
    }
}

/// Prepared statements kept per connection. sqlx's default (100) is too few once batches
/// add statement shapes (multi-row inserts, IN lists of varying length): evicted statements
/// are prepared again, a round trip each on PostgreSQL.
const STATEMENT_CACHE: usize = 1024;

/// Rows a SQLite connection's thread may hand over before it waits for the caller to take
/// them. sqlx's default (50) makes a batch's 200-row reads ping-pong between that thread
/// and the runtime every 50 rows.
const ROW_BUFFER: usize = 1024;

/// A pooled connection idle this long is pinged before it is handed out; a busier one is not.
/// sqlx's default pings on every acquire, a round trip to the database (on SQLite, to the
/// connection's thread) before each transaction or query, on top of the ping it already
/// makes when the connection is returned. A connection that broke while in use fails that
/// return ping and is closed then.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

fn postgres_options(url: &str, max_connections: u32, lazy: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(if lazy { 0 } else { 1 })
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(if lazy { 2 } else { 5 }))
        .connect_lazy(lazy)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
    opts
}

/// A database URL without its credentials, fit for logs and metric labels.
pub fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .to_owned()
}

/// FNV-1a: stable across versions and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// WAL pages (4 KiB) after which a commit also checkpoints the WAL into the database file.
/// SQLite's default (1000) makes the single writer stop for a checkpoint every few hundred
/// batches under load; a hot page written many times is copied back once per checkpoint, so
/// rarer checkpoints copy fewer pages in all (measured +10 % messages/s with `duet-bench run`).
/// The WAL grows to about 40 MiB before it is reset.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The page cache of a SQLite writer connection, in KiB (SQLite's default is 2,000). One
/// group-commit batch of ~140 sends dirties ~800 pages (3 MiB): with the default cache the
/// writer spills and re-reads pages within a batch. 64 MiB measured +8 % messages/s with
/// `duet-bench run` (SQLite FULL, 256 senders; 16 MiB did as well there, the larger size is for
/// databases with more users). It is a ceiling: pages are cached as they are used.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Which side of a SQLite database a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqliteRole {
    /// The one writer connection: a large page cache.
    Writer,
    /// Readers: SQLite's default cache each.
    Reader,
}

/// How every SQLite connection is opened: WAL, `synchronous` FULL or NORMAL, a busy timeout,
/// foreign keys, the statement cache, rarer WAL checkpoints, statement journals and temp
/// tables in memory (SQLite's default is a temp file, written on every multi-row statement in
/// a transaction), and for a writer a larger page cache.
pub(crate) fn sqlite_options(
    url: &str,
    connections: u32,
    synchronous_full: bool,
    role: SqliteRole,
) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            let o = o
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if synchronous_full {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .statement_cache_capacity(STATEMENT_CACHE)
                .row_buffer_size(ROW_BUFFER)
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
                .pragma("temp_store", "memory");
            match role {
                SqliteRole::Writer => o.pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
                SqliteRole::Reader => o,
            }
        });
    opts
}

/// The options the server opens a database with, for tools that must use it exactly as the
/// server does (`duet-bench`'s raw-insert baseline): a `sqlite:` URL as the server's one
/// writer connection (WAL, `synchronous` FULL or NORMAL, the same pragmas and page cache),
/// any other URL as the server's PostgreSQL pool of `connections`.
pub fn server_connect_options(
    url: &str,
    connections: u32,
    synchronous_full: bool,
) -> ConnectOptions {
    if url.starts_with("sqlite:") {
        sqlite_options(url, 1, synchronous_full, SqliteRole::Writer)
    } else {
        postgres_options(url, connections, false)
    }
}

/// Connects to one PostgreSQL shard: its primary (at once) and its replicas (lazily: a
/// replica that is down at start-up joins when it comes up).
async fn connect_postgres(
    index: usize,
    config: &PostgresShard,
    max_connections: u32,
    max_replica_lag_bytes: u64,
) -> anyhow::Result<Shard> {
    let db = Database::connect(postgres_options(&config.url, max_connections, false))
        .await
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL shard {index} ({})",
                redact(&config.url)
            )
        })?;
    let replicas = if config.replicas.is_empty() {
        None
    } else {
        let mut members = Vec::new();
        for url in &config.replicas {
            let replica = Database::connect(postgres_options(url, max_connections, true))
                .await
                .with_context(|| format!("bad replica URL {}", redact(url)))?;
            members.push(Arc::new(Replica::new(redact(url), replica)));
        }
        let set = Arc::new(ReplicaSet::new(members, max_replica_lag_bytes));
        set.set_floor(&db)
            .await
            .context("reading the primary's WAL position")?;
        set.check(&db).await;
        Some(set)
    };
    Ok(Shard {
        index,
        name: redact(&config.url),
        writer: db.clone(),
        reader: db,
        replicas,
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
    let open = |connections: u32, role| sqlite_options(&url, connections, synchronous_full, role);
    let writer = Database::connect(open(1, SqliteRole::Writer))
        .await
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    let reader = Database::connect(open(read_connections.max(1), SqliteRole::Reader)).await?;
    Ok(Shard {
        index: 0,
        name: path.display().to_string(),
        writer,
        reader,
        replicas: None,
    })
}

#[cfg(test)]
mod tests {
    use super::{fnv1a, redact};

    #[test]
    fn redacted_urls_keep_host_and_database_only() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1:5433/db"),
            "127.0.0.1:5433/db"
        );
        assert_eq!(redact("postgres://127.0.0.1/db"), "127.0.0.1/db");
    }

    #[test]
    fn the_shard_hash_is_stable_fnv1a() {
        // Reference value of 64-bit FNV-1a; changing the hash would move every key.
        assert_eq!(fnv1a(b"duet"), 0x1ce4_7266_f551_c193);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
