//! Raw-insert baseline for `duet bench --baseline`: how fast the database itself stores the
//! rows a send stores, with nothing of Duet in between.
//!
//! A send commits, in one transaction, a message row and an outbox row (plus the conversation
//! row's seq update and a dedupe lookup, which the baseline leaves out: it is the floor Duet's
//! cost is measured against, not a second implementation). The baseline inserts the same shape
//! of rows into scratch tables it creates and drops itself (`bench_baseline_messages_<tag>`,
//! `bench_baseline_outbox_<tag>`), with the same indexes, so Duet's own data is never touched
//! and two runs on one database never meet.
//!
//! SQLite is opened the way the server opens it (WAL, the same `synchronous`, one writer
//! connection: concurrent writers would only queue on the file lock); PostgreSQL gets a pool
//! of one connection per concurrent writer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use duet_domain::StoreError;
use sea_orm::sea_query::{Alias, ColumnDef, Index, Query, Table};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use super::errors::from_db;

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

/// The shape of one send: what goes into the message row and the outbox row.
#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub client_msg_id: String,
    pub body: String,
    /// The outbox payload (Duet stores the event as JSON text).
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// Scratch tables on the database under test. Cheap to clone.
#[derive(Clone)]
pub struct Baseline {
    db: DatabaseConnection,
    messages: String,
    outbox: String,
}

impl Baseline {
    /// Connects to `target` with room for `writers` concurrent transactions and creates the
    /// scratch tables, named after `tag` (1–24 of `[a-z0-9_]`).
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached or opened; `Unexpected` for a bad tag
    /// or a failed `CREATE TABLE`.
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
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "baseline tag {tag:?} must be 1-24 of [a-z0-9_]"
            )));
        }
        let db = Database::connect(connect_options(target, writers))
            .await
            .map_err(from_db)?;
        let baseline = Self {
            db,
            messages: format!("bench_baseline_messages_{tag}"),
            outbox: format!("bench_baseline_outbox_{tag}"),
        };
        baseline.create_tables().await?;
        Ok(baseline)
    }

    async fn create_tables(&self) -> Result<(), StoreError> {
        let messages = Alias::new(&self.messages);
        let outbox = Alias::new(&self.outbox);
        let column = |name: &str| ColumnDef::new(Alias::new(name));
        self.db
            .execute(
                Table::create()
                    .table(messages.clone())
                    .if_not_exists()
                    .col(column("id").uuid().not_null().primary_key())
                    .col(column("conversation_id").uuid().not_null())
                    .col(column("seq").big_integer().not_null())
                    .col(column("sender_id").uuid().not_null())
                    .col(column("client_msg_id").text().not_null())
                    .col(column("body").text().not_null())
                    .col(column("created_at").timestamp().not_null()),
            )
            .await
            .map_err(from_db)?;
        // The two unique indexes Duet's messages table carries: seq order and idempotency.
        for (suffix, columns) in [
            ("seq", &["conversation_id", "seq"][..]),
            (
                "client",
                &["conversation_id", "sender_id", "client_msg_id"][..],
            ),
        ] {
            let mut index = Index::create();
            index
                .name(format!("{}_{suffix}", self.messages))
                .table(messages.clone())
                .unique()
                .if_not_exists();
            for name in columns {
                index.col(Alias::new(*name));
            }
            self.db.execute(&index).await.map_err(from_db)?;
        }
        self.db
            .execute(
                Table::create()
                    .table(outbox)
                    .if_not_exists()
                    .col(
                        column("id")
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(column("event_id").uuid().not_null())
                    .col(column("payload").text().not_null())
                    .col(column("created_at").timestamp().not_null()),
            )
            .await
            .map_err(from_db)?;
        Ok(())
    }

    /// Commits `rows` (one or many) in one transaction: their message rows, then their
    /// outbox rows. One row per call is Duet's shape; many is what batching could reach.
    ///
    /// # Errors
    /// `Unavailable` when the database is unreachable or busy past its timeout, else
    /// `Unexpected`.
    pub async fn insert(&self, rows: &[BaselineRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut messages = Query::insert();
        messages.into_table(Alias::new(&self.messages)).columns(
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
        let mut outbox = Query::insert();
        outbox
            .into_table(Alias::new(&self.outbox))
            .columns(["event_id", "payload", "created_at"].map(Alias::new));
        for row in rows {
            messages
                .values([
                    row.message_id.into(),
                    row.conversation_id.into(),
                    row.seq.into(),
                    row.sender_id.into(),
                    row.client_msg_id.clone().into(),
                    row.body.clone().into(),
                    row.created_at.into(),
                ])
                .map_err(|e| StoreError::Unexpected(e.into()))?;
            outbox
                .values([
                    row.message_id.into(),
                    row.payload.clone().into(),
                    row.created_at.into(),
                ])
                .map_err(|e| StoreError::Unexpected(e.into()))?;
        }
        let txn = self.db.begin().await.map_err(from_db)?;
        txn.execute(&messages).await.map_err(from_db)?;
        txn.execute(&outbox).await.map_err(from_db)?;
        txn.commit().await.map_err(from_db)
    }

    /// Message rows stored so far (what the run really committed).
    ///
    /// # Errors
    /// As [`Baseline::insert`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {}", self.messages);
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await
            .map_err(from_db)?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(from_db)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Drops the scratch tables and closes the pool.
    ///
    /// # Errors
    /// As [`Baseline::insert`]; the pool is closed either way.
    pub async fn drop_tables(self) -> Result<(), StoreError> {
        let mut result = Ok(());
        for table in [&self.outbox, &self.messages] {
            let dropped = self
                .db
                .execute(Table::drop().table(Alias::new(table)).if_exists())
                .await;
            if let Err(err) = dropped {
                result = Err(from_db(err));
            }
        }
        let _ = self.db.close().await;
        result
    }
}

fn connect_options(target: &BaselineTarget, writers: u32) -> ConnectOptions {
    match target {
        BaselineTarget::Postgres { url } => {
            let mut opts = ConnectOptions::new(url.clone());
            opts.max_connections(writers.max(1))
                .min_connections(1)
                .connect_timeout(Duration::from_secs(3))
                .acquire_timeout(Duration::from_secs(30))
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
            super::router::sqlite_options(&url, 1, *synchronous_full)
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

    fn row(seq: i64, conversation_id: Uuid) -> BaselineRow {
        BaselineRow {
            message_id: Uuid::now_v7(),
            conversation_id,
            seq,
            sender_id: Uuid::now_v7(),
            client_msg_id: format!("c{seq}"),
            body: "hello".into(),
            payload: "{}".into(),
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn rows_land_in_scratch_tables_that_are_dropped_afterwards() {
        let dir = std::env::temp_dir().join(format!("duet-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("baseline.db");
        // The baseline never creates the file: it must be the server's.
        std::fs::File::create(&path).expect("an empty SQLite file");
        let target = BaselineTarget::Sqlite {
            path: path.clone(),
            synchronous_full: true,
        };
        let baseline = Baseline::create(&target, 4, "t1").await.expect("creates");
        let conversation = Uuid::now_v7();
        baseline
            .insert(&[row(1, conversation)])
            .await
            .expect("one row");
        let batch: Vec<_> = (2..=257).map(|seq| row(seq, conversation)).collect();
        baseline.insert(&batch).await.expect("a batch");
        assert_eq!(baseline.count().await.expect("counts"), 257);
        // A repeated seq violates the copied unique index, like a second copy in Duet would.
        assert!(baseline.insert(&[row(1, conversation)]).await.is_err());
        baseline.clone().drop_tables().await.expect("drops");
        let reopened = Baseline::create(&target, 1, "t1").await.expect("recreates");
        assert_eq!(reopened.count().await.expect("counts"), 0);
        reopened.drop_tables().await.expect("drops");
        std::fs::remove_dir_all(&dir).expect("cleans up");
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
