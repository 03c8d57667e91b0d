//! Stopping the process and starting a new one on the same database loses nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use duet_tests::{PASSWORD, TestApp, TestUser, WsClient, eventually, seqs, spawn_app};

/// Everything a user can observe about their state, read from storage.
async fn snapshot(app: &TestApp, user: &TestUser, conversation: &str) -> Value {
    let mut ws = app.ws_connect(user, Some(0)).await;
    let (replay, ready) = ws.until_ready().await;
    ws.close().await;
    json!({
        "me": app.get("/v1/me", Some(&user.token)).await.expect(StatusCode::OK),
        "conversation": app.conversation(user, conversation).await,
        "history": app.all_history(user, conversation).await,
        "list": app.list(user, "").await,
        "sync": app.sync(user, 0).await,
        "replay": replay,
        "ready": ready,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_accounts_sessions_messages_positions_and_cursors() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "before", 3).await;
    app.send(&bob, &id, "reply").await;
    app.mark_read(&alice, &id, 4).await.expect(StatusCode::OK);
    // Let delivery settle so both inboxes hold everything before the snapshot.
    for user in [&alice, &bob] {
        eventually("both inboxes to settle", || async {
            let entry = app.sync(user, 0).await["changes"][0].clone();
            let truth = app.conversation(user, &id).await;
            let settled = ["last_seq", "read_seq", "peer_read_seq"]
                .iter()
                .all(|k| entry[*k] == truth[*k] && truth[*k] == 4);
            settled.then_some(())
        })
        .await;
    }
    let alice_before = snapshot(&app, &alice, &id).await;
    let bob_before = snapshot(&app, &bob, &id).await;

    let app = app.restart().await;

    assert_eq!(
        snapshot(&app, &alice, &id).await,
        alice_before,
        "alice's state changed"
    );
    assert_eq!(
        snapshot(&app, &bob, &id).await,
        bob_before,
        "bob's state changed"
    );
    let session = app
        .login("alice", PASSWORD)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(session["user"], alice_before["me"]);
    app.try_register(&json!({"handle": "alice", "password": PASSWORD}))
        .await
        .expect_error(StatusCode::CONFLICT, "handle_taken");
    let next = app.send(&bob, &id, "after the restart").await;
    assert_eq!(next["seq"], 5);
    assert_eq!(
        app.try_open(&alice, "bob").await.expect(StatusCode::OK)["id"],
        id.as_str()
    );
    let synced = eventually("the new message to reach alice's inbox", || async {
        let page = app
            .sync(
                &alice,
                alice_before["sync"]["cursor"].as_i64().expect("a cursor"),
            )
            .await;
        (page["changes"][0]["last_seq"] == 5).then_some(page)
    })
    .await;
    assert!(
        synced["cursor"].as_i64() > alice_before["sync"]["cursor"].as_i64(),
        "cursors continue to grow"
    );
    assert_eq!(
        seqs(&app.all_history(&alice, &id).await),
        vec![1, 2, 3, 4, 5]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_acknowledged_just_before_a_stop_reaches_both_inboxes_after_the_restart() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let sent = app.send(&alice, &id, "last words").await;

    let app = app.restart().await;

    for user in [&alice, &bob] {
        let entry = eventually("the message to reach the inbox", || async {
            let entry = app.sync(user, 0).await["changes"][0].clone();
            (entry["last_seq"] == 1).then_some(entry)
        })
        .await;
        assert_eq!(entry["last_message"], sent);
    }
    let mut ws = app.ws_connect(&bob, Some(0)).await;
    let (replay, _) = ws.until_ready().await;
    assert_eq!(replay.len(), 1, "{replay:?}");
    assert_eq!(replay[0]["message"], sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_app_closes_open_websockets_and_finishes() {
    let mut app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let mut sockets: Vec<WsClient> = Vec::new();
    for _ in 0..2 {
        let mut ws = app.ws_connect(&alice, None).await;
        ws.expect_type("ready").await;
        sockets.push(ws);
    }

    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the app stops although sockets are open");

    for ws in &mut sockets {
        ws.assert_closed().await;
    }
}
