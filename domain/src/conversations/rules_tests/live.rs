//! What a send pushes live: the feed events its append delivered inline, once the append
//! has returned, in cursor order; nothing for a replay, a stranger or a failed append, and
//! nothing when the store left delivery to the outbox. (An invalid send reaches neither the
//! store nor the bus: see `access`.)

use super::{talk, talk_delivering_inline};
use crate::conversations::{Appended, Conversation, ConversationError, Message};
use crate::events::LiveEvent;
use crate::inbox::{FeedEvent, FeedEventBody};
use crate::testing::Step;
use crate::{StoreError, UserId};

/// The push of `message` to `user` at feed `cursor`.
fn push(user: UserId, cursor: i64, message: &Message) -> Step {
    let body = FeedEventBody::MessageCreated {
        message: message.clone(),
    };
    let created_at = message.created_at;
    Step::Publish(
        user,
        LiveEvent::Feed(FeedEvent {
            cursor,
            body,
            created_at,
        }),
    )
}

#[tokio::test]
async fn a_message_delivered_inline_is_pushed_to_both_members_after_its_append() {
    let talk = talk_delivering_inline();
    let (alice, bob, id) = talk.alice_and_bob().await;

    let first = talk.send(alice, id, "m1").await.message().clone();
    let second = talk.send(bob, id, "m2").await.message().clone();

    // The store delivers in member order; Alice's open took her feed's first cursor.
    let [lo, hi] = Conversation::new_between(alice.user_id, bob.user_id, first.created_at).members;
    let cursor = |user, n| if user == alice.user_id { n + 1 } else { n };
    assert_eq!(
        talk.journal.steps(),
        vec![
            Step::Append("m1".into()),
            push(lo, cursor(lo, 1), &first),
            push(hi, cursor(hi, 1), &first),
            Step::Append("m2".into()),
            push(lo, cursor(lo, 2), &second),
            push(hi, cursor(hi, 2), &second),
        ],
        "each member is pushed each message once, after its append, in cursor order"
    );
}

#[tokio::test]
async fn a_message_left_to_the_outbox_is_not_pushed_by_the_send() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;

    talk.send(alice, id, "m1").await;

    assert_eq!(talk.journal.steps(), vec![Step::Append("m1".into())]);
}

#[tokio::test]
async fn a_retry_answers_the_original_and_pushes_nothing_again() {
    let talk = talk_delivering_inline();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let original = talk.send(alice, id, "same").await.message().clone();
    let steps = talk.journal.steps().len();

    let retry = talk.send(alice, id, "same").await;

    assert!(
        matches!(retry, Appended::Replayed(ref m) if *m == original),
        "{retry:?}"
    );
    assert_eq!(talk.journal.steps()[steps..], [Step::Append("same".into())]);
}

#[tokio::test]
async fn a_send_into_someone_elses_conversation_is_not_found_and_pushes_nothing() {
    let talk = talk_delivering_inline();
    let (_alice, _bob, id) = talk.alice_and_bob().await;
    let carol = talk.user("carol");

    let sent = talk.service.send(carol, id, "m1".into(), "hi".into()).await;

    assert!(matches!(sent, Err(ConversationError::NotFound)), "{sent:?}");
    assert_eq!(talk.journal.steps(), vec![Step::Append("m1".into())]);
}

#[tokio::test]
async fn a_failed_append_is_an_error_and_pushes_nothing() {
    let talk = talk_delivering_inline();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    talk.conversations.set_unavailable(true);

    let sent = talk.service.send(alice, id, "m1".into(), "hi".into()).await;

    assert!(
        matches!(
            sent,
            Err(ConversationError::Store(StoreError::Unavailable(_)))
        ),
        "{sent:?}"
    );
    assert_eq!(talk.journal.steps(), vec![Step::Append("m1".into())]);
}
