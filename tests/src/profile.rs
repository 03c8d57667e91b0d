//! Storage profiles. The suite runs unchanged against each; `DUET_TEST_PROFILE` picks one
//! (default `sqlite`). A profile is one line: its name and the settings it overrides, where
//! `{db}` stands for the test's own database, which [`TestDatabase::create`] makes fresh for
//! every test: a file in a temporary folder, or a new PostgreSQL database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::{brokers, postgres};

/// Every profile the suite knows: name → settings overrides, one line each. The replica is
/// measured every 100 ms (not every second) so that the suite's reads reach it soon after
/// the writes they depend on.
#[rustfmt::skip]
pub const PROFILES: &[(&str, &[(&str, &str)])] = &[
    ("sqlite",           &[("storage.kind", "sqlite"), ("storage.sqlite.path", "{db}")]),
    ("postgres",         &[("storage.kind", "postgres"), ("storage.postgres.url", PRIMARY)]),
    ("postgres-replica", &[("storage.kind", "postgres"), ("storage.postgres.url", PRIMARY), ("storage.postgres.replicas", REPLICA), (CHECK_MS, "100")]),
    ("sharded",          &[("storage.kind", "postgres"), ("storage.postgres.shards", SHARDS)]),
    ("medium",           &[("storage.kind", "postgres"), ("storage.postgres.url", PRIMARY), ("delivery.kind", "nats"), ("delivery.nats.url", NATS), ("delivery.nats.stream", "{db}"), ("delivery.nats.subject_prefix", "{db}"), ("delivery.nats.consumer", "{db}"), ("cache.kind", "redis"), ("cache.redis.url", REDIS), ("cache.redis.key_prefix", "{db}")]),
];

const PRIMARY: &str = "postgres://postgres@127.0.0.1:5432/{db}";
/// Four physical shards on two servers: the local one and `scripts/pg-second.sh`'s.
const SHARDS: &str = "postgres://postgres@127.0.0.1:5432/{db},postgres://postgres@127.0.0.1:5434/{db},\
                      postgres://postgres@127.0.0.1:5432/{db}_b,postgres://postgres@127.0.0.1:5434/{db}_b";
const REPLICA: &str = "postgres://postgres@127.0.0.1:5433/{db}";
const NATS: &str = "nats://127.0.0.1:4222";
const REDIS: &str = "redis://127.0.0.1:6379";
const CHECK_MS: &str = "storage.postgres.replica_check_interval_ms";

/// How long a new database may take to appear on a replica.
const REPLICA_VISIBLE: Duration = Duration::from_secs(10);

/// The profile named by `DUET_TEST_PROFILE`, `sqlite` when unset.
pub fn current_profile() -> &'static str {
    let name = std::env::var("DUET_TEST_PROFILE").unwrap_or_default();
    let name = if name.is_empty() { "sqlite" } else { &name };
    profile(name).0
}

/// The profile called `name`; panics listing the known ones.
pub fn profile(name: &str) -> (&'static str, &'static [(&'static str, &'static str)]) {
    *PROFILES
        .iter()
        .find(|(known, _)| *known == name)
        .unwrap_or_else(|| {
            let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
            panic!("unknown DUET_TEST_PROFILE {name:?}; known profiles: {known:?}")
        })
}

/// The last value given for `key` (later settings win, as in `Settings::load`).
pub fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One test's database, shared by every app started on it (restarts included) and removed
/// when the last of them is gone.
pub enum TestDatabase {
    Sqlite { path: String, _dir: TempDir },
    Postgres(PostgresDatabase),
}

impl TestDatabase {
    /// A fresh database for `settings` (a profile's, then the test's overrides). On
    /// PostgreSQL it also waits until every configured replica shows the new database.
    ///
    /// # Panics
    /// When PostgreSQL or a replica is unreachable, naming the server and what to do.
    pub async fn create(settings: &[(String, String)]) -> Arc<Self> {
        if setting(settings, "storage.kind") != Some("postgres") {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let path = dir.path().join("duet.db");
            let path = path.to_str().expect("a UTF-8 temporary path").to_owned();
            return Arc::new(Self::Sqlite { path, _dir: dir });
        }
        let name = next_name();
        let mut databases = Vec::new();
        for url in postgres_urls(settings) {
            let (server, database) = url.rsplit_once('/').expect("a database URL has a path");
            let maintenance_url = format!("{server}/postgres");
            let database = database.replace("{db}", &name);
            postgres::create_database(&maintenance_url, &database).await;
            databases.push((maintenance_url, database));
        }
        let database = Arc::new(Self::Postgres(PostgresDatabase {
            name: name.clone(),
            databases,
            nats_url: (setting(settings, "delivery.kind") == Some("nats"))
                .then(|| setting(settings, "delivery.nats.url"))
                .flatten()
                .map(str::to_owned),
            redis_url: (setting(settings, "cache.kind") == Some("redis"))
                .then(|| setting(settings, "cache.redis.url"))
                .flatten()
                .map(str::to_owned),
        }));
        for replica in setting(settings, "storage.postgres.replicas")
            .into_iter()
            .flat_map(|list| list.split(','))
            .filter(|url| !url.trim().is_empty())
        {
            let replica = replica.trim().replace("{db}", "postgres");
            postgres::wait_until_visible(&replica, &name, REPLICA_VISIBLE).await;
        }
        database
    }

    /// What `{db}` stands for: the SQLite file path or the PostgreSQL database name.
    pub fn name(&self) -> &str {
        match self {
            Self::Sqlite { path, .. } => path,
            Self::Postgres(database) => &database.name,
        }
    }

    /// `settings` with `{db}` replaced by this database.
    pub fn resolve(&self, settings: &[(String, String)]) -> Vec<(String, String)> {
        settings
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{db}", self.name())))
            .collect()
    }
}

/// The primary URLs of every physical shard `settings` name (`storage.postgres.url`, or
/// each of `storage.postgres.shards`), with `{db}` still in them.
pub fn postgres_urls(settings: &[(String, String)]) -> Vec<String> {
    match setting(settings, "storage.postgres.shards") {
        Some(list) if !list.trim().is_empty() => list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => vec![
            setting(settings, "storage.postgres.url")
                .expect("a postgres profile sets storage.postgres.url or storage.postgres.shards")
                .to_owned(),
        ],
    }
}

/// A database `duet_t_<run>_<pid>_<n>` on a PostgreSQL server (one per physical shard, named
/// from it), dropped on drop, with the NATS stream and Redis keys of the same name when the
/// profile uses them.
pub struct PostgresDatabase {
    name: String,
    /// (maintenance URL of its server, database name) of each physical shard.
    databases: Vec<(String, String)>,
    nats_url: Option<String>,
    redis_url: Option<String>,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // `scripts/test.sh` drops whatever a killed test leaves behind; this keeps a long
        // run from filling the disk with one database per test.
        for (maintenance_url, name) in &self.databases {
            postgres::drop_database_blocking(maintenance_url, name);
        }
        if let Some(url) = &self.nats_url {
            brokers::delete_stream_blocking(url, &self.name);
        }
        if let Some(url) = &self.redis_url {
            brokers::delete_keys_blocking(url, &self.name);
        }
    }
}

/// `duet_t_<run>_<pid>_<n>`. `<run>` is `DUET_TEST_RUN` (default: this process's start
/// time), so a run can drop everything it made by prefix; pid and counter keep apart the
/// test binaries of one run and the child process the metrics test starts.
fn next_name() -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.get_or_init(|| {
        let given: String = std::env::var("DUET_TEST_RUN")
            .unwrap_or_default()
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        if given.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("the clock is after 1970");
            now.as_secs().to_string()
        } else {
            given
        }
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("duet_t_{run}_{}_{n}", std::process::id())
}

/// The settings of the profile called `name`, then `overrides`, as owned pairs.
pub fn profile_settings(
    name: &str,
    overrides: &[(&str, &str)],
) -> (&'static str, Vec<(String, String)>) {
    let (name, settings) = profile(name);
    let all = settings
        .iter()
        .chain(overrides)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (name, all)
}
