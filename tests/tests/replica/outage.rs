//! A replica that goes away costs speed, never correctness: every call keeps working on the
//! primary, the replica leaves the rotation, and it rejoins once it is back.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    REJOIN_WAIT, REPLICA_WAIT, ReplicaDb, ReplicaStopped, reads, replica_app,
    until_the_replica_serves, wait_for_rotation,
};
use duet_tests::{PASSWORD, TestApp, TestUser, eventually, eventually_within};

#[tokio::test(flavor = "multi_thread")]
async fn with_the_replica_stopped_every_call_still_works_and_it_rejoins_when_back() {
    let app = replica_app().await;
    let (alice, bob, id) = app.alice_and_bob().await;
    let mut sent = vec![app.send(&alice, &id, "before the outage").await];
    until_the_replica_serves(&app, &bob, &id).await;

    let stopped = ReplicaStopped::stop().await;
    every_call_works(&app, &alice, &bob, &id, &mut sent, "early").await;
    wait_for_rotation(&app, 0.0, REPLICA_WAIT).await;
    every_call_works(&app, &alice, &bob, &id, &mut sent, "later").await;
    let before = reads(&app).await;
    app.history(&bob, &id, "").await;
    let after = reads(&app).await;
    assert!(
        after.primary > before.primary && after.replica == before.replica,
        "with no replica in rotation the primary serves reads ({before:?} → {after:?})"
    );

    stopped.start().await;
    wait_for_rotation(&app, 1.0, REJOIN_WAIT).await;
    let page = until_the_replica_serves(&app, &bob, &id).await;
    assert_eq!(
        page["items"],
        json!(sent),
        "the replica serves everything after it rejoins"
    );
}

/// Checks 100 ms apart usually notice a stopped replica before any read does; here they are
/// an hour apart, so reads themselves meet the stopped replica and must fall back.
#[tokio::test(flavor = "multi_thread")]
async fn reads_that_meet_a_stopped_replica_are_answered_by_the_primary() {
    let writer = replica_app().await;
    let (alice, bob, id) = writer.alice_and_bob().await;
    let mut sent = vec![writer.send(&alice, &id, "before the outage").await];
    let replica = ReplicaDb::connect(&writer).await;
    eventually_within(
        REPLICA_WAIT,
        "the replica to replay the message",
        || async { replica.has_message(&sent[0]).await.then_some(()) },
    )
    .await;
    // A process that wrote none of these keys, and measures its replica only at start-up.
    let app = writer
        .spawn_another(&[("storage.postgres.replica_check_interval_ms", "3600000")])
        .await;
    let before = reads(&app).await;
    app.history(&bob, &id, "").await;
    let after = reads(&app).await;
    assert!(
        after.replica > before.replica,
        "the second process reads from the replica before the outage ({before:?} → {after:?})"
    );

    let stopped = ReplicaStopped::stop().await;
    every_call_works(&app, &alice, &bob, &id, &mut sent, "fallback").await;

    stopped.start().await;
}

/// Every route a client uses, with its documented answer: old users and their conversation
/// (keys the router would send to the replica), and new users who register, log in, open,
/// send and read. `sent` is alice's history so far; the new message joins it.
async fn every_call_works(
    app: &TestApp,
    alice: &TestUser,
    bob: &TestUser,
    id: &str,
    sent: &mut Vec<Value>,
    tag: &str,
) {
    app.login(&alice.handle, PASSWORD)
        .await
        .expect(StatusCode::CREATED);
    app.get(&format!("/v1/users/{}", bob.handle), Some(&alice.token))
        .await
        .expect(StatusCode::OK);
    app.get("/v1/me", Some(&bob.token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        app.history(bob, id, "").await["items"],
        json!(sent),
        "{tag}"
    );
    assert_eq!(app.list(bob, "").await["items"][0]["id"], id, "{tag}");
    app.sync(bob, 0).await;

    sent.push(app.send(alice, id, &format!("{tag}: still here")).await);
    let seq = i64::try_from(sent.len()).expect("a small seq");
    assert_eq!(app.conversation(bob, id).await["last_seq"], seq, "{tag}");
    assert_eq!(
        app.history(bob, id, "").await["items"],
        json!(sent),
        "{tag}"
    );
    let read = app.mark_read(bob, id, seq).await.expect(StatusCode::OK);
    assert_eq!(read["read_seq"], seq, "{tag}");
    app.delivered(bob, id, seq).await;

    let [carol, dave] = app
        .register_users([&format!("{tag}_carol"), &format!("{tag}_dave")])
        .await;
    let opened = app
        .try_open(&carol, &dave.handle)
        .await
        .expect(StatusCode::CREATED);
    let conversation = opened["id"].as_str().expect("a conversation id");
    let message = app.send(&carol, conversation, "hello dave").await;
    assert_eq!(
        app.history(&dave, conversation, "").await["items"],
        json!([message]),
        "{tag}"
    );
    app.mark_read(&dave, conversation, 1)
        .await
        .expect(StatusCode::OK);
    let cursor = app.delivered(&dave, conversation, 1).await;
    assert!(cursor > 0, "{tag}: sync cursor {cursor}");
    eventually("dave's list to show the conversation, read", || async {
        let list = app.list(&dave, "").await;
        let entry = &list["items"][0];
        (entry["id"] == conversation && entry["read_seq"] == 1).then_some(())
    })
    .await;
}
