//! Reads go to the replica: the app's counters say so, and a process that did not make a
//! write reads exactly the replica's older state while its replay is paused.

use serde_json::json;

use crate::support::{REPLICA_WAIT, ReplicaDb, reads, replica_app, until_the_replica_serves};
use duet_tests::eventually_within;

#[tokio::test(flavor = "multi_thread")]
async fn reads_of_a_conversation_without_recent_writes_are_served_by_the_replica() {
    let app = replica_app().await;
    let (alice, bob, id) = app.alice_and_bob().await;
    let sent = app.send_many(&alice, &id, "hello", 3).await;
    until_the_replica_serves(&app, &bob, &id).await;

    let before = reads(&app).await;
    for _ in 0..10 {
        let page = app.history(&bob, &id, "").await;
        assert_eq!(
            page["items"],
            json!(sent),
            "the replica serves the whole history"
        );
    }
    let after = reads(&app).await;

    let served = after.replica - before.replica;
    assert!(
        served >= 10.0,
        "10 history reads, {served} reads served by the replica ({before:?} → {after:?})"
    );
}

/// Another user may read slightly stale data, by design: a process that did not make a write
/// reads from a replica that has not replayed it. Seeing exactly the replica's older state
/// proves those reads run on the replica, whatever the metrics say.
#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_did_not_write_reads_the_paused_replicas_state_until_replay_resumes() {
    let writer = replica_app().await;
    let (alice, bob, id) = writer.alice_and_bob().await;
    let first = writer.send(&alice, &id, "before the pause").await;
    let reader = writer.spawn_another(&[]).await;
    let replica = ReplicaDb::connect(&writer).await;
    eventually_within(
        REPLICA_WAIT,
        "the replica to replay the first message",
        || async { replica.has_message(&first).await.then_some(()) },
    )
    .await;
    let paused = replica.pause_replay().await;

    let sent = writer.send(&alice, &id, "during the pause").await;

    assert_eq!(
        writer.history(&alice, &id, "").await["items"],
        json!([first, sent]),
        "the writing process reads its own write"
    );
    eventually_within(
        REPLICA_WAIT,
        "the other process to read the paused replica's history (the first message only)",
        || async { (reader.history(&bob, &id, "").await["items"] == json!([first])).then_some(()) },
    )
    .await;

    paused.resume().await;
    eventually_within(
        REPLICA_WAIT,
        "the other process to read the message once the replica replayed it",
        || async {
            let items = reader.history(&bob, &id, "").await["items"].clone();
            (items == json!([first, sent])).then_some(())
        },
    )
    .await;
}
