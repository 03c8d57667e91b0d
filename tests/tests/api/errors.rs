//! Bad input of every kind: a 4xx with the documented JSON body, never a 5xx, nothing written.

use reqwest::{Method, StatusCode};
use serde_json::json;

use duet_tests::{PASSWORD, Reply, assert_error_body, seqs, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_answers_400() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let token = Some(alice.token.as_str());
    let cases = [
        ("/v1/accounts", None, "{not json"),
        ("/v1/accounts", None, ""),
        ("/v1/sessions", None, "{\"handle\": \"alice\","),
        ("/v1/conversations", token, "{"),
        (&*format!("/v1/conversations/{id}/messages"), token, "[1, 2"),
        (&*format!("/v1/conversations/{id}/read"), token, "nope"),
    ];

    for (path, token, body) in cases {
        let reply = app
            .call_raw(Method::POST, path, token, body.to_owned())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "POST {path} {body:?}: {}",
            reply.text
        );
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_field_answers_400() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let messages = format!("/v1/conversations/{id}/messages");
    let read = format!("/v1/conversations/{id}/read");
    let cases = [
        ("/v1/accounts", false, json!({"handle": "carol"})),
        ("/v1/accounts", false, json!({"password": PASSWORD})),
        ("/v1/sessions", false, json!({"handle": "alice"})),
        ("/v1/conversations", true, json!({})),
        (messages.as_str(), true, json!({"body": "hi"})),
        (messages.as_str(), true, json!({"client_msg_id": "c-1"})),
        (read.as_str(), true, json!({})),
    ];

    for (path, authed, body) in cases {
        let token = authed.then_some(alice.token.as_str());
        let reply = app.call(Method::POST, path, token, Some(&body)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "POST {path} {body}: {}",
            reply.text
        );
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(app.history(&alice, &id, "").await["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_of_the_wrong_type_answers_400_and_writes_nothing() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let messages = format!("/v1/conversations/{id}/messages");
    let read = format!("/v1/conversations/{id}/read");
    // Numbers and booleans where strings belong must not be coerced: `12345` would be a
    // valid handle and `7` a valid client id, so coercion would silently write.
    let cases = [
        (
            "/v1/accounts",
            false,
            json!({"handle": 12345, "password": PASSWORD}),
        ),
        (
            "/v1/accounts",
            false,
            json!({"handle": true, "password": PASSWORD}),
        ),
        (
            "/v1/accounts",
            false,
            json!({"handle": "carol", "password": ["x"]}),
        ),
        (
            "/v1/accounts",
            false,
            json!({"handle": "carol", "password": 123456789}),
        ),
        (
            "/v1/accounts",
            false,
            json!({"handle": "dave", "password": PASSWORD, "display_name": 5}),
        ),
        (
            "/v1/sessions",
            false,
            json!({"handle": "alice", "password": 12345678}),
        ),
        ("/v1/conversations", true, json!({"peer_handle": 42})),
        (
            messages.as_str(),
            true,
            json!({"client_msg_id": "c-1", "body": 5}),
        ),
        (
            messages.as_str(),
            true,
            json!({"client_msg_id": "c-2", "body": false}),
        ),
        (
            messages.as_str(),
            true,
            json!({"client_msg_id": 7, "body": "hi"}),
        ),
        (read.as_str(), true, json!({"seq": "three"})),
        (read.as_str(), true, json!({"seq": "1"})),
        (read.as_str(), true, json!({"seq": 1.5})),
        (read.as_str(), true, json!({"seq": null})),
        (read.as_str(), true, json!([1])),
    ];

    let mut wrong = Vec::new();
    for (path, authed, body) in cases {
        let token = authed.then_some(alice.token.as_str());
        let reply = app.call(Method::POST, path, token, Some(&body)).await;
        if reply.status != StatusCode::BAD_REQUEST || reply.json["error"]["code"] != "bad_request" {
            wrong.push(format!(
                "POST {path} {body} → {} {}",
                reply.status, reply.text
            ));
        } else {
            reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        }
    }

    assert!(
        wrong.is_empty(),
        "not a 400 bad_request:\n{}",
        wrong.join("\n")
    );
    assert_eq!(app.history(&alice, &id, "").await["items"], json!([]));
    for handle in ["12345", "true", "carol", "dave"] {
        app.get(&format!("/v1/users/{handle}"), Some(&alice.token))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn query_parameters_of_the_wrong_type_or_out_of_range_answer_400() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let history = format!("/v1/conversations/{id}/messages");
    let mut paths = Vec::new();
    for base in ["/v1/conversations", history.as_str(), "/v1/sync"] {
        for limit in ["0", "201", "abc", "-1", "1.5", ""] {
            paths.push(format!("{base}?limit={limit}"));
        }
    }
    paths.push(format!("{history}?before_seq=abc"));
    paths.push(format!("{history}?after_seq=x"));
    paths.push(format!("{history}?before_seq=-1"));
    paths.push(format!("{history}?after_seq=-1"));
    paths.push("/v1/sync?since=abc".to_owned());
    paths.push("/v1/sync?since=-1".to_owned());
    paths.push("/v1/conversations?cursor=abc".to_owned());
    paths.push("/v1/conversations?cursor=-1".to_owned());

    for path in &paths {
        let reply = app.get(path, Some(&alice.token)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "GET {path}: {}",
            reply.text
        );
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // The bounds themselves are fine.
    for base in ["/v1/conversations", history.as_str(), "/v1/sync"] {
        for limit in [1, 200] {
            let reply = app
                .get(&format!("{base}?limit={limit}"), Some(&alice.token))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "GET {base}?limit={limit}: {}",
                reply.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_id_that_is_not_a_uuid_answers_400() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let token = Some(alice.token.as_str());

    let replies = [
        app.get("/v1/conversations/not-a-uuid", token).await,
        app.get("/v1/conversations/12345/messages", token).await,
        app.post(
            "/v1/conversations/not-a-uuid/messages",
            token,
            &json!({"client_msg_id": "c-1", "body": "hi"}),
        )
        .await,
        app.post(
            "/v1/conversations/not-a-uuid/read",
            token,
            &json!({"seq": 0}),
        )
        .await,
    ];

    for reply in replies {
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn message_bodies_are_non_blank_and_at_most_4096_bytes() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let refused = [
        String::new(),
        "   \n\t ".to_owned(),
        "x".repeat(4097),
        // 2049 characters but 4098 bytes: the limit counts bytes.
        "é".repeat(2049),
        format!("{}€", "x".repeat(4094)),
    ];

    for body in &refused {
        let reply = app.send_raw(&alice, &id, "c-refused", body).await;
        let message = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(message.contains("body"), "{} bytes → {message}", body.len());
    }
    let exactly = app.send_raw(&alice, &id, "c-4096", &"x".repeat(4096)).await;
    let multibyte = app
        .send_raw(&alice, &id, "c-multibyte", &"é".repeat(2048))
        .await;

    assert_eq!(
        exactly.expect(StatusCode::CREATED)["seq"],
        1,
        "refused sends consumed a seq"
    );
    let multibyte = multibyte.expect(StatusCode::CREATED);
    assert_eq!(multibyte["seq"], 2);
    assert_eq!(multibyte["body"], json!("é".repeat(2048)));
    // The client id of the refused sends was never stored, so it is free to use.
    let reused = app.send_raw(&alice, &id, "c-refused", "now valid").await;
    assert_eq!(reused.expect(StatusCode::CREATED)["seq"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_message_ids_are_1_to_64_visible_ascii_characters() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let refused = [
        String::new(),
        "c".repeat(65),
        "has space".to_owned(),
        "café".to_owned(),
        "tab\t".to_owned(),
    ];

    for client_id in &refused {
        let reply = app.send_raw(&alice, &id, client_id, "hello").await;
        let message = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            message.contains("client_msg_id"),
            "{client_id:?} → {message}"
        );
    }
    let longest = app.send_raw(&alice, &id, &"c".repeat(64), "hello").await;
    let shortest = app.send_raw(&alice, &id, "c", "hello").await;

    assert_eq!(longest.expect(StatusCode::CREATED)["seq"], 1);
    assert_eq!(shortest.expect(StatusCode::CREATED)["seq"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_send_does_not_consume_a_seq() {
    let app = spawn_app().await;
    let (alice, bob, id) = app.alice_and_bob().await;
    app.send_many(&alice, &id, "m", 3).await;

    app.send_raw(&alice, &id, "c-x", "")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.call_raw(
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&bob.token),
        "{",
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.mark_read(&bob, &id, 9)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let next = app.send(&bob, &id, "next").await;
    assert_eq!(next["seq"], 4);
    assert_eq!(seqs(&app.all_history(&bob, &id).await), vec![1, 2, 3, 4]);
    assert_eq!(app.conversation(&bob, &id).await["read_seq"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_registration_claims_nothing() {
    let app = spawn_app().await;

    app.try_register(&json!({"handle": "carol", "password": "short"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.try_register(&json!({"handle": "carol", "password": PASSWORD, "display_name": ""}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.login("carol", "short")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let carol = app.register("carol").await;
    assert_eq!(carol["handle"], "carol");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_route_answers_404_in_json() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    let replies = [
        app.get("/nope", None).await,
        app.get("/v1/nope", None).await,
        app.get("/v1/nope", Some(&alice.token)).await,
        app.post("/v2/accounts", None, &json!({})).await,
    ];

    for reply in replies {
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_route_with_the_wrong_method_answers_405_in_json() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    let replies = [
        app.call(Method::PATCH, "/v1/me", Some(&alice.token), None)
            .await,
        app.call(Method::GET, "/v1/accounts", None, None).await,
        app.call(Method::PUT, "/v1/sessions", None, None).await,
    ];

    for reply in replies {
        reply.expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_but_well_framed_requests_get_a_documented_4xx_never_a_5xx() {
    let app = spawn_app().await;
    let (alice, _, id) = app.alice_and_bob().await;
    let token = Some(alice.token.as_str());
    let huge_seq = json!({"seq": i64::MAX});
    let without_content_type = app
        .client
        .post(app.url("/v1/conversations"))
        .bearer_auth(&alice.token)
        .body(r#"{"peer_handle": "bob"}"#)
        .send()
        .await
        .expect("the request reaches the server");
    let replies = [
        Reply::read(without_content_type).await,
        app.post(&format!("/v1/conversations/{id}/read"), token, &huge_seq)
            .await,
        app.get(
            &format!("/v1/conversations/{id}/messages?before_seq=-5"),
            token,
        )
        .await,
        app.get(
            &format!("/v1/conversations/{id}/messages?after_seq=99999999999999999999"),
            token,
        )
        .await,
        app.get("/v1/sync?since=-1", token).await,
        app.get("/v1/users/%00", token).await,
        app.post("/v1/conversations", token, &json!({"peer_handle": "\u{0}"}))
            .await,
        app.post(
            "/v1/accounts",
            None,
            &json!({"handle": "a\u{0}b", "password": PASSWORD}),
        )
        .await,
    ];

    for reply in replies {
        assert!(
            reply.status.is_client_error(),
            "expected a 4xx, got {} {}",
            reply.status,
            reply.text
        );
        let code = match reply.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            other => panic!("{other} is not a status this input can get: {}", reply.text),
        };
        assert_error_body(&reply.headers, &reply.json, &reply.text, code);
    }
}
