//! What one answer says, the next read says too: the version a read receipt answers, and the
//! bytes of a message's time on every channel it is shown on.

use reqwest::StatusCode;
use serde_json::Value;

use duet_tests::{eventually, spawn_app};

/// `2026-01-02T03:04:05.123456Z`: RFC 3339, UTC as `Z`, exactly six fractional digits.
#[track_caller]
fn assert_microsecond_utc(value: &Value) -> &str {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let (_, fraction) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("{text} has no fraction"));
    assert!(
        fraction.len() == 7
            && fraction.ends_with('Z')
            && fraction[..6].bytes().all(|b| b.is_ascii_digit()),
        "{text} is not UTC with six fractional digits"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_receipt_answers_the_version_the_conversation_then_shows() {
    let app = spawn_app().await;
    let (alice, bob, id) = app.alice_and_bob().await;
    app.send_many(&alice, &id, "m", 2).await;
    app.delivered(&bob, &id, 2).await;

    let read = app.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);
    let shown = app.conversation(&bob, &id).await;
    // Delivery of the read to the peer is asynchronous; once it has run, nothing else
    // changed Bob's view, so his version must still be the one the receipt answered.
    let synced = eventually("the read to reach Bob's sync", || async {
        let page = app.sync(&bob, 0).await;
        let change = page["changes"][0].clone();
        (change["read_seq"] == 1).then_some(change)
    })
    .await;
    let settled = app.conversation(&bob, &id).await;
    let again = app.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);

    assert_eq!(read["read_seq"], 1);
    assert_eq!(read["version"], shown["version"], "{read} vs {shown}");
    assert_eq!(read["version"], settled["version"], "{read} vs {settled}");
    assert_eq!(read["version"], synced["version"], "{read} vs {synced}");
    assert_eq!(
        again["version"], read["version"],
        "a no-op read changes nothing"
    );
    let after_send = app.send(&alice, &id, "m 3").await;
    app.delivered(&bob, &id, 3).await;
    let moved = app.mark_read(&bob, &id, 3).await.expect(StatusCode::OK);
    assert!(
        moved["version"].as_i64() > read["version"].as_i64(),
        "{moved}"
    );
    assert_eq!(
        moved["version"],
        app.conversation(&bob, &id).await["version"]
    );
    assert_eq!(moved["last_message"]["id"], after_send["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_time_is_the_same_bytes_in_every_answer_and_event() {
    let app = spawn_app().await;
    let (alice, bob, id) = app.alice_and_bob().await;
    let mut events = app.ws_connect(&bob, Some(0)).await;
    events.until_ready().await;

    let sent = app.send(&alice, &id, "hello").await;
    let event = events.expect_type("message.created").await;
    let history = app.history(&bob, &id, "").await;
    app.delivered(&bob, &id, 1).await;
    let synced = app.sync(&bob, 0).await;
    let conversation = app.conversation(&bob, &id).await;
    let listed = app.list(&bob, "").await;

    let created_at = assert_microsecond_utc(&sent["created_at"]);
    for (channel, seen) in [
        ("history", &history["items"][0]["created_at"]),
        ("sync", &synced["changes"][0]["last_message"]["created_at"]),
        ("get", &conversation["last_message"]["created_at"]),
        ("list", &listed["items"][0]["last_message"]["created_at"]),
        ("websocket", &event["message"]["created_at"]),
    ] {
        assert_eq!(seen.as_str(), Some(created_at), "{channel}");
    }
    assert_microsecond_utc(&event["created_at"]);
    assert_microsecond_utc(&conversation["updated_at"]);
    assert_microsecond_utc(&conversation["peer"]["created_at"]);
    let session = app.login(&alice.handle, duet_tests::PASSWORD).await;
    assert_microsecond_utc(&session.json["expires_at"]);
}
