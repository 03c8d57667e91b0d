//! Limits: request bodies over `server.max_body_bytes` (413) and login and registration
//! attempts over `auth.attempts_per_minute` per client address (429), and sends over
//! `limits.sends_per_second` per user (429).

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use duet_tests::{PASSWORD, Reply, assert_error_body, spawn_app_with};

/// Asserts a 429 with the documented body and a `Retry-After` of 1–60 seconds.
#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_error_body(&reply.headers, &reply.json, &reply.text, "rate_limited");
    let retry_after: u64 = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After header in {:?}", reply.headers));
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_max_body_bytes_answers_413_and_writes_nothing() {
    let app = spawn_app_with(&[("server.max_body_bytes", "1024")]).await;
    let (alice, _, id) = app.alice_and_bob().await;

    let big_send = app.send_raw(&alice, &id, "c-big", &"x".repeat(2000)).await;
    let big_registration = app
        .try_register(
            &json!({"handle": "carol", "password": PASSWORD, "display_name": "d".repeat(2000)}),
        )
        .await;

    big_send.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    big_registration.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(app.history(&alice, &id, "").await["items"], json!([]));
    assert_eq!(
        app.send_raw(&alice, &id, "c-big", "small")
            .await
            .expect(StatusCode::CREATED)["seq"],
        1
    );
    app.login("carol", PASSWORD)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_body_over_max_body_bytes_answers_413() {
    // Without Content-Length the size cannot be checked up front; the limit must still hold.
    let app = spawn_app_with(&[("server.max_body_bytes", "1024")]).await;
    let body = json!({"handle": "carol", "password": PASSWORD, "display_name": "d".repeat(4000)})
        .to_string();
    let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let request = format!(
        "POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}"
    );

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server answers within 10 s")
    .expect("reads");
    let response = String::from_utf8_lossy(&response);

    let status_line = response.lines().next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 413"), "got {response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_login_attempts_answer_429_with_retry_after() {
    let app = spawn_app_with(&[("auth.attempts_per_minute", "3")]).await;

    for _ in 0..3 {
        app.login("nobody", PASSWORD)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let limited = app.login("nobody", PASSWORD).await;
    // A client cannot escape the limit by claiming another address (no trusted proxy).
    let spoofed = app
        .client
        .post(app.url("/v1/sessions"))
        .header("X-Forwarded-For", "203.0.113.7")
        .json(&json!({"handle": "nobody", "password": PASSWORD}))
        .send()
        .await
        .expect("the request reaches the server");

    assert_rate_limited(&limited);
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other routes are not limited.
    let live = app.get("/health/live", None).await;
    assert_eq!(live.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_registrations_answer_429_with_retry_after() {
    let app = spawn_app_with(&[("auth.attempts_per_minute", "3")]).await;

    for handle in ["user1", "user2"] {
        app.register(handle).await;
    }
    app.try_register(&json!({"handle": "user1", "password": PASSWORD}))
        .await
        .expect_error(StatusCode::CONFLICT, "handle_taken");
    let limited = app
        .try_register(&json!({"handle": "user3", "password": PASSWORD}))
        .await;

    assert_rate_limited(&limited);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_budget() {
    let app = spawn_app_with(&[
        ("auth.attempts_per_minute", "3"),
        ("server.trust_forwarded_for", "true"),
    ])
    .await;
    let attempt = |address: &'static str| {
        app.client
            .post(app.url("/v1/sessions"))
            .header("X-Forwarded-For", address)
            .json(&json!({"handle": "nobody", "password": PASSWORD}))
            .send()
    };

    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(
            attempt("198.51.100.1")
                .await
                .expect("reaches the server")
                .status(),
        );
    }
    let other = attempt("198.51.100.2")
        .await
        .expect("reaches the server")
        .status();

    assert_eq!(
        first,
        vec![
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(other, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attempt_limit_applies_to_login_and_registration_only() {
    let app = spawn_app_with(&[("auth.attempts_per_minute", "3")]).await;
    let alice = app.register_and_login("alice").await;

    // Whether registration and login share one budget or not, the third wrong login at the
    // latest is over the limit of three.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.login("alice", "wrong password").await.status);
    }

    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    for _ in 0..5 {
        let me = app.get("/v1/me", Some(&alice.token)).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_over_the_per_user_limit_answer_429_and_store_nothing() {
    let app = spawn_app_with(&[("limits.sends_per_second", "1"), ("limits.send_burst", "3")]).await;
    let (alice, bob, id) = app.alice_and_bob().await;

    // The burst goes through; the next send at once is refused and stores nothing.
    for i in 0..3 {
        app.send_raw(&alice, &id, &format!("burst-{i}"), "hi")
            .await
            .expect(StatusCode::CREATED);
    }
    let refused = app.send_raw(&alice, &id, "over", "too fast").await;
    assert_rate_limited(&refused);
    assert_eq!(app.all_history(&alice, &id).await.len(), 3);

    // The limit is per user: Bob still sends.
    app.send_raw(&bob, &id, "bob-1", "my turn")
        .await
        .expect(StatusCode::CREATED);
    // And Alice's quota refills: the refused client id works once it has.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = app.send_raw(&alice, &id, "over", "later").await;
    assert_eq!(later.expect(StatusCode::CREATED)["seq"], 5);
}
