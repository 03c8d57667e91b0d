//! The stream a live bus hands a subscriber: its items, plus a guard whose `Drop` lets the
//! bus forget the user once their last local device is gone.

use duet_domain::events::LiveItem;
use futures::stream::{BoxStream, StreamExt};

/// Fields drop in order: the items (the receiver) first, then the guard, so the guard sees
/// this subscriber already gone when it counts who is left.
pub(crate) struct GuardedStream<G> {
    items: BoxStream<'static, LiveItem>,
    _guard: G,
}

impl<G> GuardedStream<G> {
    pub(crate) fn new(items: BoxStream<'static, LiveItem>, guard: G) -> Self {
        Self {
            items,
            _guard: guard,
        }
    }
}

impl<G: Unpin> futures::Stream for GuardedStream<G> {
    type Item = LiveItem;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<LiveItem>> {
        self.items.poll_next_unpin(cx)
    }
}
