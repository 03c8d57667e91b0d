//! Read positions: forward only, bounded by the newest message, visible to the peer.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use duet_tests::{
    assert_conversation_shape, assert_keys, assert_utc_timestamp, eventually, spawn_app,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_read_position_moves_forward_only_and_not_past_the_newest_message() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 3).await;

    let before = app.conversation(&bob, &id).await;
    let to_two = app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
    let back_to_one = app.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);
    let past_last = app.mark_read(&bob, &id, 4).await;
    let negative = app.mark_read(&bob, &id, -1).await;
    let huge = app.mark_read(&bob, &id, i64::MAX).await;
    let after_refusals = app.conversation(&bob, &id).await;

    assert_eq!(
        (&before["read_seq"], &before["unread_count"]),
        (&json!(0), &json!(3))
    );
    assert_conversation_shape(&to_two);
    assert_eq!(to_two["id"], id.as_str());
    assert_eq!(
        (&to_two["read_seq"], &to_two["unread_count"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(to_two["last_seq"], 3);
    assert_eq!(
        (&back_to_one["read_seq"], &back_to_one["unread_count"]),
        (&json!(2), &json!(1))
    );
    let message = past_last.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(message.contains("seq"), "{message}");
    let message = negative.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(message.contains("seq"), "{message}");
    huge.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(after_refusals["read_seq"], 2);

    let to_three = app.mark_read(&bob, &id, 3).await.expect(StatusCode::OK);
    assert_eq!(
        (&to_three["read_seq"], &to_three["unread_count"]),
        (&json!(3), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_seq_zero_of_an_empty_conversation_is_allowed_and_seq_one_is_not() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;

    let zero = app.mark_read(&alice, &id, 0).await.expect(StatusCode::OK);
    let one = app.mark_read(&alice, &id, 1).await;

    assert_eq!(
        (&zero["read_seq"], &zero["last_seq"]),
        (&json!(0), &json!(0))
    );
    one.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_sees_the_read_position_in_the_conversation_and_the_lists() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 3).await;

    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);

    // The conversation's own record is immediately consistent…
    let for_alice = app.conversation(&alice, &id).await;
    assert_eq!(for_alice["peer_read_seq"], 2);
    assert_eq!(for_alice["unread_count"], 0);
    // …the lists catch up just after.
    let alices_entry = eventually("alice's list to show bob's read position", || async {
        let list = app.list(&alice, "").await;
        let entry = list["items"][0].clone();
        (entry["peer_read_seq"] == 2).then_some(entry)
    })
    .await;
    assert_eq!(
        (&alices_entry["last_seq"], &alices_entry["unread_count"]),
        (&json!(3), &json!(0))
    );
    let bobs_entry = eventually("bob's list to show his read position", || async {
        let list = app.list(&bob, "").await;
        let entry = list["items"][0].clone();
        (entry["read_seq"] == 2).then_some(entry)
    })
    .await;
    assert_eq!(
        (&bobs_entry["last_seq"], &bobs_entry["unread_count"]),
        (&json!(3), &json!(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_receipt_reaches_both_members_as_a_conversation_read_event() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 3).await;
    // Delivered first: a read applies to the reader's own inbox at once, so a message still
    // on its way (through the relay, when the inboxes live on other databases than the
    // conversation) would reach Bob's socket after his own receipt.
    app.delivered(&bob, &id, 3).await;
    app.delivered(&alice, &id, 3).await;
    let mut alice_ws = app.ws_connect(&alice, None).await;
    let mut bob_ws = app.ws_connect(&bob, None).await;
    let (_, alice_ready) = alice_ws.until_ready().await;
    bob_ws.until_ready().await;

    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);

    let event = alice_ws.next().await;
    assert_keys(
        &event,
        &[
            "type",
            "cursor",
            "conversation_id",
            "reader_id",
            "read_seq",
            "created_at",
        ],
    );
    assert_eq!(event["type"], "conversation.read");
    assert_eq!(event["conversation_id"], id.as_str());
    assert_eq!(event["reader_id"], bob.id.as_str());
    assert_eq!(event["read_seq"], 2);
    assert!(event["cursor"].as_i64().expect("a cursor") > alice_ready);
    assert_utc_timestamp(&event["created_at"]);
    let own = bob_ws.next().await;
    assert_eq!(own["type"], "conversation.read");
    assert_eq!(own["reader_id"], bob.id.as_str());
    assert_eq!(own["read_seq"], 2);

    // A read that changes nothing sends nothing.
    app.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);
    alice_ws
        .assert_nothing_pending(Duration::from_millis(200))
        .await;
    bob_ws.assert_nothing_pending(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_inboxes_converge_to_the_conversation_record() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "a", 3).await;
    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
    app.send_many(&bob, &id, "b", 2).await;
    app.mark_read(&alice, &id, 4).await.expect(StatusCode::OK);

    for user in [&alice, &bob] {
        let truth = app.conversation(user, &id).await;
        let fields = [
            "id",
            "peer",
            "last_message",
            "last_seq",
            "read_seq",
            "peer_read_seq",
            "unread_count",
        ];
        eventually(
            "the list and sync to agree with the conversation",
            || async {
                let listed = app.list(user, "").await["items"][0].clone();
                let synced = app.sync(user, 0).await["changes"][0].clone();
                fields
                    .iter()
                    .all(|f| listed[*f] == truth[*f] && synced[*f] == truth[*f])
                    .then_some(())
            },
        )
        .await;
        let listed = app.list(user, "").await["items"][0].clone();
        assert_eq!(listed["version"], app.sync(user, 0).await["cursor"]);
    }
    let for_alice = app.conversation(&alice, &id).await;
    let for_bob = app.conversation(&bob, &id).await;
    assert_eq!(
        [
            &for_alice["read_seq"],
            &for_alice["peer_read_seq"],
            &for_alice["unread_count"]
        ],
        [&json!(4), &json!(5), &json!(1)]
    );
    assert_eq!(
        [
            &for_bob["read_seq"],
            &for_bob["peer_read_seq"],
            &for_bob["unread_count"]
        ],
        [&json!(5), &json!(4), &json!(0)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reads_end_at_the_highest_and_receipts_only_move_forward() {
    let app = std::sync::Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&bob, &id, "m", 20).await;

    // Seqs in a scrambled order, all at once.
    let order = [
        7, 20, 3, 15, 1, 19, 11, 5, 17, 9, 13, 2, 18, 6, 14, 4, 16, 8, 12, 10,
    ];
    let tasks: Vec<_> = order
        .iter()
        .map(|&seq| {
            let (app, alice, id) = (std::sync::Arc::clone(&app), alice.clone(), id.clone());
            tokio::spawn(async move { app.mark_read(&alice, &id, seq).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("a reader does not panic"), StatusCode::OK);
    }

    assert_eq!(app.conversation(&alice, &id).await["read_seq"], 20);
    assert_eq!(app.conversation(&bob, &id).await["peer_read_seq"], 20);
    // Bob's feed holds the receipts that moved the position: increasing, ending at 20.
    let receipts = eventually("the last receipt to reach bob's feed", || async {
        let mut ws = app.ws_connect(&bob, Some(0)).await;
        let (replay, _) = ws.until_ready().await;
        let receipts: Vec<i64> = replay
            .iter()
            .filter(|f| f["type"] == "conversation.read")
            .map(|f| f["read_seq"].as_i64().expect("a read_seq"))
            .collect();
        (receipts.last() == Some(&20)).then_some(receipts)
    })
    .await;
    assert!(
        receipts.windows(2).all(|w| w[0] < w[1]),
        "receipts went backwards: {receipts:?}"
    );
}
