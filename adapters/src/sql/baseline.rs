//! Raw-insert baseline for `duet bench --baseline`: how fast the database itself stores the
//! rows a send stores, with nothing of Duet in between.
//!
//! A send with inline delivery commits, in one transaction: its message row, the
//! conversation's new last seq and read position, one feed event per member, both members'
//! feed cursors and both inbox entries. The baseline writes exactly those rows, with values it
//! computes itself (no reads, no dedupe lookup, no locking reads: it is the floor Duet's cost
//! is measured against, not a second implementation), into scratch copies of the five tables
//! — the same columns, keys and indexes, copied from the server's own schema, so they cannot
//! drift from it — named `bench_baseline_<table>_<tag>`. Duet's data is never touched and two
//! runs on one database never meet. Each writer has its own conversation, so writers never
//! wait on each other's rows: the raw limit is the best case.
//!
//! SQLite is opened the way the server opens it (WAL, the same `synchronous`, one writer
//! connection: concurrent writers would only queue on the file lock); PostgreSQL gets a pool
//! of one connection per concurrent writer.

use std::time::Duration;

use chrono::Utc;
use duet_domain::conversations::Message;
use duet_domain::inbox::FeedEventBody;
use duet_domain::{ConversationId, MessageId, StoreError, UserId};
use sea_orm::sea_query::{Alias, OnConflict, Query, Table};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

use super::bulk::update_by_key;
use super::errors::{from_db, from_json};
use super::router::{PING_IF_IDLE_FOR, SqliteRole, sqlite_options};

/// Where the baseline writes, parsed from a database URL or a SQLite path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineTarget {
    /// An existing SQLite file (the server's); never created by the baseline.
    Sqlite {
        path: std::path::PathBuf,
        /// `synchronous=FULL` when true, `NORMAL` otherwise: match the server's setting.
        synchronous_full: bool,
    },
    /// A PostgreSQL URL.
    Postgres { url: String },
}

impl BaselineTarget {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://PATH[?…]`, `sqlite:PATH` or
    /// a bare path is SQLite.
    ///
    /// # Errors
    /// An empty value or a URL scheme that is neither.
    pub fn parse(database_url: &str, synchronous_full: bool) -> Result<Self, String> {
        let value = database_url.trim();
        if value.is_empty() {
            return Err("the database URL is empty".into());
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: value.to_owned(),
            });
        }
        let path = if let Some(rest) = value.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            rest.split_once('?').map_or(rest, |(path, _)| path)
        } else if value.contains("://") {
            return Err(format!(
                "unsupported database URL {value:?}: expected postgres://…, sqlite://PATH or a file path"
            ));
        } else {
            value
        };
        if path.is_empty() {
            return Err(format!("no file path in {value:?}"));
        }
        Ok(Self::Sqlite {
            path: path.into(),
            synchronous_full,
        })
    }
}

/// The tables a send writes, each copied (columns, keys, indexes) into a scratch table.
const TABLES: [&str; 5] = [
    "conversations",
    "messages",
    "user_feeds",
    "feed_events",
    "inbox_entries",
];

/// One writer's conversation and the positions it has handed out, so that a send needs no
/// read: the baseline measures writes only.
#[derive(Debug)]
pub struct BaselinePair {
    conversation: Uuid,
    /// The two members, lower id first (as Duet stores them); the first one sends.
    members: [Uuid; 2],
    last_seq: i64,
    cursors: [i64; 2],
    versions: [i64; 2],
}

/// Scratch copies of Duet's tables on the database under test. Cheap to clone.
#[derive(Clone)]
pub struct Baseline {
    db: DatabaseConnection,
    tag: String,
}

impl Baseline {
    /// Connects to `target` with room for `writers` concurrent transactions and copies the
    /// tables a send writes (the server must have created them: run it once first) into
    /// scratch tables named after `tag` (1–24 of `[a-z0-9_]`).
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached or opened; `Unexpected` for a bad tag,
    /// a database without Duet's tables, or a failed `CREATE`.
    pub async fn create(
        target: &BaselineTarget,
        writers: u32,
        tag: &str,
    ) -> Result<Self, StoreError> {
        let valid_tag = !tag.is_empty()
            && tag.len() <= 24
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_tag {
            return Err(unexpected(format!(
                "baseline tag {tag:?} must be 1-24 of [a-z0-9_]"
            )));
        }
        let db = Database::connect(connect_options(target, writers))
            .await
            .map_err(from_db)?;
        let baseline = Self {
            db,
            tag: tag.to_owned(),
        };
        for table in TABLES {
            baseline.copy_table(table).await?;
        }
        Ok(baseline)
    }

    fn scratch(&self, table: &str) -> String {
        format!("bench_baseline_{table}_{}", self.tag)
    }

    /// Creates the scratch copy of `table`: on PostgreSQL with `LIKE … INCLUDING ALL`, on
    /// SQLite by replaying the table's and its indexes' `CREATE` statements under new names.
    async fn copy_table(&self, table: &str) -> Result<(), StoreError> {
        let scratch = self.scratch(table);
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS \"{scratch}\" (LIKE \"{table}\" INCLUDING ALL)"
            );
            self.db.execute_unprepared(&sql).await.map_err(from_db)?;
            return Ok(());
        }
        let schema = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type DESC",
                [table.into()],
            ))
            .await
            .map_err(from_db)?;
        if schema.is_empty() {
            return Err(unexpected(format!(
                "no table {table:?} in the baseline database: start the server on it once first"
            )));
        }
        for row in schema {
            let kind: String = row.try_get("", "type").map_err(from_db)?;
            let name: String = row.try_get("", "name").map_err(from_db)?;
            let sql: String = row.try_get("", "sql").map_err(from_db)?;
            let copied = if kind == "table" {
                rename(&sql, &format!("\"{table}\""), &format!("\"{scratch}\""))
                    .map(|sql| sql.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE"))
            } else {
                rename(
                    &sql,
                    &format!("\"{name}\""),
                    &format!("\"{scratch}_{name}\""),
                )
                .and_then(|sql| {
                    rename(
                        &sql,
                        &format!("ON \"{table}\""),
                        &format!("ON \"{scratch}\""),
                    )
                })
            };
            let sql = copied
                .ok_or_else(|| unexpected(format!("cannot copy the schema of {table:?}: {sql}")))?;
            self.db.execute_unprepared(&sql).await.map_err(from_db)?;
        }
        Ok(())
    }

    /// A writer's own conversation between two new users, stored as Duet stores one (the
    /// conversation row and the two users' feed rows), so that sends can start.
    ///
    /// # Errors
    /// `Unavailable` when the database is unreachable or busy past its timeout, else
    /// `Unexpected`.
    pub async fn open_pair(&self) -> Result<BaselinePair, StoreError> {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let members = if a < b { [a, b] } else { [b, a] };
        let pair = BaselinePair {
            conversation: Uuid::now_v7(),
            members,
            last_seq: 0,
            cursors: [0, 0],
            versions: [0, 0],
        };
        let now = Utc::now();
        let mut conversation = Query::insert();
        conversation
            .into_table(Alias::new(self.scratch("conversations")))
            .columns(
                [
                    "id",
                    "user_lo",
                    "user_hi",
                    "last_seq",
                    "lo_read_seq",
                    "hi_read_seq",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values([
                pair.conversation.into(),
                members[0].into(),
                members[1].into(),
                0i64.into(),
                0i64.into(),
                0i64.into(),
                now.into(),
                now.into(),
            ])
            .map_err(|e| StoreError::Unexpected(e.into()))?;
        let mut feeds = Query::insert();
        feeds
            .into_table(Alias::new(self.scratch("user_feeds")))
            .columns(["user_id", "last_cursor", "pruned_through"].map(Alias::new));
        for member in members {
            feeds
                .values([member.into(), 0i64.into(), 0i64.into()])
                .map_err(|e| StoreError::Unexpected(e.into()))?;
        }
        let txn = self.db.begin().await.map_err(from_db)?;
        txn.execute(&conversation).await.map_err(from_db)?;
        txn.execute(&feeds).await.map_err(from_db)?;
        txn.commit().await.map_err(from_db)?;
        Ok(pair)
    }

    /// Commits `count` messages from the pair's first member in one transaction, writing the
    /// rows Duet's send writes for them with inline delivery: the message rows, the
    /// conversation's new last seq and read position, both members' feed events and feed
    /// cursors, and both inbox entries (upserted). Positions come from `pair`, not from reads;
    /// like Duet's batches, a row written several times in one transaction is written once,
    /// with its final value.
    ///
    /// # Errors
    /// `Unavailable` when the database is unreachable or busy past its timeout, else
    /// `Unexpected` (the pair's positions have moved either way).
    pub async fn send(
        &self,
        pair: &mut BaselinePair,
        count: usize,
        body: &str,
    ) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let now = Utc::now();
        let sender = pair.members[0];
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            pair.last_seq += 1;
            messages.push(Message {
                id: MessageId(Uuid::now_v7()),
                conversation_id: ConversationId(pair.conversation),
                seq: pair.last_seq,
                sender_id: UserId(sender),
                client_msg_id: format!("baseline-{}", pair.last_seq),
                body: body.to_owned(),
                created_at: now,
            });
        }
        let mut statements = update_by_key(
            backend,
            &self.scratch("conversations"),
            &["id", "last_seq", "lo_read_seq", "updated_at"],
            &["last_seq", "lo_read_seq", "updated_at"],
            &[],
            &[vec![
                pair.conversation.into(),
                pair.last_seq.into(),
                pair.last_seq.into(),
                now.into(),
            ]],
        );
        let mut inserted = Query::insert();
        inserted
            .into_table(Alias::new(self.scratch("messages")))
            .columns(
                [
                    "id",
                    "conversation_id",
                    "seq",
                    "sender_id",
                    "client_msg_id",
                    "body",
                    "created_at",
                ]
                .map(Alias::new),
            );
        let mut events = Query::insert();
        events
            .into_table(Alias::new(self.scratch("feed_events")))
            .columns(
                [
                    "user_id",
                    "cursor",
                    "conversation_id",
                    "kind",
                    "seq",
                    "payload",
                    "created_at",
                ]
                .map(Alias::new),
            );
        for message in &messages {
            inserted
                .values([
                    message.id.0.into(),
                    pair.conversation.into(),
                    message.seq.into(),
                    sender.into(),
                    message.client_msg_id.clone().into(),
                    message.body.clone().into(),
                    now.into(),
                ])
                .map_err(|e| StoreError::Unexpected(e.into()))?;
            let event = FeedEventBody::MessageCreated {
                message: message.clone(),
            };
            let payload = serde_json::to_string(&event).map_err(from_json)?;
            for (member, cursor) in pair.members.iter().zip(&mut pair.cursors) {
                *cursor += 1;
                events
                    .values([
                        (*member).into(),
                        (*cursor).into(),
                        pair.conversation.into(),
                        event.kind().into(),
                        message.seq.into(),
                        payload.clone().into(),
                        now.into(),
                    ])
                    .map_err(|e| StoreError::Unexpected(e.into()))?;
            }
        }
        let cursors: Vec<Vec<Value>> = pair
            .members
            .iter()
            .zip(pair.cursors)
            .map(|(member, cursor)| vec![(*member).into(), cursor.into()])
            .collect();
        statements.extend(update_by_key(
            backend,
            &self.scratch("user_feeds"),
            &["user_id", "last_cursor"],
            &["last_cursor"],
            &[],
            &cursors,
        ));
        let last = messages
            .last()
            .map(serde_json::to_string)
            .transpose()
            .map_err(from_json)?;
        let entry_columns = [
            "user_id",
            "conversation_id",
            "peer_id",
            "last_seq",
            "read_seq",
            "peer_read_seq",
            "last_message",
            "version",
            "activity",
            "updated_at",
        ];
        let mut entries = Query::insert();
        entries
            .into_table(Alias::new(self.scratch("inbox_entries")))
            .columns(entry_columns.map(Alias::new))
            .on_conflict(
                OnConflict::columns(["user_id", "conversation_id"].map(Alias::new))
                    .update_columns(entry_columns[3..].iter().map(|c| Alias::new(*c)))
                    .to_owned(),
            );
        for (i, version) in pair.versions.iter_mut().enumerate() {
            *version += 1;
            // The sender has read its own message; the peer sees it as read by the sender.
            let (read, peer_read) = if i == 0 {
                (pair.last_seq, 0)
            } else {
                (0, pair.last_seq)
            };
            entries
                .values([
                    pair.members[i].into(),
                    pair.conversation.into(),
                    pair.members[1 - i].into(),
                    pair.last_seq.into(),
                    read.into(),
                    peer_read.into(),
                    last.clone().into(),
                    (*version).into(),
                    (*version).into(),
                    now.into(),
                ])
                .map_err(|e| StoreError::Unexpected(e.into()))?;
        }
        let txn = self.db.begin().await.map_err(from_db)?;
        let mut written = 0;
        for statement in statements {
            written += txn
                .execute_raw(statement)
                .await
                .map_err(from_db)?
                .rows_affected();
        }
        for insert in [&inserted, &events, &entries] {
            written += txn.execute(insert).await.map_err(from_db)?.rows_affected();
        }
        // Conversation, messages, two cursors, two feed rows per message, two entries.
        let expected = (1 + count + 2 + 2 * count + 2) as u64;
        if written != expected {
            return Err(unexpected(format!(
                "the baseline wrote {written} rows where {expected} were due"
            )));
        }
        txn.commit().await.map_err(from_db)
    }

    /// Message rows stored so far (what the run really committed).
    ///
    /// # Errors
    /// As [`Baseline::send`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {}", self.scratch("messages"));
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .map_err(from_db)?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(from_db)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Drops the scratch tables (and their indexes) and closes the pool.
    ///
    /// # Errors
    /// As [`Baseline::send`]; the pool is closed either way.
    pub async fn drop_tables(self) -> Result<(), StoreError> {
        let mut result = Ok(());
        for table in TABLES {
            let dropped = self
                .db
                .execute(
                    Table::drop()
                        .table(Alias::new(self.scratch(table)))
                        .if_exists(),
                )
                .await;
            if let Err(err) = dropped {
                result = Err(from_db(err));
            }
        }
        let _ = self.db.close().await;
        result
    }
}

/// `sql` with the first `from` replaced by `to`, or `None` if it has no `from`.
fn rename(sql: &str, from: &str, to: &str) -> Option<String> {
    sql.contains(from).then(|| sql.replacen(from, to, 1))
}

fn unexpected(message: String) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!(message))
}

fn connect_options(target: &BaselineTarget, writers: u32) -> ConnectOptions {
    match target {
        BaselineTarget::Postgres { url } => {
            let mut opts = ConnectOptions::new(url.clone());
            opts.max_connections(writers.max(1))
                .min_connections(1)
                .connect_timeout(Duration::from_secs(3))
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
                .sqlx_logging(false);
            opts
        }
        BaselineTarget::Sqlite {
            path,
            synchronous_full,
        } => {
            // Opened as the server opens its writer. `mode=rw`: the server's file must exist;
            // a typo should fail, not create one.
            let url = format!("sqlite://{}?mode=rw", path.display());
            sqlite_options(&url, 1, *synchronous_full, SqliteRole::Writer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_pick_the_backend() {
        assert_eq!(
            BaselineTarget::parse("postgres://u@h:5432/db", true),
            Ok(BaselineTarget::Postgres {
                url: "postgres://u@h:5432/db".into()
            })
        );
        for value in [
            "/tmp/x.db",
            "sqlite:///tmp/x.db",
            "sqlite:///tmp/x.db?mode=rwc",
        ] {
            assert_eq!(
                BaselineTarget::parse(value, false),
                Ok(BaselineTarget::Sqlite {
                    path: "/tmp/x.db".into(),
                    synchronous_full: false
                }),
                "{value}"
            );
        }
        assert!(BaselineTarget::parse("mysql://h/db", true).is_err());
        assert!(BaselineTarget::parse("  ", true).is_err());
        assert!(BaselineTarget::parse("sqlite://", true).is_err());
    }

    /// A row count of a scratch table.
    async fn rows(baseline: &Baseline, table: &str, filter: &str) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} {filter}",
            baseline.scratch(table)
        );
        let backend = baseline.db.get_database_backend();
        let row = baseline
            .db
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("counts")
            .expect("a row");
        row.try_get("", "n").expect("a number")
    }

    /// What one run leaves: every row a send writes, positions that add up, unique indexes
    /// that were copied, and nothing once dropped.
    async fn sends_write_every_row_a_send_writes(target: &BaselineTarget, tag: &str) {
        let baseline = Baseline::create(target, 4, tag).await.expect("creates");
        let mut pair = baseline.open_pair().await.expect("a pair");
        baseline
            .send(&mut pair, 1, "hello")
            .await
            .expect("one message");
        baseline
            .send(&mut pair, 300, "hello")
            .await
            .expect("a batch");
        assert_eq!(baseline.count().await.expect("counts"), 301);
        assert_eq!(rows(&baseline, "feed_events", "").await, 602);
        let conversation = "WHERE last_seq = 301 AND lo_read_seq = 301";
        assert_eq!(rows(&baseline, "conversations", conversation).await, 1);
        assert_eq!(
            rows(&baseline, "user_feeds", "WHERE last_cursor = 301").await,
            2
        );
        let entries = "WHERE last_seq = 301 AND version = 2 AND last_message IS NOT NULL";
        assert_eq!(rows(&baseline, "inbox_entries", entries).await, 2);
        // A repeated seq violates the copied unique index, as a second copy in Duet would.
        pair.last_seq = 0;
        assert!(baseline.send(&mut pair, 1, "again").await.is_err());
        assert_eq!(baseline.count().await.expect("counts"), 301);
        baseline.clone().drop_tables().await.expect("drops");
        let reopened = Baseline::create(target, 1, tag).await.expect("recreates");
        assert_eq!(reopened.count().await.expect("counts"), 0);
        reopened.drop_tables().await.expect("drops");
    }

    #[tokio::test]
    async fn sqlite_scratch_copies_take_every_row_of_a_send() {
        let dir = std::env::temp_dir().join(format!("duet-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("baseline.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = Database::connect(sqlite_options(&url, 1, true, SqliteRole::Writer))
            .await
            .expect("opens");
        let target = BaselineTarget::Sqlite {
            path: path.clone(),
            synchronous_full: true,
        };
        // Without Duet's tables there is nothing to copy.
        assert!(Baseline::create(&target, 1, "t0").await.is_err());
        <duet_migrations::Migrator as duet_migrations::MigratorTrait>::up(&db, None)
            .await
            .expect("migrates");
        sends_write_every_row_a_send_writes(&target, "t1").await;
        let _ = db.close().await;
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[tokio::test]
    async fn postgres_scratch_copies_take_every_row_of_a_send() {
        let admin = match Database::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
            Ok(db) => db,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL not reachable at 127.0.0.1:5432: {err}")
            }
            Err(_) => {
                println!("SKIPPED: PostgreSQL not reachable at 127.0.0.1:5432");
                return;
            }
        };
        let name = format!("duet_baseline_{}", std::process::id());
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("no leftover");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a fresh database");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let db = Database::connect(&url).await.expect("connects");
        <duet_migrations::Migrator as duet_migrations::MigratorTrait>::up(&db, None)
            .await
            .expect("migrates");
        sends_write_every_row_a_send_writes(&BaselineTarget::Postgres { url }, "t1").await;
        let _ = db.close().await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drops the database");
    }

    #[tokio::test]
    async fn a_bad_tag_or_a_missing_file_is_an_error() {
        let target = BaselineTarget::Sqlite {
            path: "/nonexistent/duet/x.db".into(),
            synchronous_full: true,
        };
        assert!(Baseline::create(&target, 1, "Bad-Tag").await.is_err());
        assert!(matches!(
            Baseline::create(&target, 1, "ok").await,
            Err(StoreError::Unavailable(_) | StoreError::Unexpected(_))
        ));
    }
}
