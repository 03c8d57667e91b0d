//! The baseline against real databases: a SQLite file migrated as the server migrates it,
//! and PostgreSQL on 127.0.0.1:5432 when it answers (required under `CI=true`).

use duet_adapters::sql::server_connect_options;
use sea_orm::{ConnectionTrait, Database, Statement};

use super::scratch::Baseline;
use super::target::BaselineTarget;

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
    let db = Database::connect(server_connect_options(&url, 1, true))
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
    let bad_tag = Baseline::create(&target, 1, "Bad-Tag").await;
    assert!(
        format!("{:#}", bad_tag.err().expect("refused")).contains("Bad-Tag"),
        "the message names the tag"
    );
    // The server's file must exist: the baseline never creates one.
    assert!(Baseline::create(&target, 1, "ok").await.is_err());
}
