//! Nobody can read, write or learn the existence of a conversation they are not in.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use duet_tests::{Reply, TestApp, TestUser, seqs, spawn_app};

/// Every conversation route, called by `user` on `conversation`.
async fn every_route(app: &TestApp, user: &TestUser, conversation: &str) -> Vec<(String, Reply)> {
    let token = Some(user.token.as_str());
    let base = format!("/v1/conversations/{conversation}");
    vec![
        (format!("GET {base}"), app.get(&base, token).await),
        (
            format!("GET {base}/presence"),
            app.get(&format!("{base}/presence"), token).await,
        ),
        (
            format!("GET {base}/messages"),
            app.get(&format!("{base}/messages"), token).await,
        ),
        (
            format!("GET {base}/messages?after_seq=0"),
            app.get(&format!("{base}/messages?after_seq=0"), token)
                .await,
        ),
        (
            format!("POST {base}/messages"),
            app.call(
                Method::POST,
                &format!("{base}/messages"),
                token,
                Some(&json!({"client_msg_id": "eve-1", "body": "let me in"})),
            )
            .await,
        ),
        (
            format!("POST {base}/read"),
            app.call(
                Method::POST,
                &format!("{base}/read"),
                token,
                Some(&json!({"seq": 1})),
            )
            .await,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_member_gets_the_same_404_as_for_a_conversation_that_does_not_exist() {
    let app = spawn_app().await;
    let [alice, bob, eve] = app.register_users(["alice", "bob", "eve"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "private").await;
    let missing = uuid::Uuid::now_v7().to_string();

    let on_real = every_route(&app, &eve, &id).await;
    let on_missing = every_route(&app, &eve, &missing).await;

    for ((route, real), (_, absent)) in on_real.iter().zip(&on_missing) {
        real.expect_error(StatusCode::NOT_FOUND, "not_found");
        absent.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(
            real.json, absent.json,
            "{route}: the bodies tell the two apart"
        );
    }
    // Eve's attempts wrote nothing: no message, no read position, and the next seq is 2.
    let history = app.all_history(&bob, &id).await;
    assert_eq!(seqs(&history), vec![1]);
    let for_bob = app.conversation(&bob, &id).await;
    assert_eq!(
        (&for_bob["read_seq"], &for_bob["peer_read_seq"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(app.send(&bob, &id, "still private").await["seq"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_member_learns_nothing_from_events_sync_or_the_list() {
    let app = spawn_app().await;
    let [alice, bob, eve] = app.register_users(["alice", "bob", "eve"]).await;
    let mut eve_ws = app.ws_connect(&eve, Some(0)).await;
    let mut bob_ws = app.ws_connect(&bob, Some(0)).await;
    assert_eq!(eve_ws.next().await, json!({"type": "ready", "cursor": 0}));
    bob_ws.until_ready().await;

    let id = app.open_conversation(&alice, &bob).await;
    let sent = app.send(&alice, &id, "for bob only").await;
    app.send(&alice, &id, "also for bob").await;
    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
    // Bob's socket receiving all three proves delivery ran; Eve's must have nothing. (The
    // read is applied to Bob's own inbox at once, so with asynchronous delivery it may take
    // its cursor before the second message does.)
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(
            bob_ws.next().await["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    kinds.sort();
    assert_eq!(
        kinds,
        ["conversation.read", "message.created", "message.created"]
    );
    eve_ws
        .assert_nothing_pending(Duration::from_millis(200))
        .await;

    assert_eq!(
        app.sync(&eve, 0).await,
        json!({"changes": [], "cursor": 0, "has_more": false})
    );
    assert_eq!(
        app.list(&eve, "").await,
        json!({"items": [], "next_cursor": null})
    );
    let mut again = app.ws_connect(&eve, Some(0)).await;
    assert_eq!(again.next().await, json!({"type": "ready", "cursor": 0}));
    // And the message really was sent.
    assert_eq!(app.history(&bob, &id, "").await["items"][0], sent);
}
