//! The rules the `Relay` keeps (hand off whole batches, keep what was not handed off, set
//! aside an entry that keeps failing), proven against an in-memory outbox and queue.

use std::sync::Arc;

use uuid::Uuid;

use super::{DurableEvent, Relay};
use crate::StoreError;
use crate::inbox::FeedEventBody;
use crate::testing::{MemoryOutbox, RecordingQueue};
use crate::{ConversationId, UserId};

struct Pipe {
    outbox: Arc<MemoryOutbox>,
    queue: Arc<RecordingQueue>,
}

/// An outbox holding `count` events, and a queue; returns the events' ids in order.
fn pipe(count: usize) -> (Pipe, Vec<Uuid>) {
    let outbox = Arc::new(MemoryOutbox::default());
    let (a, b) = (UserId::generate(), UserId::generate());
    let ids = (1..=count)
        .map(|seq| {
            let body = FeedEventBody::ConversationRead {
                conversation_id: ConversationId::between(a, b),
                reader_id: a,
                read_seq: seq as i64,
            };
            let event = DurableEvent::new([a, b], body, crate::clock::now());
            let id = event.id;
            outbox.push(event);
            id
        })
        .collect();
    let queue = Arc::new(RecordingQueue::default());
    (Pipe { outbox, queue }, ids)
}

impl Pipe {
    fn relay(&self, batch: u32) -> Relay {
        Relay::new(self.outbox.clone(), self.queue.clone(), batch)
    }
}

#[tokio::test]
async fn a_batch_handed_off_leaves_the_outbox_in_order() {
    let (pipe, ids) = pipe(3);
    let relay = pipe.relay(2);
    assert_eq!(relay.run_once().await.expect("relayed"), 2);
    assert_eq!(relay.run_once().await.expect("relayed"), 1);
    assert_eq!(relay.run_once().await.expect("nothing left"), 0);
    assert_eq!(pipe.queue.published(), ids);
    assert!(pipe.outbox.pending_events().is_empty());
}

#[tokio::test]
async fn an_unavailable_queue_keeps_every_entry_and_sets_none_aside() {
    let (pipe, ids) = pipe(3);
    let relay = pipe.relay(10).with_max_attempts(1);
    pipe.queue.set_unavailable(true);
    for _ in 0..3 {
        let failed = relay.run_once().await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
    }
    assert_eq!(pipe.outbox.pending_events(), ids);
    assert!(
        pipe.outbox.set_aside_events().is_empty(),
        "an outage is nobody's fault"
    );
    assert_eq!(pipe.outbox.releases(), 3, "each failed run ends its claim");
    pipe.queue.set_unavailable(false);
    assert_eq!(relay.run_once().await.expect("relayed"), 3);
    assert_eq!(pipe.queue.published(), ids);
}

#[tokio::test]
async fn entries_before_a_failing_one_go_through_and_the_rest_wait() {
    let (pipe, ids) = pipe(3);
    pipe.queue.poison(ids[1]);
    let failed = pipe.relay(10).run_once().await;
    assert!(
        matches!(failed, Err(StoreError::Unexpected(_))),
        "{failed:?}"
    );
    assert_eq!(pipe.queue.published(), ids[..1]);
    assert_eq!(pipe.outbox.pending_events(), ids[1..]);
}

#[tokio::test]
async fn an_entry_that_fails_max_attempts_times_is_set_aside_and_the_rest_flow() {
    let (pipe, ids) = pipe(3);
    pipe.queue.poison(ids[1]);
    let relay = pipe.relay(10).with_max_attempts(3);
    for attempt in 1..=2 {
        assert!(relay.run_once().await.is_err(), "attempt {attempt} fails");
        assert!(
            pipe.outbox.set_aside_events().is_empty(),
            "attempt {attempt}"
        );
    }
    assert_eq!(
        relay.run_once().await.expect("moved"),
        2,
        "one set aside, one relayed"
    );
    let set_aside = pipe.outbox.set_aside_events();
    assert_eq!(set_aside.len(), 1);
    assert_eq!(set_aside[0].0, ids[1]);
    assert!(
        set_aside[0].1.contains("cannot be handed off"),
        "{}",
        set_aside[0].1
    );
    assert_eq!(pipe.queue.published(), [ids[0], ids[2]]);
    assert!(pipe.outbox.pending_events().is_empty());
}
