//! Health checks, metrics and the API description.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use duet_tests::{TestApp, metric_sum, metric_sum_where, spawn_app};

/// Set in the child process that runs the isolated metrics test.
const ISOLATED: &str = "DUET_TESTS_ISOLATED_METRICS";

fn content_type(reply: &duet_tests::Reply) -> String {
    reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn liveness_answers_200_ok() {
    let app = spawn_app().await;

    let reply = app.get("/health/live", None).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_answers_200_ok_when_storage_is_reachable() {
    let app = spawn_app().await;

    let reply = app.get("/health/ready", None).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_prometheus_text_with_the_request_and_message_counters() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "counted").await;

    let reply = app.get("/metrics", None).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        content_type(&reply).starts_with("text/plain"),
        "{}",
        content_type(&reply)
    );
    // Other tests in this process send too, so here only presence is certain; the exact
    // count is checked in a process of its own below.
    assert!(
        metric_sum(&reply.text, "duet_messages_sent_total").is_some_and(|n| n >= 1.0),
        "{}",
        reply.text
    );
    assert!(
        metric_sum(&reply.text, "duet_http_requests_total").is_some_and(|n| n >= 5.0),
        "{}",
        reply.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_sent_total_counts_exactly_the_messages_created() {
    // The metrics recorder is global to a process and every test in this binary shares it,
    // so the exact count is taken in a fresh process running only the test below.
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "health::isolated_messages_sent_total_is_exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ISOLATED, "1")
        .output()
        .await
        .expect("the test binary runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the isolated run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the isolated test did not run:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs in a process of its own, started by messages_sent_total_counts_exactly_the_messages_created"]
async fn isolated_messages_sent_total_is_exact() {
    if std::env::var_os(ISOLATED).is_none() {
        return;
    }
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let before = app.metrics().await;
    assert_eq!(
        metric_sum(&before, "duet_messages_sent_total").unwrap_or(0.0),
        0.0,
        "{before}"
    );

    app.send_raw(&alice, &id, "c-1", "one")
        .await
        .expect(StatusCode::CREATED);
    app.send_raw(&alice, &id, "c-2", "two")
        .await
        .expect(StatusCode::CREATED);
    app.send_raw(&bob, &id, "c-1", "three")
        .await
        .expect(StatusCode::CREATED);
    app.send_raw(&alice, &id, "c-1", "retry")
        .await
        .expect(StatusCode::OK);
    app.send_raw(&alice, &id, "c-3", "")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);

    let after = app.metrics().await;
    assert_eq!(
        metric_sum(&after, "duet_messages_sent_total"),
        Some(3.0),
        "a replay or a refusal was counted:\n{after}"
    );
    // Every committed batch records each of its phases once; these sends made at least one
    // (group commit is on in every profile).
    let phase = |name: &str| {
        metric_sum_where(
            &after,
            "duet_group_commit_phase_seconds_count",
            Some(&format!("phase=\"{name}\"")),
        )
        .unwrap_or(0.0)
    };
    let commits = phase("commit");
    assert!(commits >= 1.0, "no batch committed:\n{after}");
    for name in ["begin", "read", "write"] {
        assert_eq!(phase(name), commits, "phase {name}:\n{after}");
    }
    // 2 registrations, 2 logins, 1 open, 5 sends and the first /metrics at least.
    let requests = metric_sum(&after, "duet_http_requests_total").unwrap_or(0.0);
    assert!(
        requests >= 11.0,
        "duet_http_requests_total = {requests}:\n{after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_v1_route() {
    let app = spawn_app().await;

    let reply = app.get("/openapi.json", None).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        content_type(&reply).starts_with("application/json"),
        "{}",
        content_type(&reply)
    );
    let spec = &reply.json;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    let routes = [
        ("/v1/accounts", "post"),
        ("/v1/sessions", "post"),
        ("/v1/sessions/current", "delete"),
        ("/v1/me", "get"),
        ("/v1/users/{handle}", "get"),
        ("/v1/conversations", "post"),
        ("/v1/conversations", "get"),
        ("/v1/conversations/{id}", "get"),
        ("/v1/conversations/{id}/messages", "get"),
        ("/v1/conversations/{id}/messages", "post"),
        ("/v1/conversations/{id}/read", "post"),
        ("/v1/sync", "get"),
    ];
    let paths = spec["paths"].as_object().expect("a paths object");
    for (path, method) in routes {
        assert!(
            paths.get(path).is_some_and(|p| p.get(method).is_some()),
            "{method} {path} is missing; paths are {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_interactive_docs_answer_200_html() {
    let app = spawn_app().await;

    let reply = get_following_redirects(&app, "/docs").await;

    assert_eq!(reply.0, StatusCode::OK);
    assert!(reply.1.starts_with("text/html"), "{}", reply.1);
}

/// `/docs` may redirect to `/docs/`: this client (unlike the TestApp one) follows redirects.
async fn get_following_redirects(app: &TestApp, path: &str) -> (StatusCode, String) {
    let client = reqwest::Client::new();
    let response = client
        .get(app.url(path))
        .send()
        .await
        .expect("the request reaches the server");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type)
}
