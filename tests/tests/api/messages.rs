//! Sending (idempotent, gap-free under concurrency) and reading history.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use duet_tests::{assert_keys, assert_message_shape, seqs, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn sending_answers_201_with_the_message_at_seq_1() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;

    let message = app
        .send_raw(&alice, &id, "client-1", "hello, bob")
        .await
        .expect(StatusCode::CREATED);

    assert_message_shape(&message);
    assert_eq!(message["conversation_id"], id.as_str());
    assert_eq!(message["seq"], 1);
    assert_eq!(message["sender_id"], alice.id.as_str());
    assert_eq!(message["client_msg_id"], "client-1");
    assert_eq!(message["body"], "hello, bob");
}

#[tokio::test(flavor = "multi_thread")]
async fn both_members_can_send_and_history_is_ascending_by_seq() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let m1 = app.send(&alice, &id, "hi").await;
    let m2 = app.send(&bob, &id, "hello").await;
    let m3 = app.send(&alice, &id, "how are you?").await;

    let page = app.history(&bob, &id, "").await;

    assert_keys(&page, &["items", "has_more"]);
    assert_eq!(page["items"], json!([m1, m2, m3]));
    assert_eq!(page["has_more"], false);
    assert_eq!(seqs(&[m1, m2, m3]), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_of_a_new_conversation_is_empty() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;

    let page = app.history(&alice, &id, "").await;

    assert_eq!(page, json!({"items": [], "has_more": false}));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_retries_with_one_client_id_store_one_message() {
    let app = Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let alice = Arc::new(alice);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, alice, id) = (Arc::clone(&app), Arc::clone(&alice), id.clone());
            tokio::spawn(async move { app.send_raw(&alice, &id, "retry-me", "only once").await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("the task does not panic"));
    }

    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let replayed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((created, replayed), (1, 19), "statuses: {statuses:?}");
    let first = &replies[0].json;
    assert_message_shape(first);
    for reply in &replies {
        assert_eq!(&reply.json, first, "every answer is the one stored message");
    }
    assert_eq!(first["seq"], 1);
    let history = app.all_history(&alice, &id).await;
    assert_eq!(history, vec![first.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_answers_200_with_the_original_even_with_a_different_body() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let original = app
        .send_raw(&alice, &id, "c-1", "the original")
        .await
        .expect(StatusCode::CREATED);
    app.send(&alice, &id, "in between").await;

    let retry = app
        .send_raw(&alice, &id, "c-1", "a different body")
        .await
        .expect(StatusCode::OK);

    assert_eq!(retry, original);
    let history = app.all_history(&alice, &id).await;
    assert_eq!(seqs(&history), vec![1, 2]);
    let next = app.send(&alice, &id, "after the retry").await;
    assert_eq!(next["seq"], 3, "a replay must not consume a seq");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_id_is_scoped_to_its_sender_and_conversation() {
    let app = spawn_app().await;
    let [alice, bob, carol] = app.register_users(["alice", "bob", "carol"]).await;
    let with_bob = app.open_conversation(&alice, &bob).await;
    let with_carol = app.open_conversation(&alice, &carol).await;
    let mine = app
        .send_raw(&alice, &with_bob, "same-id", "from alice")
        .await
        .expect(StatusCode::CREATED);

    let bobs = app.send_raw(&bob, &with_bob, "same-id", "from bob").await;
    let elsewhere = app
        .send_raw(&alice, &with_carol, "same-id", "to carol")
        .await;

    let bobs = bobs.expect(StatusCode::CREATED);
    assert_eq!(bobs["seq"], 2);
    assert_ne!(bobs["id"], mine["id"]);
    let elsewhere = elsewhere.expect(StatusCode::CREATED);
    assert_eq!(elsewhere["seq"], 1);
    assert_eq!(elsewhere["conversation_id"], with_carol.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_senders_get_gap_free_seqs_with_no_duplicates() {
    const TASKS_PER_USER: usize = 10;
    const MESSAGES_PER_TASK: usize = 5;
    let app = Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;

    let mut tasks = Vec::new();
    for user in [alice.clone(), bob.clone()] {
        for task in 0..TASKS_PER_USER {
            let (app, user, id) = (Arc::clone(&app), user.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..MESSAGES_PER_TASK {
                    let client_id = format!("{}-{task}-{i}", user.handle);
                    let reply = app.send_raw(&user, &id, &client_id, &client_id).await;
                    sent.push(reply.expect(StatusCode::CREATED));
                }
                sent
            }));
        }
    }
    let mut per_task: Vec<Vec<Value>> = Vec::new();
    for task in tasks {
        per_task.push(task.await.expect("a sender task does not panic"));
    }

    let total = 2 * TASKS_PER_USER * MESSAGES_PER_TASK;
    let history = app.all_history(&alice, &id).await;
    let expected_seqs: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(
        seqs(&history),
        expected_seqs,
        "history seqs are not exactly 1..={total}"
    );
    let ids: HashSet<&str> = history
        .iter()
        .map(|m| m["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids.len(), total, "duplicate message ids");
    let stored: HashSet<String> = history
        .iter()
        .map(|m| m["client_msg_id"].as_str().expect("a client id").to_owned())
        .collect();
    let sent: HashSet<String> = per_task
        .iter()
        .flatten()
        .map(|m| m["client_msg_id"].as_str().expect("a client id").to_owned())
        .collect();
    assert_eq!(stored, sent);
    for m in &history {
        let expected_sender = if m["body"].as_str().is_some_and(|b| b.starts_with("alice-")) {
            &alice.id
        } else {
            &bob.id
        };
        assert_eq!(m["sender_id"], expected_sender.as_str(), "{m}");
    }
    // One task sent one after another, so its seqs increase.
    for sent in &per_task {
        let task_seqs = seqs(sent);
        assert!(task_seqs.windows(2).all(|w| w[0] < w[1]), "{task_seqs:?}");
    }
    let conversation = app.conversation(&bob, &id).await;
    assert_eq!(conversation["last_seq"], total as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_backwards_and_forwards_neither_repeat_nor_skip() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let sent = app.send_many(&alice, &id, "m", 25).await;

    // Backwards from the newest: 16..=25, 6..=15, 1..=5.
    let mut backwards = Vec::new();
    let mut pages = Vec::new();
    let mut query = "?limit=10".to_owned();
    loop {
        let page = app.history(&bob, &id, &query).await;
        let items = page["items"].as_array().expect("items").clone();
        pages.push((seqs(&items), page["has_more"].clone()));
        let first = items.first().map(|m| m["seq"].as_i64().expect("a seq"));
        backwards.splice(0..0, items);
        match (page["has_more"].as_bool(), first) {
            (Some(true), Some(first)) => query = format!("?limit=10&before_seq={first}"),
            _ => break,
        }
        assert!(pages.len() <= 4, "paging does not end: {pages:?}");
    }
    assert_eq!(
        pages,
        vec![
            ((16..=25).collect(), json!(true)),
            ((6..=15).collect(), json!(true)),
            ((1..=5).collect(), json!(false)),
        ]
    );
    assert_eq!(backwards, sent);

    // Forwards from the start: 1..=10, 11..=20, 21..=25.
    let mut forwards = Vec::new();
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .history(&bob, &id, &format!("?limit=10&after_seq={after}"))
            .await;
        let items = page["items"].as_array().expect("items").clone();
        pages.push((seqs(&items), page["has_more"].clone()));
        if let Some(last) = items.last() {
            after = last["seq"].as_i64().expect("a seq");
        }
        forwards.extend(items);
        if page["has_more"] != json!(true) {
            break;
        }
        assert!(pages.len() <= 4, "paging does not end: {pages:?}");
    }
    assert_eq!(
        pages,
        vec![
            ((1..=10).collect(), json!(true)),
            ((11..=20).collect(), json!(true)),
            ((21..=25).collect(), json!(false)),
        ]
    );
    assert_eq!(forwards, sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_at_the_edges_are_exact() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 5).await;

    let newest_two = app.history(&alice, &id, "?limit=2").await;
    let all_five = app.history(&alice, &id, "?limit=5").await;
    let before_first = app.history(&alice, &id, "?before_seq=1").await;
    let after_last = app.history(&alice, &id, "?after_seq=5").await;
    let before_three = app.history(&alice, &id, "?before_seq=3").await;
    let after_three = app.history(&alice, &id, "?after_seq=3&limit=2").await;
    let window = app.history(&alice, &id, "?after_seq=1&before_seq=5").await;

    assert_eq!(
        (seqs_of(&newest_two), &newest_two["has_more"]),
        (vec![4, 5], &json!(true))
    );
    assert_eq!(
        (seqs_of(&all_five), &all_five["has_more"]),
        (vec![1, 2, 3, 4, 5], &json!(false))
    );
    assert_eq!(before_first, json!({"items": [], "has_more": false}));
    assert_eq!(after_last, json!({"items": [], "has_more": false}));
    assert_eq!(
        (seqs_of(&before_three), &before_three["has_more"]),
        (vec![1, 2], &json!(false))
    );
    assert_eq!(
        (seqs_of(&after_three), &after_three["has_more"]),
        (vec![4, 5], &json!(false))
    );
    assert_eq!(
        seqs_of(&window),
        vec![2, 3, 4],
        "both bounds apply: {window}"
    );
}

fn seqs_of(page: &Value) -> Vec<i64> {
    seqs(page["items"].as_array().expect("items"))
}

#[tokio::test(flavor = "multi_thread")]
async fn any_utf8_body_round_trips_exactly() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let bodies = [
        "héllo 👋🏽 — ½ 漢字",
        "  leading and trailing spaces  ",
        "line one\nline two\r\n\ttabbed",
        "quotes ' \" ` and <b>markup</b> & %s %n {{}}",
        "'; DROP TABLE messages; --",
        "\u{202e}right-to-left override",
    ];

    for body in bodies {
        let sent = app.send(&alice, &id, body).await;
        assert_eq!(sent["body"], body);
    }

    let stored: Vec<Value> = app.all_history(&bob, &id).await;
    let stored: Vec<&str> = stored
        .iter()
        .map(|m| m["body"].as_str().expect("a body"))
        .collect();
    assert_eq!(stored, bodies);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_with_a_nul_character_is_refused_with_422_and_uses_no_seq() {
    // PostgreSQL text cannot hold U+0000, so every backend refuses it up front.
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;

    let reply = app.send_raw(&alice, &id, "c-nul", "before\u{0}after").await;
    reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(app.all_history(&bob, &id).await.is_empty());
}
