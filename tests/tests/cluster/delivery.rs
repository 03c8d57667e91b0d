//! Live delivery across processes: a device connected to one process receives what was
//! sent through another, and read receipts and typing travel back the same way.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread")]
async fn a_message_sent_through_one_process_reaches_a_device_on_another_and_the_receipt_comes_back()
{
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let (a, b, c) = (cluster.at(0), cluster.at(1), cluster.at(2));
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = b.open_conversation(&alice, &bob).await;
    let mut bob_on_a = a.ws_connect(&bob, None).await;
    bob_on_a.expect_type("ready").await;
    let mut alice_on_c = c.ws_connect(&alice, None).await;
    alice_on_c.expect_type("ready").await;

    // Sent through B, received live by Bob's device on A.
    let sent = b.send(&alice, &id, "hello from B").await;
    let frame = bob_on_a.expect_type("message.created").await;
    assert_eq!(
        frame["message"], sent,
        "Bob's device got the message as stored"
    );
    // Alice's own device (on C) hears about her message too.
    let own = alice_on_c.expect_type("message.created").await;
    assert_eq!(own["message"]["id"], sent["id"]);

    // Bob reads it through C; Alice's device on C and Bob's on A both get the receipt.
    c.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);
    let receipt = alice_on_c.expect_type("conversation.read").await;
    assert_eq!(receipt["reader_id"], bob.id.as_str());
    assert_eq!(receipt["read_seq"], 1);
    let own_receipt = bob_on_a.expect_type("conversation.read").await;
    assert_eq!(own_receipt["read_seq"], 1);

    // Typing is relayed across processes too, never stored.
    bob_on_a
        .send(&json!({"type": "typing", "conversation_id": id}))
        .await;
    assert_eq!(
        alice_on_c.next().await,
        json!({"type": "typing", "conversation_id": id, "user_id": bob.id})
    );
    alice_on_c
        .assert_nothing_pending(Duration::from_millis(200))
        .await;

    // Each process logs to a file, not a terminal: plain text, no colour escape codes.
    let log = a.log();
    assert!(log.contains("duet is serving"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_delivered_once_to_both_inboxes_whichever_process_delivers_it() {
    const MESSAGES: usize = 60;
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let [alice, bob] = cluster.at(0).register_users(["alice", "bob"]).await;
    let id = cluster.at(0).open_conversation(&alice, &bob).await;
    let mut bob_on_c = cluster.at(2).ws_connect(&bob, None).await;
    bob_on_c.expect_type("ready").await;

    // Sends spread over the three processes; JetStream spreads delivery over them too.
    for i in 0..MESSAGES {
        cluster
            .at(i % 3)
            .send(&alice, &id, &format!("message {i}"))
            .await;
    }
    let mut seqs = Vec::new();
    while seqs.len() < MESSAGES {
        let frame = bob_on_c.expect_type("message.created").await;
        seqs.push(frame["message"]["seq"].as_i64().expect("a seq"));
    }
    seqs.sort_unstable();
    let expected: Vec<i64> = (1..=MESSAGES as i64).collect();
    assert_eq!(seqs, expected, "each message arrived exactly once");
    bob_on_c
        .assert_nothing_pending(Duration::from_millis(300))
        .await;

    // Both inboxes counted each message once.
    let bobs = cluster.at(1).conversation(&bob, &id).await;
    assert_eq!(bobs["unread_count"], MESSAGES);
    assert_eq!(bobs["last_seq"], MESSAGES);
    let alices = cluster.at(2).conversation(&alice, &id).await;
    assert_eq!(alices["last_seq"], MESSAGES);
    assert_eq!(alices["unread_count"], 0);
}
