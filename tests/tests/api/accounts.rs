//! Registration, login, logout, tokens and user lookup.

use reqwest::{Method, StatusCode};
use serde_json::json;

use duet_tests::{
    PASSWORD, assert_keys, assert_user_shape, assert_utc_timestamp, spawn_app, spawn_app_with,
};

#[tokio::test(flavor = "multi_thread")]
async fn registering_answers_201_with_the_user_and_a_case_folded_handle() {
    let app = spawn_app().await;

    let reply = app
        .try_register(
            &json!({"handle": "Alice.B_1", "password": PASSWORD, "display_name": "Alice B."}),
        )
        .await;

    let user = reply.expect(StatusCode::CREATED);
    assert_user_shape(&user);
    assert_eq!(user["handle"], "alice.b_1");
    assert_eq!(user["display_name"], "Alice B.");
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_without_a_display_name_uses_the_handle() {
    let app = spawn_app().await;

    let user = app.register("bob").await;

    assert_eq!(user["display_name"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shortest_and_longest_valid_values_are_accepted() {
    let app = spawn_app().await;
    let long_handle = "a".repeat(32);
    let long_name = "n".repeat(64);
    let long_password = "p".repeat(128);

    let shortest = json!({"handle": "abc", "password": "12345678", "display_name": "x"});
    let longest =
        json!({"handle": long_handle, "password": long_password, "display_name": long_name});

    let (short, long) = tokio::join!(app.try_register(&shortest), app.try_register(&longest));

    assert_eq!(short.expect(StatusCode::CREATED)["handle"], "abc");
    assert_eq!(
        long.expect(StatusCode::CREATED)["display_name"],
        json!(long_name)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_a_taken_handle_answers_409_whatever_its_case() {
    let app = spawn_app().await;
    app.register("alice").await;

    for handle in ["alice", "ALICE", "Alice"] {
        let reply = app
            .try_register(&json!({"handle": handle, "password": "another password"}))
            .await;
        reply.expect_error(StatusCode::CONFLICT, "handle_taken");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_handles_passwords_and_display_names_answer_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"handle": "ab", "password": PASSWORD}), "handle"),
        (
            json!({"handle": "a".repeat(33), "password": PASSWORD}),
            "handle",
        ),
        (json!({"handle": "al ice", "password": PASSWORD}), "handle"),
        (json!({"handle": "alicé", "password": PASSWORD}), "handle"),
        (json!({"handle": "alice!", "password": PASSWORD}), "handle"),
        (json!({"handle": "", "password": PASSWORD}), "handle"),
        (
            json!({"handle": "alice", "password": "1234567"}),
            "password",
        ),
        // Seven characters in fourteen bytes: passwords are counted in characters.
        (
            json!({"handle": "alice", "password": "ééééééé"}),
            "password",
        ),
        (
            json!({"handle": "alice", "password": "p".repeat(129)}),
            "password",
        ),
        (
            json!({"handle": "alice", "password": PASSWORD, "display_name": ""}),
            "display_name",
        ),
        (
            json!({"handle": "alice", "password": PASSWORD, "display_name": "   "}),
            "display_name",
        ),
        (
            json!({"handle": "alice", "password": PASSWORD, "display_name": "n".repeat(65)}),
            "display_name",
        ),
    ];

    for (body, field) in cases {
        let reply = app.try_register(&body).await;
        let message = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            message.contains(field),
            "{body} → message {message:?} does not name {field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_in_answers_201_with_a_token_the_user_and_an_expiry() {
    let app = spawn_app().await;
    let registered = app.register("alice").await;

    let session = app
        .login("alice", PASSWORD)
        .await
        .expect(StatusCode::CREATED);

    assert_keys(&session, &["token", "user", "expires_at"]);
    assert_eq!(session["user"], registered);
    assert_utc_timestamp(&session["expires_at"]);
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(session["expires_at"].as_str().expect("a string"))
            .expect("RFC 3339");
    // The default session lifetime is 720 hours.
    let lifetime = expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::hours(719) && lifetime <= chrono::Duration::hours(720),
        "expires_at {expires_at} is not 720 h from now"
    );
    let token = session["token"].as_str().expect("a token");
    assert!(!token.is_empty());
    let me = app.get("/v1/me", Some(token)).await.expect(StatusCode::OK);
    assert_eq!(me, registered);
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_in_accepts_the_handle_in_any_case() {
    let app = spawn_app().await;
    let registered = app.register("alice").await;

    let session = app
        .login("ALICE", PASSWORD)
        .await
        .expect(StatusCode::CREATED);

    assert_eq!(session["user"], registered);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_and_an_unknown_handle_get_the_same_401() {
    let app = spawn_app().await;
    app.register("alice").await;

    let wrong_password = app.login("alice", "not the password").await;
    let unknown_handle = app.login("nobody", PASSWORD).await;
    let malformed_handle = app.login("!!", PASSWORD).await;

    wrong_password.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    unknown_handle.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    malformed_handle.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong_password.json, unknown_handle.json);
    assert_eq!(wrong_password.json, malformed_handle.json);
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_out_answers_204_and_the_token_stops_working_at_once() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let other_session = app.login_token("alice").await;

    let reply = app
        .call(
            Method::DELETE,
            "/v1/sessions/current",
            Some(&alice.token),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(reply.text, "");
    app.get("/v1/me", Some(&alice.token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(
        Method::DELETE,
        "/v1/sessions/current",
        Some(&alice.token),
        None,
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Only that session ends: the user's other session still works.
    let me = app
        .get("/v1/me", Some(&other_session))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me["id"], alice.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_protected_route_answers_401_without_a_valid_token() {
    let app = spawn_app().await;
    let conversation = uuid::Uuid::now_v7();
    let routes = [
        (Method::DELETE, "/v1/sessions/current".to_owned(), None),
        (Method::GET, "/v1/me".to_owned(), None),
        (Method::GET, "/v1/users/alice".to_owned(), None),
        (
            Method::POST,
            "/v1/conversations".to_owned(),
            Some(json!({"peer_handle": "alice"})),
        ),
        (Method::GET, "/v1/conversations".to_owned(), None),
        (
            Method::GET,
            format!("/v1/conversations/{conversation}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/conversations/{conversation}/messages"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/conversations/{conversation}/messages"),
            Some(json!({"client_msg_id": "c1", "body": "hi"})),
        ),
        (
            Method::POST,
            format!("/v1/conversations/{conversation}/read"),
            Some(json!({"seq": 0})),
        ),
        (Method::GET, "/v1/sync?since=0".to_owned(), None),
    ];
    // A well-formed token (user id in hex, a dot, a secret) that was never issued.
    let unknown = format!(
        "Bearer {}.{}",
        uuid::Uuid::now_v7().simple(),
        "s".repeat(43)
    );
    let authorizations = [
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer garbage"),
        Some("Basic YWxpY2U6cGFzc3dvcmQ="),
        Some(unknown.as_str()),
    ];

    for (method, path, body) in &routes {
        for authorization in authorizations {
            let reply = app
                .call_with_authorization(method.clone(), path, authorization, body.as_ref())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}: {}",
                reply.text
            );
            reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_answers_401() {
    // A session lifetime of zero hours: every token is expired as soon as it is issued.
    let app = spawn_app_with(&[("auth.session_ttl_hours", "0")]).await;
    app.register("alice").await;
    let token = app.login_token("alice").await;

    app.get("/v1/me", Some(&token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn me_answers_the_caller() {
    let app = spawn_app().await;
    let registered = app.register("alice").await;
    let token = app.login_token("alice").await;

    let me = app.get("/v1/me", Some(&token)).await.expect(StatusCode::OK);

    assert_user_shape(&me);
    assert_eq!(me, registered);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_is_found_by_handle_in_any_case_and_an_unknown_one_is_404() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let bob = app.register("bob").await;

    let found = app
        .get("/v1/users/bob", Some(&alice.token))
        .await
        .expect(StatusCode::OK);
    let found_upper = app
        .get("/v1/users/BOB", Some(&alice.token))
        .await
        .expect(StatusCode::OK);

    assert_eq!(found, bob);
    assert_eq!(found_upper, bob);
    for handle in ["nobody", "a!", "bob'%20OR%20'1'='1", "bob%25", "bob%00"] {
        app.get(&format!("/v1/users/{handle}"), Some(&alice.token))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_the_same_handle_concurrently_creates_one_user() {
    let app = spawn_app().await;
    let handles = ["alice", "ALICE", "Alice", "alice", "aLiCe"];

    let bodies = handles.map(|h| json!({"handle": h, "password": PASSWORD}));

    let replies = futures::future::join_all(bodies.iter().map(|b| app.try_register(b))).await;

    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        reply.expect_error(StatusCode::CONFLICT, "handle_taken");
    }
    let session = app
        .login("alice", PASSWORD)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(session["user"], created[0].json);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pruner_deletes_expired_sessions_and_keeps_valid_ones() {
    // Two processes on one database: one hands out sessions that expire at once.
    let lasting = spawn_app_with(&[("delivery.prune_interval_secs", "1")]).await;
    let expiring = lasting
        .spawn_another(&[("auth.session_ttl_hours", "0")])
        .await;
    let [alice] = expiring.register_users(["alice"]).await;
    let [bob] = lasting.register_users(["bob"]).await;
    let mut databases = Vec::new();
    for url in lasting.database_urls() {
        databases.push(
            duet_tests::postgres::connect(&url)
                .await
                .expect("the test database opens"),
        );
    }

    duet_tests::eventually("the expired session to be deleted", || async {
        let mut left = 0;
        for db in &databases {
            left +=
                duet_tests::postgres::query_i64(db, "SELECT COUNT(*) AS value FROM sessions").await;
        }
        (left == 1).then_some(())
    })
    .await;
    lasting
        .get("/v1/me", Some(&bob.token))
        .await
        .expect(StatusCode::OK);
    lasting
        .get("/v1/me", Some(&alice.token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
