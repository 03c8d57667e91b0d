//! `GET /v1/sync`: what changed since a cursor, and a cursor to come back with.

use reqwest::StatusCode;
use serde_json::{Value, json};

use duet_tests::{
    TestApp, TestUser, assert_conversation_shape, assert_keys, eventually, spawn_app,
};

/// Polls sync until every conversation in `expected` shows the given `last_seq`.
async fn settled_sync(
    app: &TestApp,
    user: &TestUser,
    since: i64,
    expected: &[(&str, i64)],
) -> Value {
    eventually("sync to show every change", || async {
        let page = app.sync(user, since).await;
        let changes = page["changes"].as_array().cloned().unwrap_or_default();
        let all_there = changes.len() == expected.len()
            && expected.iter().all(|(id, seq)| {
                changes
                    .iter()
                    .any(|c| c["id"] == *id && c["last_seq"] == *seq)
            });
        all_there.then_some(page)
    })
    .await
}

fn ids(page: &Value) -> Vec<String> {
    page["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_syncs_nothing_at_cursor_zero() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    let page = app.sync(&alice, 0).await;

    assert_eq!(page, json!({"changes": [], "cursor": 0, "has_more": false}));
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_without_since_starts_from_the_beginning() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "hi").await;
    let from_zero = settled_sync(&app, &alice, 0, &[(&id, 1)]).await;

    let without = app
        .get("/v1/sync", Some(&alice.token))
        .await
        .expect(StatusCode::OK);

    assert_eq!(without, from_zero);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_returns_exactly_the_changed_conversations_and_a_cursor_that_yields_nothing_new() {
    let app = spawn_app().await;
    let [alice, bob, carol] = app.register_users(["alice", "bob", "carol"]).await;
    let with_bob = app.open_conversation(&alice, &bob).await;
    let with_carol = app.open_conversation(&alice, &carol).await;
    app.send(&alice, &with_bob, "hi bob").await;
    // Delivered before the next send: two conversations may live on two databases, whose
    // outboxes reach Alice's inbox in either order; the feed orders what reached it.
    app.delivered(&alice, &with_bob, 1).await;
    app.send(&alice, &with_carol, "hi carol").await;

    let everything = settled_sync(&app, &alice, 0, &[(&with_bob, 1), (&with_carol, 1)]).await;
    assert_keys(&everything, &["changes", "cursor", "has_more"]);
    assert_eq!(everything["has_more"], false);
    assert_eq!(
        ids(&everything),
        vec![with_bob.clone(), with_carol.clone()],
        "oldest change first"
    );
    let changes = everything["changes"].as_array().expect("changes");
    for change in changes {
        assert_conversation_shape(change);
    }
    let cursor = everything["cursor"].as_i64().expect("an integer cursor");
    assert_eq!(
        changes.last().map(|c| c["version"].clone()),
        Some(json!(cursor)),
        "the cursor is the version of the newest change"
    );

    let nothing_new = app.sync(&alice, cursor).await;
    assert_eq!(
        nothing_new,
        json!({"changes": [], "cursor": cursor, "has_more": false})
    );

    // Bob answers in one conversation: only that one comes back.
    let answer = app.send(&bob, &with_bob, "hi alice").await;
    let changed = settled_sync(&app, &alice, cursor, &[(&with_bob, 2)]).await;
    assert_eq!(ids(&changed), vec![with_bob.clone()]);
    let change = &changed["changes"][0];
    assert_eq!(change["last_message"], answer);
    assert_eq!(change["unread_count"], 1);
    let next = changed["cursor"].as_i64().expect("an integer cursor");
    assert!(next > cursor, "the cursor must grow: {cursor} → {next}");
    assert_eq!(change["version"], next);
    assert_eq!(
        app.sync(&alice, next).await,
        json!({"changes": [], "cursor": next, "has_more": false})
    );
    // Carol's side never saw Bob's message.
    let carols = settled_sync(&app, &carol, 0, &[(&with_carol, 1)]).await;
    assert_eq!(ids(&carols), vec![with_carol]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_pages_by_limit_neither_repeat_nor_skip() {
    let app = spawn_app().await;
    let [me, p1, p2, p3] = app
        .register_users(["myself", "peer1", "peer2", "peer3"])
        .await;
    let mut expected = Vec::new();
    for peer in [&p1, &p2, &p3] {
        let id = app.open_conversation(&me, peer).await;
        app.send(peer, &id, "hi").await;
        expected.push(id);
    }
    let full = settled_sync(
        &app,
        &me,
        0,
        &[(&expected[0], 1), (&expected[1], 1), (&expected[2], 1)],
    )
    .await;

    let mut walked = Vec::new();
    let mut has_more = Vec::new();
    let mut since = 0;
    loop {
        let page = app
            .get(&format!("/v1/sync?since={since}&limit=1"), Some(&me.token))
            .await
            .expect(StatusCode::OK);
        has_more.push(page["has_more"].clone());
        walked.extend(page["changes"].as_array().expect("changes").clone());
        since = page["cursor"].as_i64().expect("a cursor");
        if page["has_more"] != json!(true) {
            break;
        }
        assert!(has_more.len() <= 4, "paging does not end");
    }

    assert_eq!(has_more, vec![json!(true), json!(true), json!(false)]);
    assert_eq!(&json!(walked), &full["changes"]);
    assert_eq!(json!(since), full["cursor"]);
}
