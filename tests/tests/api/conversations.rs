//! Opening conversations, reading one, and the conversation list.

use reqwest::StatusCode;
use serde_json::{Value, json};

use duet_tests::{assert_conversation_shape, assert_keys, eventually, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn opening_answers_201_then_200_with_the_same_id_from_either_side() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;

    let first = app.try_open(&alice, "bob").await;
    let again = app.try_open(&alice, "bob").await;
    let from_bob = app.try_open(&bob, "ALICE").await;

    let first = first.expect(StatusCode::CREATED);
    assert_conversation_shape(&first);
    assert_eq!(first["peer"]["id"], bob.id.as_str());
    assert_eq!(first["peer"]["handle"], "bob");
    assert_eq!(first["last_message"], Value::Null);
    for key in ["last_seq", "read_seq", "peer_read_seq", "unread_count"] {
        assert_eq!(first[key], 0, "{key} in {first}");
    }
    let again = again.expect(StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    let from_bob = from_bob.expect(StatusCode::OK);
    assert_conversation_shape(&from_bob);
    assert_eq!(from_bob["id"], first["id"]);
    assert_eq!(from_bob["peer"]["id"], alice.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_a_conversation_with_yourself_answers_422() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    for handle in ["alice", "Alice"] {
        let message = app
            .try_open(&alice, handle)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(message.contains("peer_handle"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_a_conversation_with_an_unknown_handle_answers_404() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    for handle in ["nobody", "x!"] {
        app.try_open(&alice, handle)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    let list = app.list(&alice, "").await;
    assert_eq!(
        list["items"],
        json!([]),
        "a failed open left a conversation behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_conversation_answers_what_opening_answered() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let opened = app
        .try_open(&alice, "bob")
        .await
        .expect(StatusCode::CREATED);
    let id = opened["id"].as_str().expect("an id");

    let got = app.conversation(&alice, id).await;

    assert_eq!(got, opened);
    let seen_by_bob = app.conversation(&bob, id).await;
    assert_conversation_shape(&seen_by_bob);
    assert_eq!(seen_by_bob["peer"]["id"], alice.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_shows_its_last_message_and_unread_count_to_each_side() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "one").await;
    let last = app.send(&alice, &id, "two").await;

    let for_alice = app.conversation(&alice, &id).await;
    let for_bob = app.conversation(&bob, &id).await;

    assert_eq!(for_alice["last_message"], last);
    assert_eq!(for_bob["last_message"], last);
    assert_eq!(for_alice["last_seq"], 2);
    assert_eq!(for_bob["last_seq"], 2);
    // Your own messages are never unread; the peer's are until read.
    assert_eq!(for_alice["unread_count"], 0);
    assert_eq!(for_bob["unread_count"], 2);
    assert_eq!(for_bob["read_seq"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_has_an_empty_list() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;

    let list = app.list(&alice, "").await;

    assert_eq!(list, json!({"items": [], "next_cursor": null}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_sees_the_conversation_in_their_list_after_the_first_message() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let sent = app.send(&alice, &id, "hello bob").await;

    let list = eventually("bob's list to show alice's message", || async {
        let list = app.list(&bob, "").await;
        (list["items"][0]["last_seq"] == 1).then_some(list)
    })
    .await;

    assert_keys(&list, &["items", "next_cursor"]);
    assert_eq!(list["next_cursor"], Value::Null);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    assert_conversation_shape(&items[0]);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["peer"]["id"], alice.id.as_str());
    assert_eq!(items[0]["last_message"], sent);
    assert_eq!(items[0]["unread_count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_is_newest_activity_first_and_its_pages_neither_repeat_nor_skip() {
    let app = spawn_app().await;
    let [me, p1, p2, p3, p4, p5] = app
        .register_users(["myself", "peer1", "peer2", "peer3", "peer4", "peer5"])
        .await;
    let mut ids = Vec::new();
    for peer in [&p1, &p2, &p3, &p4, &p5] {
        ids.push(app.open_conversation(&me, peer).await);
    }
    // Activity in the order p3, p1, p5, p2, p4: newest first is p4, p2, p5, p1, p3. Each
    // message is delivered before the next is sent: activity is the order in which changes
    // reach the user's feed, and with several delivering processes (NATS) two conversations'
    // changes in flight at once may reach it in either order.
    for i in [2, 0, 4, 1, 3] {
        app.send(&me, &ids[i], "hi").await;
        app.delivered(&me, &ids[i], 1).await;
    }
    let expected: Vec<&str> = [3, 1, 4, 0, 2].iter().map(|&i| ids[i].as_str()).collect();
    let full = eventually(
        "every conversation in the list to show its message",
        || async {
            let list = app.list(&me, "?limit=200").await;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            (items.len() == 5 && items.iter().all(|c| c["last_seq"] == 1)).then_some(items)
        },
    )
    .await;
    let full_ids: Vec<&str> = full
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(full_ids, expected, "the list is not newest activity first");

    let mut walked = Vec::new();
    let mut page_sizes = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = app.list(&me, &query).await;
        let items = page["items"].as_array().expect("items").clone();
        page_sizes.push(items.len());
        walked.extend(items);
        match &page["next_cursor"] {
            Value::Null => break,
            Value::String(cursor) => query = format!("?limit=2&cursor={cursor}"),
            other => panic!("next_cursor is neither a string nor null: {other}"),
        }
        assert!(page_sizes.len() <= 5, "paging does not end");
    }

    assert_eq!(page_sizes, vec![2, 2, 1]);
    assert_eq!(walked, full, "walking the pages differs from the full list");

    // A read receipt changes the conversation but is not activity: the order stays.
    app.mark_read(&p3, &ids[2], 1).await.expect(StatusCode::OK);
    eventually("p3's read receipt to reach my inbox", || async {
        let page = app.sync(&me, 0).await;
        let changes = page["changes"].as_array().cloned().unwrap_or_default();
        changes
            .iter()
            .any(|c| c["id"] == ids[2].as_str() && c["peer_read_seq"] == 1)
            .then_some(())
    })
    .await;
    let after_read = app.list(&me, "?limit=200").await;
    let after_ids: Vec<&str> = after_read["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(after_ids, expected, "reading reordered the list");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_last_page_has_no_next_cursor() {
    let app = spawn_app().await;
    let [me, p1, p2] = app.register_users(["myself", "peer1", "peer2"]).await;
    app.open_conversation(&me, &p1).await;
    app.open_conversation(&me, &p2).await;

    let exactly = eventually("both conversations to be listed", || async {
        let page = app.list(&me, "?limit=2").await;
        (page["items"].as_array().map(Vec::len) == Some(2)).then_some(page)
    })
    .await;
    let one = app.list(&me, "?limit=1").await;

    assert_eq!(exactly["next_cursor"], Value::Null, "{exactly}");
    assert!(
        one["next_cursor"].is_string(),
        "a cut page must give a cursor: {one}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_from_both_sides_at_once_creates_one_conversation() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;

    let replies = futures::future::join_all((0..10).map(|i| {
        let (me, peer) = if i % 2 == 0 {
            (&alice, "bob")
        } else {
            (&bob, "alice")
        };
        app.try_open(me, peer)
    }))
    .await;

    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let found = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((created, found), (1, 9), "{statuses:?}");
    let id = &replies[0].json["id"];
    assert!(replies.iter().all(|r| &r.json["id"] == id), "different ids");
}
