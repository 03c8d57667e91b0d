//! Who may open, send to, read and type in which conversation.

use std::sync::Arc;
use std::time::Duration;

use super::{Talk, query, talk, talk_delivering_inline};
use crate::clock::Clock;
use crate::conversations::ConversationError;
use crate::events::{DeliveryPressure, Ephemeral, LiveEvent};
use crate::inbox::{FeedEvent, FeedEventBody};
use crate::testing::RefusingLimiter;
use crate::{ConversationId, UserId};

#[tokio::test]
async fn opening_a_conversation_with_yourself_is_refused() {
    let talk = talk();
    let alice = talk.user("alice");
    let opened = talk.service.open(alice, "ALICE").await;
    assert!(
        matches!(opened, Err(ConversationError::Invalid(_))),
        "{opened:?}"
    );
    assert!(talk.inbox.entries(alice.user_id).is_empty());
}

#[tokio::test]
async fn opening_with_an_unknown_or_malformed_handle_finds_no_peer() {
    let talk = talk();
    let alice = talk.user("alice");
    for handle in ["nobody", "a!"] {
        let opened = talk.service.open(alice, handle).await;
        assert!(
            matches!(opened, Err(ConversationError::PeerNotFound)),
            "{handle}: {opened:?}"
        );
    }
}

#[tokio::test]
async fn both_sides_open_the_same_conversation() {
    let talk = talk();
    let (alice, bob) = (talk.user("alice"), talk.user("bob"));
    let (from_alice, created) = talk.service.open(alice, "bob").await.expect("opened");
    assert!(created);
    assert_eq!(from_alice.peer.id, bob.user_id);
    let (from_bob, created) = talk.service.open(bob, "alice").await.expect("opened");
    assert!(
        !created,
        "the second open finds the first one's conversation"
    );
    assert_eq!(from_bob.id, from_alice.id);
    assert_eq!(from_bob.peer.id, alice.user_id);
}

#[tokio::test]
async fn opening_a_conversation_lists_it_for_the_opener_only() {
    let talk = talk();
    let (alice, bob, id) = talk.alice_and_bob().await;
    let listed: Vec<_> = talk
        .inbox
        .entries(alice.user_id)
        .iter()
        .map(|e| e.conversation_id)
        .collect();
    assert_eq!(listed, vec![id]);
    assert!(
        talk.inbox.entries(bob.user_id).is_empty(),
        "bob learns of it with a message"
    );
}

#[tokio::test]
async fn a_stranger_gets_the_same_not_found_as_for_no_conversation() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    talk.send(alice, id, "m1").await;
    let carol = talk.user("carol");
    let nowhere = ConversationId::between(carol.user_id, UserId::generate());
    for target in [id, nowhere] {
        let sent = talk
            .service
            .send(carol, target, "c1".into(), "hi".into())
            .await;
        assert!(matches!(sent, Err(ConversationError::NotFound)), "{sent:?}");
        let got = talk.service.get(carol, target).await;
        assert!(matches!(got, Err(ConversationError::NotFound)), "{got:?}");
        let history = talk
            .service
            .history(carol, target, query(None, None, 50))
            .await;
        assert!(
            matches!(history, Err(ConversationError::NotFound)),
            "{history:?}"
        );
        let read = talk.service.mark_read(carol, target, 0).await;
        assert!(matches!(read, Err(ConversationError::NotFound)), "{read:?}");
        let typing = talk.service.typing(carol, target).await;
        assert!(
            matches!(typing, Err(ConversationError::NotFound)),
            "{typing:?}"
        );
    }
    assert_eq!(talk.seqs(alice, id, query(None, None, 50)).await, vec![1]);
    assert!(talk.live.published().is_empty());
}

#[tokio::test]
async fn a_send_with_a_bad_body_or_client_id_reaches_neither_the_store_nor_the_bus() {
    let talk = talk_delivering_inline();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let attempts = [("c1", " \n "), ("", "hello"), ("with space", "hello")];
    for (client_msg_id, body) in attempts {
        let sent = talk
            .service
            .send(alice, id, client_msg_id.into(), body.into())
            .await;
        assert!(
            matches!(sent, Err(ConversationError::Invalid(_))),
            "{sent:?}"
        );
    }
    assert_eq!(talk.journal.steps(), vec![]);
}

#[tokio::test]
async fn a_send_over_the_quota_is_refused_before_the_store_is_touched() {
    let mut talk = talk();
    let retry_after = Duration::from_millis(250);
    talk.service = talk
        .service
        .with_send_limit(Arc::new(RefusingLimiter { retry_after }));
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let sent = talk
        .service
        .send(alice, id, "c1".into(), "hello".into())
        .await;
    assert!(
        matches!(sent, Err(ConversationError::RateLimited { retry_after: r }) if r == retry_after),
        "{sent:?}"
    );
    assert_eq!(talk.journal.steps(), vec![]);
}

/// Delivery as far behind as a test wants it.
struct Lagging(Option<Duration>);

impl DeliveryPressure for Lagging {
    fn refuse_for(&self) -> Option<Duration> {
        self.0
    }
}

#[tokio::test]
async fn a_send_while_delivery_lags_is_refused_before_the_quota_or_the_store() {
    let mut talk = talk();
    let retry_after = Duration::from_secs(1);
    talk.service = talk
        .service
        .with_send_limit(Arc::new(RefusingLimiter {
            retry_after: Duration::from_millis(250),
        }))
        .with_delivery_pressure(Arc::new(Lagging(Some(retry_after))));
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let sent = talk
        .service
        .send(alice, id, "c1".into(), "hello".into())
        .await;
    assert!(
        matches!(sent, Err(ConversationError::Overloaded { retry_after: r }) if r == retry_after),
        "{sent:?}"
    );
    assert_eq!(talk.journal.steps(), vec![]);
}

#[tokio::test]
async fn a_send_while_delivery_keeps_up_goes_through() {
    let mut talk = talk();
    talk.service = talk.service.with_delivery_pressure(Arc::new(Lagging(None)));
    let (alice, _bob, id) = talk.alice_and_bob().await;
    assert_eq!(talk.send(alice, id, "c1").await.message().seq, 1);
}

#[tokio::test]
async fn a_message_is_stamped_by_the_clock() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    talk.clock.advance(chrono::Duration::minutes(5));
    let sent = talk.send(alice, id, "c1").await;
    assert_eq!(sent.message().created_at, talk.clock.now());
}

#[tokio::test]
async fn each_member_sees_their_own_read_position_and_their_peers() {
    let talk = talk();
    let (alice, bob, id) = talk.alice_and_bob().await;
    talk.send(alice, id, "m1").await;
    talk.send(alice, id, "m2").await;
    let for_bob = talk.service.get(bob, id).await.expect("bob's view");
    assert_eq!(for_bob.peer.id, alice.user_id);
    assert_eq!(
        (for_bob.last_seq, for_bob.read_seq, for_bob.peer_read_seq),
        (2, 0, 2)
    );
    assert_eq!(for_bob.unread_count(), 2);
    assert_eq!(for_bob.last_message.map(|m| m.seq), Some(2));
    let after_reading = talk.service.mark_read(bob, id, 1).await.expect("read");
    assert_eq!(
        (after_reading.read_seq, after_reading.peer_read_seq),
        (1, 2)
    );
}

#[tokio::test]
async fn a_read_position_must_be_a_seq_that_exists() {
    let talk = talk();
    let (alice, bob, id) = talk.alice_and_bob().await;
    talk.send(alice, id, "m1").await;
    for seq in [-1, 2] {
        let read = talk.service.mark_read(bob, id, seq).await;
        assert!(
            matches!(read, Err(ConversationError::Invalid(_))),
            "{seq}: {read:?}"
        );
    }
    assert_eq!(talk.service.get(bob, id).await.expect("view").read_seq, 0);
}

#[tokio::test]
async fn typing_is_told_to_the_peer_only() {
    let talk = talk();
    let (alice, bob, id) = talk.alice_and_bob().await;
    talk.service.typing(alice, id).await.expect("typing");
    let typing = LiveEvent::Ephemeral(Ephemeral::Typing {
        conversation_id: id,
        user_id: alice.user_id,
    });
    assert_eq!(talk.live.published(), vec![(bob.user_id, typing)]);
}

/// The `conversation.read` events pushed live, as (to whom, reader, read_seq).
fn read_receipts(talk: &Talk) -> Vec<(UserId, UserId, i64)> {
    talk.live
        .published()
        .into_iter()
        .filter_map(|(to, event)| match event {
            LiveEvent::Feed(FeedEvent {
                body:
                    FeedEventBody::ConversationRead {
                        reader_id,
                        read_seq,
                        ..
                    },
                ..
            }) => Some((to, reader_id, read_seq)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_read_that_moves_the_position_reaches_the_readers_own_devices_at_once() {
    let talk = talk();
    let (alice, bob, id) = talk.alice_and_bob().await;
    talk.send(alice, id, "m1").await;
    talk.service.mark_read(bob, id, 1).await.expect("read");
    assert_eq!(read_receipts(&talk), vec![(bob.user_id, bob.user_id, 1)]);
}

#[tokio::test]
async fn a_read_finding_the_position_already_there_writes_and_pushes_no_receipt() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    // Alice's own send moved her read position to 1, with no read receipt of hers.
    talk.send(alice, id, "m1").await;
    let view = talk.service.mark_read(alice, id, 1).await.expect("read");
    assert_eq!(view.read_seq, 1);
    // A receipt here would take the feed slot of Bob's real receipt of seq 1.
    assert_eq!(read_receipts(&talk), vec![]);
}
