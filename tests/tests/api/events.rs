//! The WebSocket `GET /v1/events` as a connection: authentication, typing, ping, malformed
//! and oversized frames. Replay and delivery are in `replay`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use duet_tests::{spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_header_authenticates_and_ready_carries_the_current_cursor() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 2).await;
    let cursor = app.delivered(&bob, &id, 2).await;

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
async fn a_logout_closes_the_open_event_stream_at_the_next_session_check() {
    let app = spawn_app_with(&[("server.ws_session_check_secs", "1")]).await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let mut kept = app.ws_connect(&alice, None).await;
    let mut revoked = app.ws_connect(&bob, None).await;
    kept.expect_type("ready").await;
    revoked.expect_type("ready").await;

    app.call(
        reqwest::Method::DELETE,
        "/v1/sessions/current",
        Some(&bob.token),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    revoked.assert_closed_within(Duration::from_secs(5)).await;
    // A session that is still valid keeps its stream through several checks.
    kept.assert_nothing_pending(Duration::from_millis(2500))
        .await;
    kept.send(&json!({"type": "ping"})).await;
    assert_eq!(kept.next().await, json!({"type": "pong"}));
}
