//! NATS or Redis stops: Duet degrades speed, not correctness.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::Cluster;
use duet_tests::{PASSWORD, eventually, eventually_within};

/// Long enough for the relay's backoff and NATS reconnection to come round after a restart.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn messages_sent_while_nats_is_down_arrive_exactly_once_when_it_is_back() {
    const MESSAGES: i64 = 20;
    let Some(mut cluster) = Cluster::start(2).await else {
        return;
    };
    let (a, b) = (cluster.at(0).handle(), cluster.at(1).handle());
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = a.open_conversation(&alice, &bob).await;
    let mut bob_ws = a.ws_connect(&bob, Some(0)).await;
    bob_ws.expect_type("ready").await;

    cluster.nats.stop().await;
    // Sending still works: each message is acknowledged once it is committed.
    for i in 0..MESSAGES {
        b.send(&alice, &id, &format!("while NATS is down {i}"))
            .await;
    }
    // A device connecting meanwhile gets its stream at once (the broker is not waited for)
    // and its live events once NATS is back.
    let mut alice_ws = b.ws_connect(&alice, None).await;
    alice_ws.expect_type("ready").await;
    // History reads the database, so it has them all at once.
    assert_eq!(b.all_history(&bob, &id).await.len(), MESSAGES as usize);

    cluster.nats.start().await;
    let mut seqs = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while (seqs.len() as i64) < MESSAGES {
        let frame = tokio::time::timeout_at(deadline, bob_ws.next())
            .await
            .expect("every message arrives within 30 s of NATS coming back");
        if frame["type"] == "message.created" {
            let seq = frame["message"]["seq"].as_i64().expect("a seq");
            assert!(seqs.insert(seq), "seq {seq} arrived twice");
        }
    }
    assert_eq!(seqs, (1..=MESSAGES).collect::<BTreeSet<_>>());
    bob_ws
        .assert_nothing_pending(Duration::from_millis(500))
        .await;
    let mut own = BTreeSet::new();
    while (own.len() as i64) < MESSAGES {
        let frame = tokio::time::timeout_at(deadline, alice_ws.next())
            .await
            .expect("Alice's device, connected during the outage, gets her messages too");
        if frame["type"] == "message.created" {
            own.insert(frame["message"]["seq"].as_i64().expect("a seq"));
        }
    }

    // Each event was applied once to each inbox.
    let bobs = b.conversation(&bob, &id).await;
    assert_eq!(bobs["unread_count"], MESSAGES);
    let feed = b.sync(&bob, 0).await;
    assert_eq!(feed["changes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_call_works_while_redis_is_down() {
    let Some(mut cluster) = Cluster::start(2).await else {
        return;
    };
    let (a, b) = (cluster.at(0).handle(), cluster.at(1).handle());
    // Warm the caches first, so the outage hits cached sessions and pages.
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = a.open_conversation(&alice, &bob).await;
    a.send(&alice, &id, "before the outage").await;
    b.history(&bob, &id, "").await;
    b.get("/v1/me", Some(&bob.token))
        .await
        .expect(StatusCode::OK);

    cluster.redis.stop().await;

    let [carol] = b.register_users(["carol"]).await;
    let token = b.login_token("carol").await;
    b.get("/v1/me", Some(&token)).await.expect(StatusCode::OK);
    a.get("/v1/users/alice", Some(&carol.token))
        .await
        .expect(StatusCode::OK);
    let mut bob_ws = b.ws_connect(&bob, None).await;
    bob_ws.expect_type("ready").await;
    let sent = a.send(&alice, &id, "during the outage").await;
    assert_eq!(bob_ws.expect_type("message.created").await["message"], sent);
    let page = b.history(&bob, &id, "").await;
    let bodies: Vec<_> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [json!("before the outage"), json!("during the outage")]
    );
    a.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
    // Inboxes learn of the receipt through delivery: eventually, on every process.
    eventually("the receipt to reach both inboxes", || async {
        let bobs = b.list(&bob, "").await["items"][0]["read_seq"].clone();
        let alices = b.sync(&alice, 0).await["changes"][0]["peer_read_seq"].clone();
        (bobs == 2 && alices == 2).then_some(())
    })
    .await;

    // A logout during the outage holds on every process.
    a.call(
        reqwest::Method::DELETE,
        "/v1/sessions/current",
        Some(&token),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    b.get("/v1/me", Some(&token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Redis comes back (empty): everything still answers, and the logged-out token stays out.
    cluster.redis.start().await;
    eventually_within(RECOVERY, "reads to succeed with Redis back", || async {
        let page = b.history(&bob, &id, "").await;
        (page["items"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    b.get("/v1/me", Some(&token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let relogin = b.login("carol", PASSWORD).await;
    assert_eq!(relogin.status, StatusCode::CREATED);
}

/// Delivery that falls behind slows the senders down instead of letting its lag grow: with a
/// lag limit of 1 ms, a burst of concurrent sends overtakes the relay and the consumers, and
/// some are refused with 503 `unavailable` and a `Retry-After` (stored nowhere); every send
/// that was accepted reaches the peer once, in seq order with no gap; and once delivery has
/// caught up, sends are accepted again.
#[tokio::test(flavor = "multi_thread")]
async fn sends_are_refused_while_delivery_lags_and_accepted_again_once_it_caught_up() {
    const BURST: usize = 300;
    let overrides = [
        ("delivery.max_lag_ms", "1"),
        ("delivery.lag_check_ms", "10"),
    ];
    let Some(cluster) = Cluster::start_with(2, &overrides).await else {
        return;
    };
    let (a, b) = (cluster.at(0).handle(), cluster.at(1).handle());
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = a.open_conversation(&alice, &bob).await;
    let mut bob_ws = b.ws_connect(&bob, Some(0)).await;
    bob_ws.expect_type("ready").await;

    let client_ids: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    let sends = client_ids
        .iter()
        .map(|client_id| a.send_raw(&alice, &id, client_id, "hello"));
    let replies = futures::future::join_all(sends).await;
    let mut accepted = 0;
    let mut refused = 0;
    for reply in &replies {
        if reply.status == StatusCode::CREATED {
            accepted += 1;
        } else {
            reply.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            assert_eq!(
                reply
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1"),
                "a refused send says when to retry"
            );
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "a 1 ms lag limit refused none of {BURST} concurrent sends"
    );
    assert!(accepted > 0, "the first sends of the burst are accepted");

    // What was accepted is stored gap-free and reaches Bob once, in order.
    let history = a.all_history(&alice, &id).await;
    assert_eq!(history.len(), accepted, "a refused send stored nothing");
    let mut seqs = Vec::new();
    while seqs.len() < accepted {
        let frame = tokio::time::timeout(RECOVERY, bob_ws.next())
            .await
            .expect("every accepted message reaches Bob");
        if frame["type"] == "message.created" {
            seqs.push(frame["message"]["seq"].as_i64().expect("a seq"));
        }
    }
    assert_eq!(seqs, (1..=accepted as i64).collect::<Vec<_>>());

    // Caught up: a lone send is accepted again (the lag is measured every 10 ms).
    eventually_within(RECOVERY, "a send accepted after the burst", || async {
        let reply = a
            .send_raw(&alice, &id, &uuid::Uuid::now_v7().to_string(), "after")
            .await;
        (reply.status == StatusCode::CREATED).then_some(())
    })
    .await;
}
