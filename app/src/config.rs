//! Layered settings: built-in defaults (`config/default.toml`, compiled in) → a profile
//! (`--config PATH`, or `DUET_PROFILE=NAME`: the built-in `small`, `medium` and `large`, which a
//! `config/NAME.toml` file overrides; see [`Profile`]) → environment variables
//! `DUET__SECTION__KEY` (e.g. `DUET__SERVER__PORT=9000`). Unknown keys and unknown kinds fail
//! at start-up with a message naming them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Everything Duet can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub delivery: DeliverySettings,
    pub cache: CacheSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    pub telemetry: TelemetrySettings,
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Largest request body accepted; larger ones get 413 before they are read.
    pub max_body_bytes: usize,
    /// Largest WebSocket frame a client may send.
    pub ws_max_message_bytes: usize,
    /// How often an open WebSocket checks its session again; a logout or an expired token
    /// closes it (code 1008) at the next check.
    pub ws_session_check_secs: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Origins whose browser pages may call the API (CORS): a list, or one comma-separated
    /// string (handy in `DUET__SERVER__CORS_ORIGINS`), each `scheme://host[:port]` as the
    /// browser sends it, or `*` for every origin. Empty (the default): no CORS headers, so
    /// browsers allow only same-origin pages.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub cors_origins: Vec<String>,
}

/// Which database backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// One embedded SQLite file (the `small` profile).
    Sqlite,
    /// One PostgreSQL primary.
    Postgres,
}

/// Storage: the backend kind plus one sub-section per backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite` or `postgres`.
    pub kind: StorageKind,
    /// Fixed number of logical shards keys hash to; never change it on existing data.
    pub logical_shards: u32,
    /// Apply pending migrations when the server starts.
    pub migrate_on_start: bool,
    /// Used when `kind = "sqlite"`.
    pub sqlite: SqliteSettings,
    /// Used when `kind = "postgres"`.
    pub postgres: PostgresSettings,
    /// Gathering concurrent sends into one transaction per database.
    pub group_commit: GroupCommitSettings,
}

/// Group commit: concurrent appends share one transaction; each request is answered only
/// after that transaction commits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCommitSettings {
    /// Most messages in one transaction.
    pub max_batch: usize,
    /// Longest a message waits for others to join its transaction, in microseconds (the
    /// timer rounds up to whole milliseconds; 0 takes only what is already waiting).
    pub max_delay_us: u64,
    /// Writer tasks per PostgreSQL database, so one batch gathers while others commit
    /// (SQLite always has one writer).
    pub writers: usize,
}

/// SQLite durability for acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// fsync on every commit: an acknowledged message survives power loss.
    Full,
    /// fsync at checkpoints: survives a process crash, may lose the last commits on power loss.
    Normal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSettings {
    /// Database file; created (with its folder) if missing.
    pub path: PathBuf,
    /// `full` (default) or `normal`.
    pub synchronous: SqliteSynchronous,
    /// Size of the read pool; writes use one dedicated connection.
    pub read_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/db`: the one database of an unsharded cluster. Either this
    /// or `shards` is required when `kind = "postgres"`.
    pub url: Option<Secret>,
    /// Several physical shards, in a fixed order (shard `i` of the list is physical shard
    /// `i`: add new ones at the end, never reorder): tables with `url` and `replicas`, or one
    /// comma-separated string of primary URLs (handy in `DUET__STORAGE__POSTGRES__SHARDS`).
    /// Which logical shards each one owns is kept in the databases (`duet shards status`).
    #[serde(deserialize_with = "shard_list")]
    pub shards: Vec<PostgresShardSettings>,
    /// How often each process checks the shard map's version, in milliseconds; a move waits
    /// two of these before it deletes the old copy.
    pub shard_map_refresh_ms: u64,
    /// Pool size (per database: the primary and each replica).
    pub max_connections: u32,
    /// Streaming read replicas of the primary: a list, or one comma-separated string (handy
    /// in `DUET__STORAGE__POSTGRES__REPLICAS`). Reads go to a replica that has replayed the
    /// last write this process made to the same conversation or user; otherwise the primary.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub replicas: Vec<Secret>,
    /// A replica further behind the primary than this many WAL bytes leaves the rotation.
    pub max_replica_lag_bytes: u64,
    /// How often replicas are measured (lag, health).
    pub replica_check_interval_ms: u64,
}

/// One physical PostgreSQL shard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresShardSettings {
    /// Its primary.
    pub url: Secret,
    /// Its streaming read replicas (routed as `storage.postgres.replicas` is).
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub replicas: Vec<Secret>,
}

impl From<String> for PostgresShardSettings {
    fn from(url: String) -> Self {
        Self {
            url: Secret::from(url),
            replicas: Vec::new(),
        }
    }
}

/// Accepts a list of shard tables, a list of URLs, or `"url,url"`.
fn shard_list<'de, D>(deserializer: D) -> Result<Vec<PostgresShardSettings>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Table(PostgresShardSettings),
        Url(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<Item>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items
            .into_iter()
            .map(|item| match item {
                Item::Table(shard) => shard,
                Item::Url(url) => PostgresShardSettings::from(url.trim().to_owned()),
            })
            .collect(),
        ListOrString::String(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| PostgresShardSettings::from(url.to_owned()))
            .collect(),
    })
}

/// Accepts `["a", "b"]` or `"a,b"` (blank items dropped).
fn list_or_comma_separated<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(joined) => joined.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .map(T::from)
        .collect())
}

/// How durable events travel from the outbox to inboxes and devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// In-process queue and bus: one process only.
    Memory,
    /// NATS: JetStream carries durable events to one delivering process; core subjects
    /// carry live events to devices on every process.
    Nats,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// `memory` or `nats`.
    pub kind: DeliveryKind,
    /// With `memory`: write a message's two inboxes in its own transaction when they share
    /// its database, instead of an outbox row for the relay; the send then pushes it live.
    pub inline: bool,
    /// Outbox entries moved per relay step.
    pub relay_batch: u32,
    /// How often the relay looks for entries written by other processes.
    pub relay_poll_ms: u64,
    /// Failed hand-offs after which an outbox entry is set aside (in `outbox_dead_letters`,
    /// logged and counted) so it cannot hold up the entries behind it.
    pub relay_max_attempts: u32,
    /// Feed events older than this are pruned; clients behind that far get a resync answer.
    /// 0 keeps no history beyond the next prune (every stale cursor resyncs).
    pub feed_retention_days: u32,
    /// How often pruning runs.
    pub prune_interval_secs: u64,
    /// Sends are refused (503 with `Retry-After`) while the oldest event not yet delivered
    /// (in an outbox or the queue) is older than this; 0 never refuses.
    pub max_lag_ms: u64,
    /// How often that lag is measured.
    pub lag_check_ms: u64,
    /// Used when `kind = "nats"`.
    pub nats: NatsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// `nats://host:port`. The server starts even when NATS is down and reconnects forever.
    pub url: Secret,
    /// JetStream stream holding durable events until a process has delivered them.
    pub stream: String,
    /// Subjects are `PREFIX.events.*` (durable) and `PREFIX.live.USER` (live).
    pub subject_prefix: String,
    /// Name of the durable consumers (`NAME-PARTITION`) every process shares: each event
    /// goes to one of them.
    pub consumer: String,
    /// Conversations hash to this many partitions; a partition's events are applied one at a
    /// time, in order, by whichever process holds it next. The same on every process; never
    /// change it while events are pending.
    pub partitions: usize,
    /// An event not acknowledged within this long is delivered again.
    pub ack_wait_secs: u64,
    /// Partitions one process applies events of at once.
    pub max_in_flight: usize,
    /// How long a publish may wait for JetStream before the relay backs off.
    pub request_timeout_ms: u64,
}

/// Which cache to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    /// No cache: every read goes to the database.
    None,
    /// In process: history pages, presence, the send limit, and sessions with SQLite (the
    /// one process that can revoke them).
    Memory,
    /// Redis, shared by every process: sessions, history pages, presence, send limits.
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `none`, `memory` or `redis`.
    pub kind: CacheKind,
    /// Newest messages of a conversation kept cached (the latest page).
    pub history_messages: usize,
    /// Longest a session stays cached; a logout removes it at once.
    pub session_ttl_secs: u64,
    /// A user is shown offline this long after their last device stopped answering.
    pub presence_ttl_secs: u64,
    /// Used when `kind = "redis"`.
    pub redis: RedisSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`.
    pub url: Secret,
    /// Every key starts with this, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Longest wait for a pooled connection or one command; then the database answers.
    pub timeout_ms: u64,
    /// Consecutive failures that open the circuit breaker (Redis is skipped meanwhile).
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe.
    pub breaker_cooldown_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Messages one user may send per second, summed over every process (shared through
    /// Redis when `cache.kind = "redis"`). 0 turns the limit off.
    pub sends_per_second: u32,
    /// Messages a user may send at once above the steady rate.
    pub send_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of a session token.
    pub session_ttl_hours: u32,
    /// Login and registration attempts allowed per client address per minute.
    pub attempts_per_minute: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info,duet=debug`; `RUST_LOG` wins when set.
    pub log_level: String,
}

/// A string that never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The profiles built into the binary, so `DUET_PROFILE=medium duet serve` works wherever the
/// binary is, without the checkout's `config/` folder.
const BUILT_IN_PROFILES: &[(&str, &str)] = &[
    ("small", include_str!("../../config/small.toml")),
    ("medium", include_str!("../../config/medium.toml")),
    ("large", include_str!("../../config/large.toml")),
];

/// Where the profile layer comes from.
#[derive(Debug, Clone, Default)]
pub enum Profile {
    /// Only defaults and environment.
    #[default]
    None,
    /// `NAME.toml` in `DUET_CONFIG_DIR` when that is set (the file must exist there), else
    /// `config/NAME.toml` under the working directory if it exists, else the built-in profile
    /// of that name.
    Named(String),
    /// An explicit file.
    File(PathBuf),
}

/// The settings text of a profile layer, and where it came from (for error messages).
struct ProfileSource {
    origin: String,
    text: ProfileText,
}

enum ProfileText {
    File(PathBuf),
    BuiltIn(&'static str),
}

impl Profile {
    /// `--config` if given, else `DUET_PROFILE`, else none.
    pub fn from_cli_or_env(config: Option<PathBuf>) -> Self {
        match (config, std::env::var("DUET_PROFILE")) {
            (Some(path), _) => Self::File(path),
            (None, Ok(name)) if !name.is_empty() => Self::Named(name),
            _ => Self::None,
        }
    }

    /// The names of the profiles built into the binary.
    pub fn built_in() -> impl Iterator<Item = &'static str> {
        BUILT_IN_PROFILES.iter().map(|(name, _)| *name)
    }

    fn source(&self) -> anyhow::Result<Option<ProfileSource>> {
        let file = |path: PathBuf| -> anyhow::Result<Option<ProfileSource>> {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            Ok(Some(ProfileSource {
                origin: path.display().to_string(),
                text: ProfileText::File(path),
            }))
        };
        match self {
            Self::None => Ok(None),
            Self::File(path) => file(path.clone()),
            Self::Named(name) => {
                if let Some(dir) = std::env::var_os("DUET_CONFIG_DIR") {
                    return file(Path::new(&dir).join(format!("{name}.toml")));
                }
                let local = Path::new("config").join(format!("{name}.toml"));
                if local.exists() {
                    return file(local);
                }
                match BUILT_IN_PROFILES.iter().find(|(known, _)| known == name) {
                    Some((_, text)) => Ok(Some(ProfileSource {
                        origin: format!("built-in profile {name}"),
                        text: ProfileText::BuiltIn(text),
                    })),
                    None => anyhow::bail!(
                        "unknown profile {name:?}: the built-in ones are {}, or put {} in place",
                        Self::built_in().collect::<Vec<_>>().join(", "),
                        local.display()
                    ),
                }
            }
        }
    }
}

impl Settings {
    /// Loads defaults, the profile, the environment, then `overrides` (`("server.port", "0")`),
    /// and checks what serde cannot.
    ///
    /// # Errors
    /// A missing profile file, an unknown key or kind, a value of the wrong type, or a missing
    /// field the chosen backend requires; the message names it.
    pub fn load(profile: &Profile, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        let mut origin = None;
        if let Some(source) = profile.source()? {
            builder = match source.text {
                ProfileText::File(path) => builder.add_source(File::from(path)),
                ProfileText::BuiltIn(text) => {
                    builder.add_source(File::from_str(text, FileFormat::Toml))
                }
            };
            origin = Some(source.origin);
        }
        builder = builder.add_source(
            Environment::with_prefix("DUET")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value)?;
        }
        let settings: Self = builder
            .build()?
            .try_deserialize()
            .with_context(|| match &origin {
                Some(origin) => format!("invalid configuration (profile: {origin})"),
                None => "invalid configuration".to_owned(),
            })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.storage.kind == StorageKind::Postgres {
            let postgres = &self.storage.postgres;
            anyhow::ensure!(
                postgres.url.is_some() || !postgres.shards.is_empty(),
                "storage.postgres.url (or storage.postgres.shards) is required when \
                 storage.kind = \"postgres\""
            );
            anyhow::ensure!(
                postgres.shards.is_empty()
                    || (postgres.url.is_none() && postgres.replicas.is_empty()),
                "set either storage.postgres.url (with storage.postgres.replicas) or \
                 storage.postgres.shards (each with its own replicas), not both: one database \
                 is the first shard"
            );
            anyhow::ensure!(
                postgres.shard_map_refresh_ms >= 10,
                "storage.postgres.shard_map_refresh_ms must be at least 10"
            );
        }
        anyhow::ensure!(
            self.server.ws_session_check_secs > 0,
            "server.ws_session_check_secs must be at least 1"
        );
        anyhow::ensure!(
            self.storage.logical_shards > 0,
            "storage.logical_shards must be at least 1"
        );
        let delivery = &self.delivery;
        anyhow::ensure!(
            delivery.relay_batch > 0,
            "delivery.relay_batch must be at least 1"
        );
        anyhow::ensure!(
            self.storage.group_commit.max_batch > 0 && self.storage.group_commit.writers > 0,
            "storage.group_commit.max_batch and storage.group_commit.writers must be at least 1"
        );
        anyhow::ensure!(
            delivery.relay_max_attempts > 0,
            "delivery.relay_max_attempts must be at least 1"
        );
        anyhow::ensure!(
            delivery.relay_poll_ms >= 10,
            "delivery.relay_poll_ms must be at least 10"
        );
        anyhow::ensure!(
            delivery.prune_interval_secs > 0,
            "delivery.prune_interval_secs must be at least 1"
        );
        anyhow::ensure!(
            delivery.lag_check_ms >= 10,
            "delivery.lag_check_ms must be at least 10"
        );
        let nats = &delivery.nats;
        anyhow::ensure!(
            nats.max_in_flight > 0,
            "delivery.nats.max_in_flight must be at least 1"
        );
        anyhow::ensure!(
            (1..=1024).contains(&nats.partitions),
            "delivery.nats.partitions must be between 1 and 1024"
        );
        anyhow::ensure!(
            nats.ack_wait_secs > 0,
            "delivery.nats.ack_wait_secs must be at least 1"
        );
        anyhow::ensure!(
            self.cache.history_messages > 0,
            "cache.history_messages must be at least 1"
        );
        anyhow::ensure!(
            self.cache.redis.pool_size > 0,
            "cache.redis.pool_size must be at least 1"
        );
        anyhow::ensure!(
            self.limits.sends_per_second == 0 || self.limits.send_burst > 0,
            "limits.send_burst must be at least 1 when limits.sends_per_second is set"
        );
        anyhow::ensure!(
            self.auth.attempts_per_minute > 0,
            "auth.attempts_per_minute must be at least 1"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_select_sqlite() {
        let settings = Settings::load(&Profile::None, &[]).expect("defaults load");
        assert_eq!(settings.storage.kind, StorageKind::Sqlite);
        assert_eq!(settings.storage.sqlite.synchronous, SqliteSynchronous::Full);
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_the_value() {
        let err =
            Settings::load(&Profile::None, &[("storage.kind", "oracle")]).expect_err("refused");
        assert!(format!("{err:#}").contains("oracle"), "{err:#}");
    }

    #[test]
    fn postgres_without_a_url_is_refused_naming_the_field() {
        let err =
            Settings::load(&Profile::None, &[("storage.kind", "postgres")]).expect_err("refused");
        assert!(
            format!("{err:#}").contains("storage.postgres.url"),
            "{err:#}"
        );
    }

    #[test]
    fn replicas_are_taken_from_a_comma_separated_string() {
        let settings = Settings::load(
            &Profile::None,
            &[(
                "storage.postgres.replicas",
                "postgres://a/db, postgres://b/db",
            )],
        )
        .expect("loads");
        let replicas: Vec<_> = settings
            .storage
            .postgres
            .replicas
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(replicas, ["postgres://a/db", "postgres://b/db"]);
        let none = Settings::load(&Profile::None, &[]).expect("loads");
        assert!(none.storage.postgres.replicas.is_empty());
    }

    #[test]
    fn cors_origins_are_off_by_default_and_taken_from_a_list_or_a_comma_separated_string() {
        let none = Settings::load(&Profile::None, &[]).expect("loads");
        assert!(none.server.cors_origins.is_empty());
        let joined = Settings::load(
            &Profile::None,
            &[(
                "server.cors_origins",
                "https://app.example.com, http://localhost:5173,",
            )],
        )
        .expect("loads");
        assert_eq!(
            joined.server.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        let file = std::env::temp_dir().join(format!("duet-cors-{}.toml", std::process::id()));
        std::fs::write(
            &file,
            "[server]\ncors_origins = [\"https://app.example.com\", \"*\"]\n",
        )
        .expect("a temporary file");
        let listed = Settings::load(&Profile::File(file.clone()), &[]);
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            listed.expect("loads").server.cors_origins,
            ["https://app.example.com", "*"]
        );
    }

    #[test]
    fn every_profile_file_in_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut loaded = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("config/ exists") {
            let path = entry.expect("a directory entry").path();
            let settings = Settings::load(&Profile::File(path.clone()), &[])
                .unwrap_or_else(|err| panic!("{} does not load: {err:#}", path.display()));
            loaded.push((path, settings.storage.kind));
        }
        assert!(loaded.len() >= 4, "{loaded:?}");
        let large = loaded
            .iter()
            .find(|(path, _)| path.ends_with("large.toml"))
            .expect("config/large.toml");
        assert_eq!(large.1, StorageKind::Postgres);
    }

    #[test]
    fn a_named_profile_is_built_in_so_it_loads_outside_the_checkout() {
        // Tests run in app/, which has no config/ folder: only the built-in copy can answer.
        assert!(
            !Path::new("config").exists(),
            "run from the app crate's folder"
        );
        let medium = Settings::load(&Profile::Named("medium".into()), &[]).expect("medium");
        assert_eq!(medium.storage.kind, StorageKind::Postgres);
        assert_eq!(medium.delivery.kind, DeliveryKind::Nats);
        let small = Settings::load(&Profile::Named("small".into()), &[]).expect("small");
        assert_eq!(small.storage.kind, StorageKind::Sqlite);
    }

    #[test]
    fn every_profile_file_in_config_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        for entry in std::fs::read_dir(&dir).expect("config/ exists") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("a name");
            if name == "default" {
                continue;
            }
            assert!(
                Profile::built_in().any(|known| known == name),
                "{} is not built into the binary (BUILT_IN_PROFILES)",
                path.display()
            );
        }
    }

    #[test]
    fn an_unknown_profile_is_refused_naming_the_built_in_ones() {
        let err = Settings::load(&Profile::Named("huge".into()), &[]).expect_err("refused");
        let message = format!("{err:#}");
        assert!(
            message.contains("huge") && message.contains("medium"),
            "{message}"
        );
    }

    #[test]
    fn settings_that_would_stall_a_worker_are_refused_naming_them() {
        for (key, value) in [
            ("delivery.relay_batch", "0"),
            ("delivery.relay_poll_ms", "0"),
            ("delivery.prune_interval_secs", "0"),
            ("delivery.lag_check_ms", "5"),
            ("server.ws_session_check_secs", "0"),
        ] {
            let err = Settings::load(&Profile::None, &[(key, value)]).expect_err("refused");
            assert!(format!("{err:#}").contains(key), "{key}: {err:#}");
        }
    }

    /// The keys `config/default.toml` sets, as `section.sub.key`.
    fn default_keys() -> std::collections::BTreeSet<String> {
        let mut section = String::new();
        let mut keys = std::collections::BTreeSet::new();
        for line in DEFAULTS.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once('=')
                && !line.starts_with('#')
            {
                keys.insert(format!("{section}.{}", key.trim()));
            }
        }
        keys
    }

    /// docs/CONFIGURATION.md is the one reference: it documents every key the defaults set,
    /// and nothing Duet does not read.
    #[test]
    fn the_configuration_reference_documents_exactly_the_keys_duet_reads() {
        let reference = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIGURATION.md"),
        )
        .expect("docs/CONFIGURATION.md");
        // Table rows: "| `key` | default | meaning |".
        let documented: std::collections::BTreeSet<String> = reference
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_owned())
            .collect();
        // Required keys have no default to set.
        let without_default = ["storage.postgres.url"];
        let mut expected = default_keys();
        expected.extend(without_default.map(str::to_owned));
        assert!(expected.len() > 40, "{expected:?}");
        let undocumented: Vec<_> = expected.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&expected).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "undocumented keys: {undocumented:?}; documented keys Duet does not read: {unknown:?}"
        );
        for key in without_default {
            Settings::load(&Profile::None, &[(key, "postgres://127.0.0.1/duet")])
                .unwrap_or_else(|err| panic!("{key} is not a key Duet reads: {err:#}"));
        }
    }

    #[test]
    fn an_unknown_key_is_refused_naming_it() {
        let err =
            Settings::load(&Profile::None, &[("server.colour", "blue")]).expect_err("refused");
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }
}
