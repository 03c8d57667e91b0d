//! The migration to feed rows that reference their change (`m20261203_000002_feed_references`)
//! converts the feeds a database already holds: after it, replay answers the very events the
//! copied payloads held, and the pruner knows each feed's oldest event. Over a temporary
//! SQLite file and a fresh PostgreSQL database (dropped after); without PostgreSQL at
//! 127.0.0.1:5432 the PostgreSQL half prints `SKIPPED:` and returns, unless CI=true.

use chrono::{DateTime, Utc};
use duet_adapters::sql::{SqlOptions, SqlStorage};
use duet_domain::conversations::Message;
use duet_domain::inbox::{FeedEvent, FeedEventBody, InboxStore, Replay};
use duet_domain::{ConversationId, MessageId, UserId};
use duet_migrations::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Value};

/// The migrations before feed references: the shape the old rows are written in.
const BEFORE: u32 = 4;

mod support;

use support::FreshPostgres;

async fn insert(db: &DatabaseConnection, table: &str, columns: &[&str], values: Vec<Value>) {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(table))
        .columns(columns.iter().map(|c| Alias::new(*c)))
        .values(values.into_iter().map(Into::into))
        .expect("as many values as columns");
    db.execute(&insert).await.expect("the old row is stored");
}

/// Alice's feed as the old schema stored it: Bob's message, Alice reading it (from another
/// of her devices), her answer, and Bob reading that. The events, as replay must answer them.
async fn old_feed(db: &DatabaseConnection, alice: UserId, bob: UserId) -> Vec<FeedEvent> {
    let conversation = ConversationId::between(alice, bob);
    let at = duet_domain::clock::now();
    let message = |seq: i64, sender: UserId| Message {
        id: MessageId::generate(),
        conversation_id: conversation,
        seq,
        sender_id: sender,
        client_msg_id: format!("c{seq}"),
        body: format!("message {seq}"),
        created_at: at,
    };
    let (first, answer) = (message(1, bob), message(2, alice));
    for m in [&first, &answer] {
        insert(
            db,
            "messages",
            &[
                "id",
                "conversation_id",
                "seq",
                "sender_id",
                "client_msg_id",
                "body",
                "created_at",
            ],
            vec![
                m.id.0.into(),
                conversation.0.into(),
                m.seq.into(),
                m.sender_id.0.into(),
                m.client_msg_id.clone().into(),
                m.body.clone().into(),
                at.into(),
            ],
        )
        .await;
    }
    let read = |reader: UserId, seq: i64| FeedEventBody::ConversationRead {
        conversation_id: conversation,
        reader_id: reader,
        read_seq: seq,
    };
    let bodies = [
        FeedEventBody::MessageCreated { message: first },
        read(alice, 1),
        FeedEventBody::MessageCreated { message: answer },
        read(bob, 2),
    ];
    let mut events = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let cursor = i as i64 + 1;
        // A minute apart, oldest first, as a feed is stamped.
        let created_at: DateTime<Utc> = at - chrono::Duration::minutes(10 - cursor);
        insert(
            db,
            "feed_events",
            &[
                "user_id",
                "cursor",
                "conversation_id",
                "kind",
                "seq",
                "payload",
                "created_at",
            ],
            vec![
                alice.0.into(),
                cursor.into(),
                conversation.0.into(),
                body.kind().into(),
                body.seq().into(),
                serde_json::to_string(&body).expect("serializes").into(),
                created_at.into(),
            ],
        )
        .await;
        events.push(FeedEvent {
            cursor,
            body,
            created_at,
        });
    }
    insert(
        db,
        "user_feeds",
        &["user_id", "last_cursor", "pruned_through"],
        vec![alice.0.into(), 4i64.into(), 0i64.into()],
    )
    .await;
    insert(
        db,
        "inbox_entries",
        &[
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
        ],
        vec![
            alice.0.into(),
            conversation.0.into(),
            bob.0.into(),
            2i64.into(),
            2i64.into(),
            2i64.into(),
            Value::String(None),
            4i64.into(),
            3i64.into(),
            at.into(),
        ],
    )
    .await;
    events
}

/// Writes the old rows on `db` (migrated to just before feed references), migrates, then
/// checks what `storage` (on the same database) replays and prunes.
async fn converts(db: &DatabaseConnection, options: SqlOptions) {
    Migrator::up(db, Some(BEFORE))
        .await
        .expect("the old schema");
    let (alice, bob) = (UserId::generate(), UserId::generate());
    let expected = old_feed(db, alice, bob).await;
    Migrator::up(db, None)
        .await
        .expect("the conversion applies");

    let storage = SqlStorage::connect(options).await.expect("connects");
    storage.migrate().await.expect("nothing left to migrate");
    match storage.replay(alice, 0, 100).await.expect("replays") {
        Replay::Events(events) => assert_eq!(events, expected, "the converted feed"),
        other => panic!("expected events, got {other:?}"),
    }
    // Pruning finds the old events without an age index: those older than the third.
    let pruned = storage
        .prune_feeds(expected[2].created_at)
        .await
        .expect("prunes");
    assert_eq!(pruned, 2, "the two events older than the third");
    match storage.replay(alice, 2, 100).await.expect("replays") {
        Replay::Events(events) => assert_eq!(events, expected[2..], "what is left"),
        other => panic!("expected events, got {other:?}"),
    }
    assert!(
        matches!(
            storage.replay(alice, 1, 100).await.expect("replays"),
            Replay::ResyncRequired { latest: 4 }
        ),
        "a cursor inside the pruned part must resync"
    );
    storage.close().await;
}

#[tokio::test]
async fn sqlite_feeds_are_converted_to_references() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("duet.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = Database::connect(&url).await.expect("SQLite opens");
    converts(&db, SqlOptions::sqlite(&path, true)).await;
    db.close().await.expect("closes");
}

#[tokio::test]
async fn postgres_feeds_are_converted_to_references() {
    let Some(database) = FreshPostgres::create("duet_feed_migration").await else {
        return;
    };
    let url = database.url.clone();
    let db = Database::connect(&url).await.expect("connects");
    converts(&db, SqlOptions::postgres(&url)).await;
    db.close().await.expect("closes");
    database.drop().await;
}
