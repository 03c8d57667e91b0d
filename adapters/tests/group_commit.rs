//! Group commit of appends, batched inbox delivery and the relay claim, over real databases:
//! a temporary SQLite file, and a fresh PostgreSQL database per test (dropped after). Without
//! PostgreSQL at 127.0.0.1:5432 the PostgreSQL half prints `SKIPPED:` and returns, unless
//! CI=true, where it fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use duet_adapters::sql::{GroupCommitOptions, SqlOptions, SqlStorage};
use duet_domain::accounts::{AccountStore, Handle, NewUser, User};
use duet_domain::conversations::{
    AppendOutcome, Appended, Conversation, ConversationStore, HistoryQuery, Message, NewMessage,
};
use duet_domain::events::{Delivered, DurableEvent, Outbox};
use duet_domain::inbox::{FeedEventBody, InboxStore, InboxUpdate, Replay};
use duet_domain::{ConversationId, MessageId, UserId};
use futures::future::join_all;
use sea_orm::{ConnectionTrait, Database};

mod support;

use support::{FreshPostgres, unique_name};

/// Options that hold a batch open long enough for every append a test starts at once.
fn wide_batches() -> GroupCommitOptions {
    GroupCommitOptions {
        max_batch: 256,
        max_delay: Duration::from_millis(50),
        writers: 1,
        inline_delivery: false,
    }
}

/// Wide batches that deliver inline.
fn wide_batches_delivering_inline() -> GroupCommitOptions {
    GroupCommitOptions {
        inline_delivery: true,
        ..wide_batches()
    }
}

fn sqlite_options(path: &std::path::Path) -> SqlOptions {
    SqlOptions::sqlite(path, true)
}

fn postgres_options(url: String) -> SqlOptions {
    SqlOptions::postgres(&url)
}

/// Runs `scenario` on storages over a fresh SQLite file; the folder is removed after.
async fn on_sqlite<F, Fut>(group_commit: GroupCommitOptions, scenario: F)
where
    F: FnOnce(Vec<SqlStorage>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir: PathBuf = std::env::temp_dir().join(unique_name("duet_group_commit"));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let options = sqlite_options(&dir.join("duet.db"));
    let storage = SqlStorage::connect_with(options, group_commit)
        .await
        .expect("SQLite opens");
    storage.migrate().await.expect("migrations apply");
    scenario(vec![storage.clone()]).await;
    storage.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `scenario` on `processes` storages (as if separate processes) over one fresh
/// PostgreSQL database, dropped after.
async fn on_postgres<F, Fut>(group_commit: GroupCommitOptions, processes: usize, scenario: F)
where
    F: FnOnce(Vec<SqlStorage>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = FreshPostgres::create("duet_group_commit").await else {
        return;
    };
    let url = database.url.clone();
    let mut storages = Vec::new();
    for _ in 0..processes {
        let storage = SqlStorage::connect_with(postgres_options(url.clone()), group_commit)
            .await
            .expect("PostgreSQL connects");
        storage.migrate().await.expect("migrations apply");
        storages.push(storage);
    }
    scenario(storages.clone()).await;
    for storage in storages {
        storage.close().await;
    }
    database.drop().await;
}

async fn user(storage: &SqlStorage) -> UserId {
    let id = UserId::generate();
    let handle = Handle::parse(&unique_name("u")).expect("a valid handle");
    storage
        .create_user(NewUser {
            user: User {
                id,
                handle,
                display_name: "test".into(),
                created_at: duet_domain::clock::now(),
            },
            password_hash: "not-a-hash".into(),
        })
        .await
        .expect("the user is stored");
    id
}

async fn conversation(storage: &SqlStorage, a: UserId, b: UserId) -> ConversationId {
    let (stored, _) = storage
        .open(Conversation::new_between(a, b, duet_domain::clock::now()))
        .await
        .expect("the conversation opens");
    stored.id
}

fn new_message(conversation: ConversationId, sender: UserId, client_id: &str) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        conversation_id: conversation,
        sender_id: sender,
        client_msg_id: client_id.to_owned(),
        body: format!("body of {client_id}"),
        created_at: duet_domain::clock::now(),
    }
}

fn created(answer: Option<AppendOutcome>) -> Message {
    created_with_deliveries(answer).0
}

/// A new message and what its append delivered inline.
fn created_with_deliveries(answer: Option<AppendOutcome>) -> (Message, Vec<Delivered>) {
    match answer {
        Some(AppendOutcome {
            appended: Appended::Created(message),
            delivered,
        }) => (message, delivered),
        other => panic!("expected a new message, got {other:?}"),
    }
}

async fn all_messages(storage: &SqlStorage, id: ConversationId) -> Vec<Message> {
    storage
        .history(
            id,
            HistoryQuery {
                before_seq: None,
                after_seq: Some(0),
                limit: 1000,
            },
        )
        .await
        .expect("history reads")
}

/// Every pending outbox event, by message id (message events only).
async fn outbox_messages(storage: &SqlStorage) -> BTreeMap<MessageId, Message> {
    storage
        .pending(10_000)
        .await
        .expect("the outbox reads")
        .into_iter()
        .filter_map(|entry| match entry.event.body {
            duet_domain::inbox::FeedEventBody::MessageCreated { message } => {
                Some((message.id, message))
            }
            duet_domain::inbox::FeedEventBody::ConversationRead { .. } => None,
        })
        .collect()
}

async fn appends_to_several_conversations_in_one_batch(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b, c) = (
        user(storage).await,
        user(storage).await,
        user(storage).await,
    );
    let conversations = [
        conversation(storage, a, b).await,
        conversation(storage, a, c).await,
        conversation(storage, b, c).await,
    ];
    let members = [(a, b), (a, c), (b, c)];
    let sends = (0..30).map(|i| {
        let (x, y) = members[i % 3];
        let sender = if i % 2 == 0 { x } else { y };
        storage.append(new_message(conversations[i % 3], sender, &format!("m{i}")))
    });
    let answers: Vec<Message> = join_all(sends)
        .await
        .into_iter()
        .map(|r| {
            let (message, delivered) = created_with_deliveries(r.expect("append"));
            assert_eq!(
                delivered,
                vec![],
                "without inline delivery, the outbox delivers"
            );
            message
        })
        .collect();

    let outbox = outbox_messages(storage).await;
    for id in conversations {
        let stored = all_messages(storage, id).await;
        let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "gap-free seqs in {id}");
        for message in &stored {
            assert_eq!(
                outbox.get(&message.id),
                Some(message),
                "outbox row of seq {}",
                message.seq
            );
            assert!(
                answers.contains(message),
                "the caller was answered with what is stored"
            );
        }
        let conversation = storage.conversation(id, a).await.expect("reads");
        if let Some(conversation) = conversation {
            assert_eq!(conversation.last_seq, 10);
        }
    }
    assert_eq!(outbox.len(), 30);
}

async fn a_client_id_twice_in_one_batch(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;
    let answers = join_all([
        storage.append(new_message(id, a, "same")),
        storage.append(new_message(id, a, "same")),
        storage.append(new_message(id, b, "same")),
    ])
    .await;
    let answers: Vec<Appended> = answers
        .into_iter()
        .map(|r| {
            r.expect("append")
                .expect("the conversation exists")
                .appended
        })
        .collect();
    let (first, second) = match (&answers[0], &answers[1]) {
        (Appended::Created(first), Appended::Replayed(second)) => (first, second),
        other => panic!("expected created then replayed, got {other:?}"),
    };
    assert_eq!(first, second, "the retry answers the original message");
    assert!(
        matches!(&answers[2], Appended::Created(m) if m.sender_id == b),
        "the same client id from the other member is a different message"
    );
    let again = storage
        .append(new_message(id, a, "same"))
        .await
        .expect("append");
    assert_eq!(again, Some(Appended::Replayed(first.clone()).into()));
    assert_eq!(all_messages(storage, id).await.len(), 2);
    assert_eq!(outbox_messages(storage).await.len(), 2);
}

/// A conversation that does not exist, and one the sender is not in, fail only their own
/// appends and write nothing.
async fn a_missing_conversation_in_a_batch(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b, stranger) = (
        user(storage).await,
        user(storage).await,
        user(storage).await,
    );
    let id = conversation(storage, a, b).await;
    let nowhere = ConversationId::between(a, UserId::generate());
    let answers = join_all([
        storage.append(new_message(nowhere, a, "lost")),
        storage.append(new_message(id, stranger, "intruding")),
        storage.append(new_message(id, a, "kept")),
    ])
    .await;
    let mut answers = answers.into_iter();
    assert_eq!(answers.next().map(|r| r.expect("no error")), Some(None));
    assert_eq!(answers.next().map(|r| r.expect("no error")), Some(None));
    let kept = created(answers.next().expect("three answers").expect("no error"));
    assert_eq!(kept.seq, 1);
    assert_eq!(all_messages(storage, id).await, vec![kept.clone()]);
    assert_eq!(
        outbox_messages(storage)
            .await
            .into_values()
            .collect::<Vec<_>>(),
        vec![kept]
    );
}

/// With inline delivery, a batch writes both inboxes in its own transaction: no outbox row
/// is left for the relay, each member's feed holds every message once in seq order, and each
/// append answers the feed events it added (one per member), for its caller to push live.
async fn messages_delivered_inline(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;

    let sent: Vec<(Message, Vec<Delivered>)> = join_all((0..5).map(|n| {
        let sender = if n % 2 == 0 { a } else { b };
        storage.append(new_message(id, sender, &format!("inline-{n}")))
    }))
    .await
    .into_iter()
    .map(|answer| created_with_deliveries(answer.expect("append")))
    .collect();

    assert_eq!(
        outbox_messages(storage).await.len(),
        0,
        "nothing left to relay"
    );
    let mut seqs: Vec<i64> = sent.iter().map(|(m, _)| m.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    for user in [a, b] {
        let Replay::Events(feed) = storage.replay(user, 0, 100).await.expect("replay") else {
            panic!("no resync expected");
        };
        let feed: Vec<_> = feed
            .into_iter()
            .filter(|event| matches!(event.body, FeedEventBody::MessageCreated { .. }))
            .collect();
        let fed: Vec<i64> = feed.iter().map(|event| event.body.seq()).collect();
        assert_eq!(fed, vec![1, 2, 3, 4, 5], "feed of {user}");
        let entry = storage
            .entry(user, id)
            .await
            .expect("entry")
            .expect("an inbox entry");
        assert_eq!(entry.last_seq, 5);
        let mut answered: Vec<_> = sent
            .iter()
            .flat_map(|(_, delivered)| delivered)
            .filter(|delivered| delivered.user == user)
            .map(|delivered| delivered.event.clone())
            .collect();
        answered.sort_by_key(|event| event.cursor);
        assert_eq!(answered, feed, "what the appends answered for {user}");
    }
    for (message, delivered) in &sent {
        let mut users: Vec<UserId> = delivered.iter().map(|d| d.user).collect();
        users.sort_unstable();
        let mut members = vec![a, b];
        members.sort_unstable();
        assert_eq!(users, members, "both members of seq {}", message.seq);
    }
}

/// A message the database refuses (PostgreSQL text cannot hold NUL; the API refuses one before
/// it gets this far) fails its whole batch, which is then retried append by append: only that
/// append fails, the others are stored with gap-free seqs and their outbox rows.
async fn a_message_the_database_refuses_in_a_batch(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;
    let mut refused = new_message(id, a, "refused");
    refused.body = "a NUL \0 inside".to_owned();

    let answers = join_all([
        storage.append(new_message(id, a, "before")),
        storage.append(refused),
        storage.append(new_message(id, b, "after")),
    ])
    .await;

    let mut answers = answers.into_iter();
    let before = created(answers.next().expect("three answers").expect("stored"));
    assert!(
        answers.next().expect("three answers").is_err(),
        "the refused message fails"
    );
    let after = created(answers.next().expect("three answers").expect("stored"));
    assert_eq!((before.seq, after.seq), (1, 2));
    assert_eq!(
        all_messages(storage, id).await,
        vec![before.clone(), after.clone()]
    );
    let mut relayed: Vec<Message> = outbox_messages(storage).await.into_values().collect();
    relayed.sort_by_key(|message| message.seq);
    assert_eq!(relayed, vec![before, after]);
}

async fn many_concurrent_appends(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;
    let sends = (0..200).map(|i| {
        // Spread over every "process" the scenario has.
        let storage = storages[i % storages.len()].clone();
        let sender = if i % 3 == 0 { b } else { a };
        async move {
            storage
                .append(new_message(id, sender, &format!("c{i}")))
                .await
        }
    });
    let answers: Vec<Message> = join_all(sends.map(tokio::spawn))
        .await
        .into_iter()
        .map(|r| created(r.expect("no panic").expect("append")))
        .collect();
    let stored = all_messages(storage, id).await;
    assert_eq!(
        stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    let mut answered: Vec<i64> = answers.iter().map(|m| m.seq).collect();
    answered.sort_unstable();
    assert_eq!(
        answered,
        (1..=200).collect::<Vec<_>>(),
        "each caller got its own seq"
    );
    let outbox = outbox_messages(storage).await;
    for message in &stored {
        assert_eq!(outbox.get(&message.id), Some(message));
    }
    assert_eq!(outbox.len(), 200);
}

async fn one_client_id_raced_from_two_processes(storages: Vec<SqlStorage>) {
    let (a, b) = (user(&storages[0]).await, user(&storages[0]).await);
    let id = conversation(&storages[0], a, b).await;
    let sends = (0..20).map(|i| {
        let storage = storages[i % storages.len()].clone();
        tokio::spawn(async move { storage.append(new_message(id, a, "raced")).await })
    });
    let answers: Vec<Appended> = join_all(sends)
        .await
        .into_iter()
        .map(|r| {
            r.expect("no panic")
                .expect("no error")
                .expect("exists")
                .appended
        })
        .collect();
    let created = answers
        .iter()
        .filter(|a| matches!(a, Appended::Created(_)))
        .count();
    assert_eq!(created, 1, "exactly one append creates the message");
    assert_eq!(all_messages(&storages[0], id).await.len(), 1);
}

/// A lone sender's appends commit at once, in batches of one, however long `max_delay` is:
/// there is no company to wait for. (With the options below, waiting would take 10 s each.)
async fn a_lone_sender_does_not_wait_for_company(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;
    for i in 1..=3 {
        let append = storage.append(new_message(id, a, &format!("alone{i}")));
        let answer = tokio::time::timeout(Duration::from_secs(5), append)
            .await
            .expect("a lone append commits without waiting out max_delay");
        assert_eq!(created(answer.expect("append")).seq, i);
    }
}

async fn a_batch_applied_twice(storages: Vec<SqlStorage>) {
    let storage = &storages[0];
    let (a, b) = (user(storage).await, user(storage).await);
    let id = conversation(storage, a, b).await;
    for i in 0..5 {
        let sender = if i == 4 { b } else { a };
        created(
            storage
                .append(new_message(id, sender, &format!("d{i}")))
                .await
                .expect("append"),
        );
    }
    let events: Vec<DurableEvent> = storage
        .pending(100)
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| e.event)
        .collect();
    let updates: Vec<InboxUpdate<'_>> = events.iter().flat_map(InboxUpdate::for_members).collect();
    let first = storage.apply_many(&updates).await.expect("first apply");
    assert!(
        first.iter().all(Option::is_some),
        "every event is new the first time"
    );
    for member in [a, b] {
        let cursors: Vec<i64> = updates
            .iter()
            .zip(&first)
            .filter(|(u, _)| u.user == member)
            .filter_map(|(_, applied)| applied.as_ref().map(|e| e.cursor))
            .collect();
        assert_eq!(cursors, vec![1, 2, 3, 4, 5], "gap-free cursors of {member}");
        assert_eq!(storage.latest_cursor(member).await.expect("cursor"), 5);
    }
    let second = storage.apply_many(&updates).await.expect("second apply");
    assert!(
        second.iter().all(Option::is_none),
        "nothing is applied twice"
    );
    for member in [a, b] {
        assert_eq!(storage.latest_cursor(member).await.expect("cursor"), 5);
    }
    let entry = storage
        .entry(b, id)
        .await
        .expect("entry")
        .expect("b has an entry");
    assert_eq!((entry.last_seq, entry.read_seq, entry.version), (5, 5, 5));
    let entry = storage
        .entry(a, id)
        .await
        .expect("entry")
        .expect("a has an entry");
    assert_eq!(
        (entry.last_seq, entry.read_seq, entry.peer_read_seq),
        (5, 4, 5)
    );
}

async fn one_relay_claims_a_shard_at_a_time(storages: Vec<SqlStorage>) {
    let (first, second) = (&storages[0], &storages[1]);
    let (a, b) = (user(first).await, user(first).await);
    let id = conversation(first, a, b).await;
    created(
        first
            .append(new_message(id, a, "claimed"))
            .await
            .expect("append"),
    );
    let claimed = first.pending(10).await.expect("outbox");
    assert_eq!(claimed.len(), 1);
    assert!(
        second.pending(10).await.expect("outbox").is_empty(),
        "another process's relay skips a claimed shard"
    );
    second.release().await;
    first.release().await;
    let again = second.pending(10).await.expect("outbox");
    assert_eq!(
        again, claimed,
        "a released claim leaves its entries in place"
    );
    second.remove(&again).await.expect("remove");
    assert!(first.pending(10).await.expect("outbox").is_empty());
}

/// Batches held open far longer than any test step: only an append with company may wait.
fn lingering_batches() -> GroupCommitOptions {
    GroupCommitOptions {
        max_delay: Duration::from_secs(10),
        ..wide_batches()
    }
}

#[tokio::test]
async fn sqlite_a_lone_sender_does_not_wait_for_company() {
    on_sqlite(lingering_batches(), a_lone_sender_does_not_wait_for_company).await;
}

#[tokio::test]
async fn postgres_a_lone_sender_does_not_wait_for_company() {
    on_postgres(
        lingering_batches(),
        1,
        a_lone_sender_does_not_wait_for_company,
    )
    .await;
}

#[tokio::test]
async fn sqlite_batches_mixing_conversations_keep_seqs_and_outbox_rows() {
    on_sqlite(
        wide_batches(),
        appends_to_several_conversations_in_one_batch,
    )
    .await;
}

#[tokio::test]
async fn postgres_batches_mixing_conversations_keep_seqs_and_outbox_rows() {
    on_postgres(
        wide_batches(),
        1,
        appends_to_several_conversations_in_one_batch,
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_client_id_twice_in_one_batch_is_stored_once() {
    on_sqlite(wide_batches(), a_client_id_twice_in_one_batch).await;
}

#[tokio::test]
async fn postgres_a_client_id_twice_in_one_batch_is_stored_once() {
    on_postgres(wide_batches(), 1, a_client_id_twice_in_one_batch).await;
}

#[tokio::test]
async fn sqlite_a_missing_conversation_fails_only_its_own_append() {
    on_sqlite(wide_batches(), a_missing_conversation_in_a_batch).await;
}

#[tokio::test]
async fn postgres_a_missing_conversation_fails_only_its_own_append() {
    on_postgres(wide_batches(), 1, a_missing_conversation_in_a_batch).await;
}

#[tokio::test]
async fn sqlite_messages_are_delivered_in_their_own_transaction() {
    on_sqlite(wide_batches_delivering_inline(), messages_delivered_inline).await;
}

#[tokio::test]
async fn postgres_messages_are_delivered_in_their_own_transaction() {
    on_postgres(
        wide_batches_delivering_inline(),
        1,
        messages_delivered_inline,
    )
    .await;
}

#[tokio::test]
async fn postgres_a_message_the_database_refuses_fails_only_its_own_append() {
    on_postgres(wide_batches(), 1, a_message_the_database_refuses_in_a_batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_many_concurrent_appends_get_gap_free_seqs() {
    on_sqlite(GroupCommitOptions::default(), many_concurrent_appends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_many_concurrent_appends_from_two_processes_get_gap_free_seqs() {
    on_postgres(GroupCommitOptions::default(), 2, many_concurrent_appends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_client_id_raced_from_two_processes_is_stored_once() {
    on_postgres(
        GroupCommitOptions::default(),
        2,
        one_client_id_raced_from_two_processes,
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_batch_applied_twice_is_applied_once() {
    on_sqlite(GroupCommitOptions::default(), a_batch_applied_twice).await;
}

#[tokio::test]
async fn postgres_a_batch_applied_twice_is_applied_once() {
    on_postgres(GroupCommitOptions::default(), 1, a_batch_applied_twice).await;
}

#[tokio::test]
async fn postgres_one_relay_claims_a_shard_at_a_time() {
    on_postgres(
        GroupCommitOptions::default(),
        2,
        one_relay_claims_a_shard_at_a_time,
    )
    .await;
}

/// A queue whose hand-off fails, as a bug would, for one event id.
struct FailingFor(uuid::Uuid);

#[async_trait::async_trait]
impl duet_domain::events::EventQueue for FailingFor {
    async fn publish(&self, events: &[DurableEvent]) -> Result<(), duet_domain::StoreError> {
        if events.iter().any(|e| e.id == self.0) {
            return Err(duet_domain::StoreError::Unexpected(anyhow::anyhow!(
                "delivery of {} always fails",
                self.0
            )));
        }
        Ok(())
    }
}

#[tokio::test]
async fn sqlite_an_entry_that_always_fails_is_set_aside_and_the_rest_flow() {
    use duet_domain::events::Relay;
    use std::sync::Arc;

    let dir = std::env::temp_dir().join(unique_name("duet_poison"));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("duet.db");
    let storage = SqlStorage::connect(sqlite_options(&path))
        .await
        .expect("SQLite opens");
    storage.migrate().await.expect("migrations apply");
    let (a, b) = (user(&storage).await, user(&storage).await);
    let id = conversation(&storage, a, b).await;
    for i in 0..3 {
        created(
            storage
                .append(new_message(id, a, &format!("p{i}")))
                .await
                .expect("append"),
        );
    }
    let entries = storage.pending(10).await.expect("outbox");
    let poison = entries[1].clone();
    let relay = Relay::new(
        Arc::new(storage.clone()),
        Arc::new(FailingFor(poison.event.id)),
        10,
    )
    .with_max_attempts(3);

    // The entry before the poison goes through on the first run; the poison blocks the rest
    // until its third failure sets it aside.
    assert!(relay.run_once().await.is_err());
    assert_eq!(
        storage.pending(10).await.expect("outbox"),
        entries[1..].to_vec()
    );
    assert!(relay.run_once().await.is_err());
    assert_eq!(relay.run_once().await.expect("set aside, then relayed"), 2);
    assert!(storage.pending(10).await.expect("outbox").is_empty());
    storage.close().await;

    let db = Database::connect(format!("sqlite://{}", path.display()))
        .await
        .expect("opens");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT id, error FROM outbox_dead_letters",
        ))
        .await
        .expect("reads")
        .expect("one dead letter");
    assert_eq!(row.try_get::<i64>("", "id").expect("id"), poison.id);
    let error: String = row.try_get("", "error").expect("error");
    assert!(error.contains("always fails"), "the cause is kept: {error}");
    let _ = db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
