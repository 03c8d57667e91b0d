//! A process dies mid-stream (SIGKILL, no graceful shutdown): no acknowledged message is
//! lost. Clients reconnect to another process, senders retry with the same client id.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::support::Cluster;
use duet_tests::{TestApp, TestUser, eventually};

/// Sends `count` messages, each through the first process in `targets` that answers,
/// retrying a failed send with the same client id on the next process (what a client behind
/// a load balancer does). Returns the acknowledged messages.
async fn send_with_failover(
    targets: &[&TestApp],
    user: &TestUser,
    id: &str,
    count: usize,
    acked: Arc<Mutex<Vec<Value>>>,
) {
    for i in 0..count {
        let client_id = uuid::Uuid::now_v7().to_string();
        let body = format!("message {i}");
        let mut sent = None;
        for attempt in 0..20 {
            let target = targets[attempt % targets.len()];
            let reply = target
                .client
                .post(target.url(&format!("/v1/conversations/{id}/messages")))
                .bearer_auth(&user.token)
                .timeout(std::time::Duration::from_secs(5))
                .json(&json!({"client_msg_id": client_id, "body": body}))
                .send()
                .await;
            // A connection error or a 5xx from a dying process: retry elsewhere.
            if let Ok(reply) = reply
                && (reply.status() == StatusCode::CREATED || reply.status() == StatusCode::OK)
            {
                sent = Some(reply.json::<Value>().await.expect("a JSON message"));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        acked
            .lock()
            .await
            .push(sent.unwrap_or_else(|| panic!("message {i} was never acknowledged")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_processes_mid_stream_loses_no_acknowledged_message() {
    const MESSAGES: usize = 150;
    let Some(mut cluster) = Cluster::start(3).await else {
        return;
    };
    let [alice, bob] = cluster.at(2).register_users(["alice", "bob"]).await;
    let id = cluster.at(2).open_conversation(&alice, &bob).await;

    // Bob listens on process 0; Alice sends through process 1, failing over to 2.
    let mut bob_ws = cluster.at(0).ws_connect(&bob, Some(0)).await;
    bob_ws.expect_type("ready").await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (alice, id, acked) = (alice.clone(), id.clone(), Arc::clone(&acked));
        let one = cluster.at(1).handle();
        let two = cluster.at(2).handle();
        tokio::spawn(async move {
            send_with_failover(&[&one, &two], &alice, &id, MESSAGES, acked).await;
        })
    };

    // Bob receives some, then both his process and the sender's are killed mid-stream.
    let mut received = BTreeSet::new();
    let mut cursor = 0;
    while received.len() < 20 {
        let frame = bob_ws.expect_type("message.created").await;
        received.insert(frame["message"]["seq"].as_i64().expect("a seq"));
        cursor = frame["cursor"].as_i64().expect("a cursor");
    }
    cluster.processes[0].kill().await;
    cluster.processes[1].kill().await;
    sender.await.expect("the sender finishes");

    // Bob reconnects to the surviving process with his cursor and gets everything else.
    let acked = acked.lock().await.clone();
    assert_eq!(acked.len(), MESSAGES);
    let survivor = cluster.at(2);
    let mut again = survivor.ws_connect(&bob, Some(cursor)).await;
    let (replayed, _) = again.until_ready().await;
    for frame in replayed {
        if frame["type"] == "message.created" {
            received.insert(frame["message"]["seq"].as_i64().expect("a seq"));
        }
    }
    while received.len() < MESSAGES {
        let frame = again.expect_type("message.created").await;
        let seq = frame["message"]["seq"].as_i64().expect("a seq");
        assert!(received.insert(seq), "seq {seq} arrived twice");
    }
    let acked_seqs: BTreeSet<i64> = acked
        .iter()
        .map(|m| m["seq"].as_i64().expect("a seq"))
        .collect();
    assert_eq!(received, acked_seqs, "Bob got every acknowledged message");
    let expected: BTreeSet<i64> = (1..=MESSAGES as i64).collect();
    assert_eq!(acked_seqs, expected, "each message was stored exactly once");

    // The stored history is exactly the acknowledged messages.
    let history = survivor.all_history(&bob, &id).await;
    assert_eq!(history.len(), MESSAGES);
    let bobs = eventually("Bob's inbox to count every message", || async {
        let entry = survivor.conversation(&bob, &id).await;
        (entry["last_seq"] == MESSAGES).then_some(entry)
    })
    .await;
    assert_eq!(bobs["unread_count"], MESSAGES);
}
