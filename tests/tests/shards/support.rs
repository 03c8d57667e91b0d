//! What the shard tests share: a sharded app, its storage opened beside it (as the `duet
//! shards` command opens it), where a key lives, and row counts per physical database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use duet_adapters::sql::{SqlStorage, logical_shard};
use duet_tests::{TestApp, TestUser, spawn_app_on};
use reqwest::StatusCode;
use sea_orm::DatabaseConnection;
use serde_json::json;
use uuid::Uuid;

/// A Duet on four physical shards over two servers, with `overrides`.
pub async fn sharded_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on("sharded", overrides).await
}

/// The app's storage, opened by this test as an operator's `duet shards` command would.
pub async fn storage_beside(app: &TestApp) -> SqlStorage {
    duet::storage::connect(&app.loaded_settings().storage, false, false)
        .await
        .expect("the sharded storage opens")
}

/// A connection to each physical shard, in order.
pub async fn databases(app: &TestApp) -> Vec<DatabaseConnection> {
    let mut all = Vec::new();
    for url in app.database_urls() {
        all.push(
            duet_tests::postgres::connect(&url)
                .await
                .expect("a shard's database opens"),
        );
    }
    assert_eq!(all.len(), 4, "the sharded profile has four physical shards");
    all
}

/// The logical shard of an id (a user or conversation).
pub fn logical_of(id: &str) -> u32 {
    let id = Uuid::parse_str(id).expect("a UUID");
    logical_shard(id.as_bytes(), 1024)
}

/// The physical shard that owns `id`'s logical shard, as the stored map says now.
pub async fn physical_of(storage: &SqlStorage, id: &str) -> usize {
    storage
        .reload_shard_map()
        .await
        .expect("the map loads")
        .owner(logical_of(id))
}

/// Per physical shard, the rows of `table` whose `column` is `id`.
pub async fn rows_per_shard(
    databases: &[DatabaseConnection],
    table: &str,
    column: &str,
    id: &str,
) -> Vec<i64> {
    rows_where(databases, table, &format!("{column} = '{id}'")).await
}

/// Per physical shard, the rows of `table` that match `condition` (SQL).
pub async fn rows_where(
    databases: &[DatabaseConnection],
    table: &str,
    condition: &str,
) -> Vec<i64> {
    let mut counts = Vec::new();
    for db in databases {
        counts.push(
            duet_tests::postgres::query_i64(
                db,
                &format!("SELECT count(*) AS value FROM {table} WHERE {condition}"),
            )
            .await,
        );
    }
    counts
}

/// Sends under fresh client ids until `stop`, answering 503s by sending the same client id
/// again; returns every acknowledged (client id, seq).
pub async fn send_until(
    app: Arc<TestApp>,
    user: TestUser,
    conversation: String,
    stop: Arc<AtomicBool>,
) -> Vec<(String, i64)> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let client_id = Uuid::now_v7().to_string();
        let body = format!("{} {n}", user.handle);
        loop {
            let reply = app.send_raw(&user, &conversation, &client_id, &body).await;
            match reply.status {
                StatusCode::CREATED | StatusCode::OK => {
                    acked.push((client_id, reply.json["seq"].as_i64().expect("a seq")));
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("a send answered {other}: {}", reply.text),
            }
        }
    }
    acked
}

/// Asserts the conversation's history holds each of `acked` exactly once at its seq, and
/// nothing else: seqs 1..=n without a gap.
pub async fn assert_history_is_exactly(
    app: &TestApp,
    user: &TestUser,
    conversation: &str,
    acked: &[(String, i64)],
) {
    let history = app.all_history(user, conversation).await;
    let seqs: Vec<i64> = history
        .iter()
        .map(|m| m["seq"].as_i64().expect("a seq"))
        .collect();
    let expected: Vec<i64> = (1..=acked.len() as i64).collect();
    assert_eq!(
        seqs, expected,
        "seq is gap-free and every message is there once"
    );
    for (client_id, seq) in acked {
        let stored = &history[usize::try_from(*seq - 1).expect("a positive seq")];
        assert_eq!(
            stored["client_msg_id"],
            json!(client_id),
            "the message acknowledged with seq {seq}"
        );
    }
}

/// Waits until `user` sees the peer's read position at `seq` in the conversation.
pub async fn wait_for_peer_read(app: &TestApp, user: &TestUser, conversation: &str, seq: i64) {
    duet_tests::eventually("the peer's read receipt to arrive", || async {
        let view = app.conversation(user, conversation).await;
        (view["peer_read_seq"] == json!(seq)).then_some(())
    })
    .await;
}
