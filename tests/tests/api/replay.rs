//! The event stream's durable side: replay since a cursor, `ready`, live delivery to every
//! device, resuming after a disconnect, and `resync` when a cursor cannot be replayed.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use duet_tests::{
    assert_cursors_increase, assert_message_event, eventually, seqs, spawn_app, spawn_app_with,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_replays_since_the_cursor_then_is_ready_then_streams_live_to_every_device() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let earlier = app.send_many(&alice, &id, "earlier", 2).await;
    app.delivered(&bob, &id, 2).await;
    app.delivered(&alice, &id, 2).await;

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
    let cursor = app.delivered(&bob, &id, 1).await;

    let mut ws = app.ws_connect(&bob, Some(cursor)).await;

    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_the_future_gets_resync_with_the_newest_cursor() {
    let app = spawn_app().await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send(&alice, &id, "hi").await;
    let cursor = app.delivered(&bob, &id, 1).await;

    let mut ws = app.ws_connect(&bob, Some(cursor + 100)).await;

    assert_eq!(ws.next().await, json!({"type": "resync", "cursor": cursor}));
    assert_eq!(ws.next().await, json!({"type": "ready", "cursor": cursor}));
    // Still live afterwards.
    let live = app.send(&alice, &id, "after the resync").await;
    assert_message_event(&ws.next().await, &live);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_from_both_sides_reaches_every_device_once_in_cursor_order() {
    const PER_USER: usize = 25;
    let app = Arc::new(spawn_app().await);
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
        let (app, id) = (Arc::clone(&app), id.clone());
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
    // Delivered to Bob's inbox first: his read is applied to it at once, so with
    // asynchronous delivery it could otherwise take a cursor before the last messages.
    app.delivered(&bob, &id, 7).await;
    app.mark_read(&bob, &id, 2).await.expect(StatusCode::OK);
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
    app.delivered(&bob, &id, 1).await;
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
    let app = Arc::new(spawn_app().await);
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (app, alice, id) = (Arc::clone(&app), alice.clone(), id.clone());
            tokio::spawn(
                async move { app.send_many(&alice, &id, &format!("t{t}"), PER_TASK).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender does not panic");
    }
    let total = (TASKS * PER_TASK) as i64;
    let cursor = app
        .delivered_within(std::time::Duration::from_secs(60), &bob, &id, total)
        .await;

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
    let cursor = app.delivered(&bob, &id, 3).await;

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
