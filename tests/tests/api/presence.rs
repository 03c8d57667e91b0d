//! Presence: a peer sees a user come online and go offline, live (on streams that asked
//! for it) and through `GET /v1/conversations/{id}/presence`; nobody else learns it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use duet_tests::{TestApp, TestUser, WsClient, eventually, spawn_app};

async fn presence_stream(app: &TestApp, user: &TestUser) -> WsClient {
    let mut ws = app
        .ws_try_connect_path(Some(&user.token), "/v1/events?presence=true")
        .await
        .expect("the upgrade succeeds");
    ws.expect_type("ready").await;
    ws
}

/// Alice and Bob, both taking part in their conversation (Alice sent, Bob read): only then
/// does it disclose each one's presence to the other.
async fn talking_pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let (alice, bob, id) = app.alice_and_bob().await;
    app.send(&alice, &id, "hi").await;
    app.delivered(&bob, &id, 1).await;
    app.mark_read(&bob, &id, 1).await.expect(StatusCode::OK);
    // Alice's feed has the receipt before any stream of hers opens: it would replay nothing
    // but could arrive live, between the frames a test expects.
    eventually("the receipt to reach Alice's feed", || async {
        let alices = app.sync(&alice, 0).await["changes"][0]["peer_read_seq"].clone();
        (alices == 1).then_some(())
    })
    .await;
    (alice, bob, id)
}

async fn peer_presence(app: &TestApp, user: &TestUser, id: &str) -> Value {
    app.get(
        &format!("/v1/conversations/{id}/presence"),
        Some(&user.token),
    )
    .await
    .expect(StatusCode::OK)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_sees_a_user_come_online_and_go_offline() {
    let app = spawn_app().await;
    let (alice, bob, id) = talking_pair(&app).await;

    let never = peer_presence(&app, &alice, &id).await;
    assert_eq!(never["user_id"], bob.id.as_str());
    assert_eq!(never["online"], false);
    assert_eq!(never["last_seen"], Value::Null);

    let mut alice_ws = presence_stream(&app, &alice).await;
    let bob_ws = app.ws_connect(&bob, None).await;
    let online = alice_ws.expect_type("presence").await;
    assert_eq!(online["user_id"], bob.id.as_str());
    assert_eq!(online["online"], true);
    let now = peer_presence(&app, &alice, &id).await;
    assert_eq!(now["online"], true);
    assert!(now["last_seen"].is_string(), "{now}");

    bob_ws.close().await;
    let offline = alice_ws.expect_type("presence").await;
    assert_eq!(offline["user_id"], bob.id.as_str());
    assert_eq!(offline["online"], false);
    assert!(offline["last_seen"].is_string(), "{offline}");
    let after = peer_presence(&app, &alice, &id).await;
    assert_eq!(after["online"], false);
    assert!(after["last_seen"].is_string(), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_reaches_only_peers_and_only_streams_that_asked() {
    let app = spawn_app().await;
    let (alice, bob, id) = talking_pair(&app).await;
    let [carol] = app.register_users(["carol"]).await;

    let mut carol_ws = presence_stream(&app, &carol).await;
    let mut alice_plain = app.ws_connect(&alice, None).await;
    alice_plain.expect_type("ready").await;
    let _bob_ws = app.ws_connect(&bob, None).await;

    // Carol shares no conversation with Bob; Alice's stream did not ask for presence.
    // (Asking for it through a conversation one is not in is a 404: see `privacy`.)
    carol_ws
        .assert_nothing_pending(Duration::from_millis(300))
        .await;
    alice_plain.assert_nothing_pending(Duration::ZERO).await;
    assert_eq!(peer_presence(&app, &alice, &id).await["online"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_a_conversation_with_a_handle_reveals_nothing_of_its_presence() {
    let app = spawn_app().await;
    let (alice, bob, with_alice) = talking_pair(&app).await;
    let [mallory] = app.register_users(["mallory"]).await;
    let with_mallory = app.open_conversation(&mallory, &bob).await;
    app.send(&mallory, &with_mallory, "hello?").await;
    app.delivered(&bob, &with_mallory, 1).await;
    app.delivered(&mallory, &with_mallory, 1).await;
    let mut mallory_ws = presence_stream(&app, &mallory).await;

    // Bob comes online: Alice, whom he talks to, sees it; Mallory, whom he never answered,
    // learns nothing, live or asking.
    let _bob_ws = app.ws_connect(&bob, None).await;
    eventually("Alice to see Bob online", || async {
        (peer_presence(&app, &alice, &with_alice).await["online"] == true).then_some(())
    })
    .await;
    let hidden = peer_presence(&app, &mallory, &with_mallory).await;
    assert_eq!(hidden["user_id"], bob.id.as_str());
    assert_eq!(hidden["online"], false);
    assert_eq!(hidden["last_seen"], Value::Null);
    mallory_ws
        .assert_nothing_pending(Duration::from_millis(300))
        .await;

    // Once Bob reads Mallory's message he has taken part: she may see him.
    app.mark_read(&bob, &with_mallory, 1)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        peer_presence(&app, &mallory, &with_mallory).await["online"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_presence_flag_is_refused_before_upgrading() {
    let app = spawn_app().await;
    let [alice] = app.register_users(["alice"]).await;
    let refused = app
        .ws_try_connect_path(Some(&alice.token), "/v1/events?presence=maybe")
        .await;
    assert!(refused.is_err(), "the upgrade is refused");
}
