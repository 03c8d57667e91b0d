//! The WebSocket `GET /v1/events`: authentication, replay, live delivery, typing, resume.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::helpers::{
    TestApp, TestUser, assert_cursors_increase, assert_keys, assert_message_shape,
    assert_utc_timestamp, eventually, seqs, spawn_app, spawn_app_with,
};

/// Waits until `user`'s inbox shows `last_seq` for the conversation: delivery has run.
async fn delivered(app: &TestApp, user: &TestUser, conversation: &str, last_seq: i64) -> i64 {
    eventually("delivery to reach the inbox", || async {
        let page = app.sync(user, 0).await;
        let found = page["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["id"] == conversation && c["last_seq"] == last_seq);
        found.then(|| page["cursor"].as_i64().expect("a cursor"))
    })
    .await
}

/// Asserts a `message.created` frame for `message`.
#[track_caller]
fn assert_message_event(frame: &Value, message: &Value) {
    assert_keys(frame, &["type", "cursor", "message", "created_at"]);
    assert_eq!(frame["type"], "message.created");
    assert!(frame["cursor"].is_i64(), "{frame}");
    assert_message_shape(&frame["message"]);
    assert_eq!(&frame["message"], message);
    assert_utc_timestamp(&frame["created_at"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_header_authenticates_and_ready_carries_the_current_cursor() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 2).await;
    let cursor = delivered(&app, &bob, &id, 2).await;

    let mut ws = app.ws_connect(&bob, None).await;

    // Without `since` nothing is replayed: the first frame is `ready`.
    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
    ws.assert_nothing_pending(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_frame_token_authenticates() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    let mut ws = app.ws_connect_first_frame(&alice.token, None).await;

    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": 0}));
    ws.assert_nothing_pending(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_bearer_header_is_refused_with_401_before_upgrading() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let revoked = app.login_token("alice").await;
    app.call(
        reqwest::Method::DELETE,
        "/v1/sessions/current",
        Some(&revoked),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let unknown = format!("{}.{}", uuid::Uuid::now_v7().simple(), "s".repeat(43));

    for token in ["garbage", unknown.as_str(), revoked.as_str()] {
        match app.ws_try_connect(Some(token), Some(0)).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "token {token:?}"
                );
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .unwrap_or(Value::Null);
                assert_eq!(body["error"]["code"], "unauthorized", "refusal body {body}");
            }
            Err(other) => panic!("expected an HTTP 401 refusal for {token:?}, got {other}"),
            Ok(_) => panic!("the upgrade with token {token:?} was accepted"),
        }
    }
    // Alice's real token still connects.
    let mut ws = app.ws_connect(&alice, None).await;
    ws.expect_type("ready").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_first_frame_token_gets_an_error_frame_and_the_socket_closes() {
    let app = spawn_app().await;

    let mut ws = app.ws_connect_first_frame("garbage", Some(0)).await;

    let frame = ws.next().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["error"]["code"], "unauthorized", "{frame}");
    assert!(frame["error"]["message"].is_string(), "{frame}");
    ws.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_frame_that_is_not_auth_gets_unauthorized_and_the_socket_closes() {
    let app = spawn_app().await;
    let mut ws = app
        .ws_try_connect(None, None)
        .await
        .expect("the upgrade without a header succeeds");

    ws.send(&json!({"type": "ping"})).await;

    let frame = ws.next().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["error"]["code"], "unauthorized", "{frame}");
    ws.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_never_authenticates_is_closed_after_10_seconds() {
    let app = spawn_app().await;
    let mut ws = app
        .ws_try_connect(None, None)
        .await
        .expect("the upgrade without a header succeeds");
    let start = tokio::time::Instant::now();

    ws.assert_closed_within(Duration::from_secs(15)).await;

    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "closed after {waited:?}, before the 10 s grace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_replays_since_the_cursor_then_is_ready_then_streams_live_to_every_device() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let earlier = app.send_many(&alice, &id, "earlier", 2).await;
    delivered(&app, &bob, &id, 2).await;
    delivered(&app, &alice, &id, 2).await;

    let mut phone = app.ws_connect(&bob, Some(0)).await;
    let mut laptop = app.ws_connect_first_frame(&bob.token, Some(0)).await;
    let mut alice_ws = app.ws_connect(&alice, None).await;

    for device in [&mut phone, &mut laptop] {
        let (replayed, ready) = device.until_ready().await;
        assert_eq!(replayed.len(), 2, "replay: {replayed:?}");
        assert_message_event(&replayed[0], &earlier[0]);
        assert_message_event(&replayed[1], &earlier[1]);
        assert_cursors_increase(&replayed);
        assert_eq!(
            json!(ready),
            replayed[1]["cursor"],
            "ready carries the newest cursor sent"
        );
    }
    alice_ws.until_ready().await;

    let from_bob = app.send(&bob, &id, "live from bob").await;
    let from_alice = app.send(&alice, &id, "live from alice").await;

    for device in [&mut phone, &mut laptop, &mut alice_ws] {
        let first = device.next().await;
        let second = device.next().await;
        assert_message_event(&first, &from_bob);
        assert_message_event(&second, &from_alice);
        assert_cursors_increase(&[first, second]);
        device
            .assert_nothing_pending(Duration::from_millis(100))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_at_the_newest_event_replays_nothing() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "hi").await;
    let cursor = delivered(&app, &bob, &id, 1).await;

    let mut ws = app.ws_connect(&bob, Some(cursor)).await;

    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_the_future_gets_resync_with_the_newest_cursor() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "hi").await;
    let cursor = delivered(&app, &bob, &id, 1).await;

    let mut ws = app.ws_connect(&bob, Some(cursor + 100)).await;

    assert_eq!(ws.next().await, json!({"type": "resync", "cursor": cursor}));
    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
    // Still live afterwards.
    let live = app.send(&alice, &id, "after the resync").await;
    assert_message_event(&ws.next().await, &live);
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_is_relayed_to_the_peer_and_to_nobody_else() {
    let app = spawn_app().await;
    let [alice, bob, eve] = app.register_users(["alice", "bob", "eve"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let mut alice_ws = app.ws_connect(&alice, None).await;
    let mut bob_ws = app.ws_connect(&bob, None).await;
    let mut eve_ws = app.ws_connect(&eve, None).await;
    for ws in [&mut alice_ws, &mut bob_ws, &mut eve_ws] {
        ws.expect_type("ready").await;
    }

    alice_ws
        .send(&json!({"type": "typing", "conversation_id": id}))
        .await;

    assert_eq!(
        bob_ws.next().await,
        json!({"type": "typing", "conversation_id": id, "user_id": alice.id})
    );
    eve_ws
        .assert_nothing_pending(Duration::from_millis(200))
        .await;
    alice_ws.assert_nothing_pending(Duration::ZERO).await;
    // Typing is never stored: nothing to replay, no message, no inbox change.
    assert_eq!(app.history(&bob, &id, "").await["items"], json!([]));
    let mut again = app.ws_connect(&bob, Some(0)).await;
    assert_eq!(again.next().await["type"], "ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_in_a_conversation_you_are_not_in_answers_not_found_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let [alice, bob, eve] = app.register_users(["alice", "bob", "eve"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let mut bob_ws = app.ws_connect(&bob, None).await;
    let mut eve_ws = app.ws_connect(&eve, None).await;
    bob_ws.expect_type("ready").await;
    eve_ws.expect_type("ready").await;

    eve_ws
        .send(&json!({"type": "typing", "conversation_id": id}))
        .await;
    let foreign = eve_ws.expect_type("error").await;
    eve_ws
        .send(&json!({"type": "typing", "conversation_id": uuid::Uuid::now_v7()}))
        .await;
    let unknown = eve_ws.expect_type("error").await;

    assert_eq!(foreign["error"]["code"], "not_found", "{foreign}");
    assert_eq!(
        foreign, unknown,
        "a foreign conversation must look like a missing one"
    );
    bob_ws
        .assert_nothing_pending(Duration::from_millis(200))
        .await;
    eve_ws.assert_nothing_pending(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_answers_pong() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let mut ws = app.ws_connect(&alice, None).await;
    ws.expect_type("ready").await;

    for _ in 0..3 {
        ws.send(&json!({"type": "ping"})).await;
        assert_eq!(ws.next().await, json!({"type": "pong"}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_frame_answers_bad_request_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let mut ws = app.ws_connect(&alice, None).await;
    ws.expect_type("ready").await;

    for text in [
        "not json",
        "{}",
        "[]",
        r#"{"type":"dance"}"#,
        r#"{"type":"typing"}"#,
        r#"{"type":"typing","conversation_id":"not-a-uuid"}"#,
        r#"{"type":"typing","conversation_id":42}"#,
    ] {
        ws.send_text(text).await;
        let frame = ws.next().await;
        assert_eq!(frame["type"], "error", "{text} → {frame}");
        assert_eq!(frame["error"]["code"], "bad_request", "{text} → {frame}");
        assert!(frame["error"]["message"].is_string(), "{text} → {frame}");
    }
    ws.send_binary(br#"{"type":"ping"}"#).await;
    let frame = ws.next().await;
    assert_eq!(
        frame["error"]["code"], "bad_request",
        "binary frame → {frame}"
    );
    ws.send(&json!({"type": "ping"})).await;
    assert_eq!(ws.next().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_over_the_size_limit_closes_the_socket() {
    let app = spawn_app_with(&[("server.ws_max_message_bytes", "1024")]).await;
    let [alice] = app.register_users(["alice"]).await;
    let mut ws = app.ws_connect(&alice, None).await;
    ws.expect_type("ready").await;

    let padding = "x".repeat(2048);
    ws.send_text(&format!(r#"{{"type":"ping","padding":"{padding}"}}"#))
        .await;

    ws.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_since_that_is_not_a_cursor_is_refused_with_400() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    for since in ["abc", "-1", "1.5"] {
        let path = format!("/v1/events?since={since}");
        match app.ws_try_connect_path(Some(&alice.token), &path).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "since={since}");
            }
            Err(other) => panic!("expected an HTTP 400 refusal for since={since}, got {other}"),
            Ok(_) => panic!("the upgrade with since={since} was accepted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_the_url_does_not_authenticate() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    for param in ["token", "access_token", "auth"] {
        let reply = app
            .get(&format!("/v1/me?{param}={}", alice.token), None)
            .await;
        reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let mut ws = app
            .ws_try_connect_path(None, &format!("/v1/events?{param}={}", alice.token))
            .await
            .expect("the upgrade without a header succeeds");
        ws.send(&json!({"type": "ping"})).await;
        let frame = ws.next().await;
        assert_eq!(
            frame["error"]["code"], "unauthorized",
            "?{param}= authenticated: {frame}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_from_both_sides_reaches_every_device_once_in_cursor_order() {
    const PER_USER: usize = 25;
    let app = std::sync::Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let mut sockets = vec![
        app.ws_connect(&alice, Some(0)).await,
        app.ws_connect(&bob, Some(0)).await,
        app.ws_connect_first_frame(&bob.token, Some(0)).await,
    ];
    for ws in &mut sockets {
        ws.until_ready().await;
    }

    let mut tasks = Vec::new();
    for user in [alice.clone(), bob.clone()] {
        let (app, id) = (std::sync::Arc::clone(&app), id.clone());
        tasks.push(tokio::spawn(async move {
            app.send_many(&user, &id, &user.handle, PER_USER).await
        }));
    }
    for task in tasks {
        task.await.expect("a sender does not panic");
    }

    let expected: Vec<i64> = (1..=2 * PER_USER as i64).collect();
    for ws in &mut sockets {
        let mut frames = Vec::new();
        while frames.len() < expected.len() {
            let frame = ws.next().await;
            assert_eq!(frame["type"], "message.created", "{frame}");
            frames.push(frame);
        }
        assert_cursors_increase(&frames);
        let mut got = seqs(&frames);
        got.sort_unstable();
        assert_eq!(got, expected, "every message exactly once");
        ws.assert_nothing_pending(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_reconnects_from_its_last_cursor_gets_exactly_what_it_missed() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let mut ws = app.ws_connect(&bob, Some(0)).await;
    let (replayed, _) = ws.until_ready().await;
    assert_eq!(replayed, Vec::<Value>::new());

    let online = app.send_many(&alice, &id, "online", 3).await;
    let mut seen = Vec::new();
    for message in &online {
        let frame = ws.next().await;
        assert_message_event(&frame, message);
        seen.push(frame);
    }
    let last_cursor = seen[2]["cursor"].as_i64().expect("a cursor");
    ws.close().await;

    let offline = app.send_many(&alice, &id, "offline", 4).await;
    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
    delivered(&app, &bob, &id, 7).await;
    let newest = eventually("bob's read receipt to reach his feed", || async {
        let page = app.sync(&bob, 0).await;
        (page["changes"][0]["read_seq"] == 2).then(|| page["cursor"].as_i64().expect("a cursor"))
    })
    .await;

    let mut ws = app.ws_connect(&bob, Some(last_cursor)).await;
    let (missed, ready) = ws.until_ready().await;

    assert_eq!(missed.len(), 5, "missed: {missed:?}");
    for (frame, message) in missed.iter().zip(&offline) {
        assert_message_event(frame, message);
    }
    assert_eq!(missed[4]["type"], "conversation.read");
    assert_eq!(missed[4]["read_seq"], 2);
    assert_cursors_increase(&missed);
    assert!(missed[0]["cursor"].as_i64().expect("a cursor") > last_cursor);
    assert_eq!(ready, newest);
    assert_eq!(json!(ready), missed[4]["cursor"]);
    ws.assert_nothing_pending(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnecting_while_messages_are_still_being_delivered_misses_nothing_and_repeats_nothing()
{
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let first = app.send(&alice, &id, "before").await;
    delivered(&app, &bob, &id, 1).await;
    let mut ws = app.ws_connect(&bob, Some(0)).await;
    let (replayed, cursor) = ws.until_ready().await;
    assert_eq!(replayed.len(), 1);
    assert_message_event(&replayed[0], &first);
    ws.close().await;

    // Send and reconnect at once, so some events land in the replay and some arrive live.
    let (sent, ws) = tokio::join!(app.send_many(&alice, &id, "racing", 10), async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.ws_connect(&bob, Some(cursor)).await
    });
    let mut ws = ws;
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("message.created") => received.push(frame),
            Some("ready") => {}
            _ => panic!("unexpected frame {frame}"),
        }
    }

    assert_eq!(seqs(&received), (2..=11).collect::<Vec<i64>>());
    for (frame, message) in received.iter().zip(&sent) {
        assert_message_event(frame, message);
    }
    assert_cursors_increase(&received);
    ws.assert_nothing_pending(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_longer_than_one_page_is_complete() {
    // More events than the server reads per replay query (500 today), sent concurrently.
    const TASKS: usize = 10;
    const PER_TASK: usize = 51;
    let app = std::sync::Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (app, alice, id) = (std::sync::Arc::clone(&app), alice.clone(), id.clone());
            tokio::spawn(
                async move { app.send_many(&alice, &id, &format!("t{t}"), PER_TASK).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender does not panic");
    }
    let total = (TASKS * PER_TASK) as i64;
    let cursor = delivered(&app, &bob, &id, total).await;

    let mut ws = app.ws_connect(&bob, Some(0)).await;
    let (replay, ready) = ws.until_ready().await;

    assert_eq!(replay.len(), total as usize);
    assert_cursors_increase(&replay);
    let mut got = seqs(&replay);
    got.sort_unstable();
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    assert_eq!(ready, cursor);
    assert_eq!(json!(ready), replay[replay.len() - 1]["cursor"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_whose_events_were_pruned_gets_resync_and_sync_still_has_the_state() {
    // Retention of zero days: the pruner deletes every feed event on its next run.
    let app = spawn_app_with(&[
        ("delivery.feed_retention_days", "0"),
        ("delivery.prune_interval_secs", "1"),
    ])
    .await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let sent = app.send_many(&alice, &id, "m", 3).await;
    let cursor = delivered(&app, &bob, &id, 3).await;

    let first = eventually("the feed to be pruned", || async {
        let mut ws = app.ws_connect(&bob, Some(0)).await;
        let first = ws.next().await;
        (first["type"] == "resync").then_some((first, ws))
    })
    .await;
    let (resync, mut ws) = first;

    assert_eq!(resync, json!({"type": "resync", "cursor": cursor}));
    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
    let page = app.sync(&bob, 0).await;
    assert_eq!(page["changes"][0]["last_message"], sent[2]);
    assert_eq!(page["cursor"], cursor);
    // The newest cursor itself needs no replay, so it is not answered with resync.
    let mut current = app.ws_connect(&bob, Some(cursor)).await;
    assert_eq!(
        current.next().await,
        json!({"type": "ready", "cursor": cursor})
    );
    // And the stream goes on from there.
    let live = app.send(&alice, &id, "after pruning").await;
    assert_message_event(&ws.next().await, &live);
    assert_message_event(&current.next().await, &live);
}
