//! The rules `Delivery` keeps (both inboxes learn each event, each member's devices hear
//! of what was newly applied, once), proven against an in-memory inbox and live bus.

use std::sync::Arc;

use super::{Delivery, DurableEvent, EventHandler, LiveEvent};
use crate::conversations::Message;
use crate::inbox::FeedEventBody;
use crate::testing::{MemoryInbox, RecordingLiveBus};
use crate::{ConversationId, MessageId, UserId};

struct Deliveries {
    delivery: Delivery,
    inbox: Arc<MemoryInbox>,
    live: Arc<RecordingLiveBus>,
    alice: UserId,
    bob: UserId,
}

fn deliveries() -> Deliveries {
    let inbox = Arc::new(MemoryInbox::default());
    let live = Arc::new(RecordingLiveBus::default());
    Deliveries {
        delivery: Delivery::new(inbox.clone(), live.clone()),
        inbox,
        live,
        alice: UserId::generate(),
        bob: UserId::generate(),
    }
}

impl Deliveries {
    /// Alice's message number `seq` to Bob, as the outbox holds it.
    fn message(&self, seq: i64) -> DurableEvent {
        let message = Message {
            id: MessageId::generate(),
            conversation_id: ConversationId::between(self.alice, self.bob),
            seq,
            sender_id: self.alice,
            client_msg_id: format!("c{seq}"),
            body: format!("message {seq}"),
            created_at: crate::clock::now(),
        };
        let body = FeedEventBody::MessageCreated { message };
        DurableEvent::new([self.alice, self.bob], body, crate::clock::now())
    }

    /// Who heard what: each live push as (user, feed cursor, seq).
    fn pushed(&self) -> Vec<(UserId, i64, i64)> {
        self.live
            .published()
            .into_iter()
            .map(|(user, event)| match event {
                LiveEvent::Feed(feed) => (user, feed.cursor, feed.body.seq()),
                LiveEvent::Ephemeral(other) => panic!("delivery pushed {other:?}"),
            })
            .collect()
    }
}

#[tokio::test]
async fn an_event_reaches_both_inboxes_and_both_members_devices() {
    let d = deliveries();
    d.delivery.handle(&d.message(1)).await.expect("delivered");
    for (user, peer) in [(d.alice, d.bob), (d.bob, d.alice)] {
        let entries = d.inbox.entries(user);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].peer_id, entries[0].last_seq), (peer, 1));
    }
    assert_eq!(d.pushed(), [(d.alice, 1, 1), (d.bob, 1, 1)]);
}

#[tokio::test]
async fn an_event_delivered_twice_is_pushed_once() {
    let d = deliveries();
    let event = d.message(1);
    d.delivery.handle(&event).await.expect("delivered");
    d.delivery.handle(&event).await.expect("delivered again");
    let batch = [event.clone(), event];
    d.delivery
        .handle_batch(&batch)
        .await
        .expect("delivered in a batch");
    assert_eq!(d.pushed(), [(d.alice, 1, 1), (d.bob, 1, 1)]);
}

#[tokio::test]
async fn a_batch_is_pushed_in_the_order_of_its_events() {
    let d = deliveries();
    let batch = [d.message(1), d.message(2)];
    d.delivery.handle_batch(&batch).await.expect("delivered");
    let expected = [
        (d.alice, 1, 1),
        (d.bob, 1, 1),
        (d.alice, 2, 2),
        (d.bob, 2, 2),
    ];
    assert_eq!(d.pushed(), expected);
    assert_eq!(d.inbox.entries(d.bob)[0].last_seq, 2);
}
