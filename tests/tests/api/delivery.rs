//! How a sent message reaches both inboxes and every device, with `delivery.inline` on (the
//! append writes both inboxes itself and the send pushes live) and off (an outbox row, then
//! the relay), and when the sender hangs up before the answer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use duet_tests::{TestApp, assert_cursors_increase, assert_message_event, seqs, spawn_app_with};

/// The conversation `id` as `page` (a sync page) shows it.
fn in_sync_page<'a>(page: &'a Value, id: &str) -> Option<&'a Value> {
    page["changes"].as_array()?.iter().find(|c| c["id"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_inline_delivery_both_inboxes_hold_the_message_when_the_send_answers() {
    let app = spawn_app_with(&[("delivery.kind", "memory"), ("delivery.inline", "true")]).await;
    let (alice, bob, id) = app.alice_and_bob().await;
    let mut bob_ws = app.ws_connect(&bob, Some(0)).await;
    bob_ws.until_ready().await;

    let sent = app.send(&alice, &id, "written with its inboxes").await;

    // No waiting: the append's own transaction wrote both inboxes, wherever they are in
    // the conversation's database. On several databases only co-located ones can be.
    if app.profile == "sharded" {
        app.delivered(&alice, &id, 1).await;
        app.delivered(&bob, &id, 1).await;
    }
    for user in [&alice, &bob] {
        let page = app.sync(user, 0).await;
        let conversation = in_sync_page(&page, &id).expect("the conversation changed");
        assert_eq!(
            conversation["last_message"], sent,
            "{} at once",
            user.handle
        );
    }
    assert_message_event(&bob_ws.next().await, &sent);
    bob_ws
        .assert_nothing_pending(Duration::from_millis(100))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_inline_delivery_the_relay_delivers_a_burst_to_every_device_once_in_order() {
    const PER_USER: usize = 15;
    let app = Arc::new(
        spawn_app_with(&[("delivery.kind", "memory"), ("delivery.inline", "false")]).await,
    );
    let (alice, bob, id) = app.alice_and_bob().await;
    let mut sockets = vec![
        app.ws_connect(&alice, Some(0)).await,
        app.ws_connect(&bob, Some(0)).await,
    ];
    for ws in &mut sockets {
        ws.until_ready().await;
    }

    let senders: Vec<_> = [alice.clone(), bob.clone()]
        .into_iter()
        .map(|user| {
            let (app, id) = (Arc::clone(&app), id.clone());
            tokio::spawn(async move { app.send_many(&user, &id, &user.handle, PER_USER).await })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender does not panic");
    }

    let total = 2 * PER_USER as i64;
    app.delivered(&alice, &id, total).await;
    app.delivered(&bob, &id, total).await;
    for ws in &mut sockets {
        let mut frames = Vec::new();
        while frames.len() < total as usize {
            let frame = ws.next().await;
            assert_eq!(frame["type"], "message.created", "{frame}");
            frames.push(frame);
        }
        assert_cursors_increase(&frames);
        let mut got = seqs(&frames);
        got.sort_unstable();
        assert_eq!(got, (1..=total).collect::<Vec<_>>(), "each message once");
        ws.assert_nothing_pending(Duration::from_millis(100)).await;
    }
}

/// The sender's connection closes while the send still waits for its batch to commit: the
/// message it committed still reaches the peer's connected device (the send runs to its end
/// and pushes it, or the relay does).
#[tokio::test(flavor = "multi_thread")]
async fn a_message_whose_sender_hangs_up_before_the_answer_still_reaches_the_peer_live() {
    // A batch waits this long for company, so the send is still waiting when the client
    // hangs up.
    let app = spawn_app_with(&[("storage.group_commit.max_delay_us", "300000")]).await;
    let (alice, bob, id) = app.alice_and_bob().await;
    let mut bob_ws = app.ws_connect(&bob, Some(0)).await;
    bob_ws.until_ready().await;

    hang_up_after_sending(&app, &alice.token, &id, "sent, then gone").await;

    let frame = bob_ws.next().await;
    assert_eq!(frame["type"], "message.created", "{frame}");
    assert_eq!(frame["message"]["body"], "sent, then gone");
    assert_eq!(frame["message"]["seq"], 1);
}

/// Writes a whole send request on a fresh connection and closes it without reading a byte.
async fn hang_up_after_sending(app: &TestApp, token: &str, conversation: &str, body: &str) {
    let body = json!({"client_msg_id": "hung-up", "body": body}).to_string();
    let request = format!(
        "POST /v1/conversations/{conversation}/messages HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("the server accepts connections");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is written");
    stream.shutdown().await.expect("the connection closes");
}
