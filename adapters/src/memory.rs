//! The in-process event queue and live bus of the `small` profile.

use crate::live_stream::GuardedStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use duet_domain::events::{DurableEvent, EventHandler, EventQueue, LiveBus, LiveEvent, LiveItem};
use duet_domain::{StoreError, UserId};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// A queue whose hand-off *is* delivery: `publish` applies the events before returning, so
/// the relay deletes an outbox row only once both inboxes have it. Nothing sits in memory
/// that a crash could lose. The whole relay batch goes to the handler at once
/// ([`EventHandler::handle_batch`]), so delivery can apply it in a few transactions.
pub struct DirectQueue {
    handler: Arc<dyn EventHandler>,
}

impl DirectQueue {
    pub fn new(handler: Arc<dyn EventHandler>) -> Self {
        Self { handler }
    }
}

#[async_trait]
impl EventQueue for DirectQueue {
    async fn publish(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        self.handler.handle_batch(events).await
    }
}

/// One broadcast channel per connected user. A subscriber that falls more than `capacity`
/// events behind gets [`LiveItem::Lagged`] and catches up from its feed.
pub struct MemoryLiveBus {
    capacity: usize,
    channels: Arc<Channels>,
}

type Channels = Mutex<HashMap<UserId, broadcast::Sender<LiveEvent>>>;

/// Dropped with a subscription's stream: forgets the user's channel once nobody listens, so
/// the map holds only connected users.
struct Unsubscribe {
    channels: Arc<Channels>,
    user: UserId,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // This subscription's receiver is already gone (see `GuardedStream`); new subscribers
        // take the lock first, so none can slip in between the count and the removal.
        if channels
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.user);
        }
    }
}

impl MemoryLiveBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, broadcast::Sender<LiveEvent>>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is intact.
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LiveBus for MemoryLiveBus {
    async fn publish(&self, user: UserId, event: LiveEvent) {
        let mut channels = self.channels();
        if let Some(sender) = channels.get(&user)
            && sender.send(event).is_err()
        {
            // Every receiver is gone: forget the channel so the map does not grow.
            channels.remove(&user);
        }
    }

    async fn subscribe(&self, user: UserId) -> BoxStream<'static, LiveItem> {
        let receiver = self
            .channels()
            .entry(user)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        let unsubscribe = Unsubscribe {
            channels: Arc::clone(&self.channels),
            user,
        };
        let events = BroadcastStream::new(receiver)
            .map(|item| match item {
                Ok(event) => LiveItem::Event(event),
                Err(BroadcastStreamRecvError::Lagged(_)) => LiveItem::Lagged,
            })
            .boxed();
        GuardedStream::new(events, unsubscribe).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_domain::ConversationId;
    use duet_domain::events::Ephemeral;

    fn typing(user: UserId) -> LiveEvent {
        LiveEvent::Ephemeral(Ephemeral::Typing {
            conversation_id: ConversationId::between(user, user),
            user_id: user,
        })
    }

    #[tokio::test]
    async fn events_reach_every_subscriber_of_their_user_only() {
        let bus = MemoryLiveBus::new(16);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let mut a1 = bus.subscribe(alice).await;
        let mut a2 = bus.subscribe(alice).await;
        let mut b = bus.subscribe(bob).await;
        bus.publish(alice, typing(alice)).await;
        assert_eq!(a1.next().await, Some(LiveItem::Event(typing(alice))));
        assert_eq!(a2.next().await, Some(LiveItem::Event(typing(alice))));
        bus.publish(bob, typing(bob)).await;
        assert_eq!(b.next().await, Some(LiveItem::Event(typing(bob))));
    }

    #[tokio::test]
    async fn a_user_is_forgotten_when_their_last_subscription_ends() {
        let bus = MemoryLiveBus::new(4);
        let user = UserId::generate();
        let first = bus.subscribe(user).await;
        let second = bus.subscribe(user).await;
        drop(first);
        assert!(
            bus.channels().contains_key(&user),
            "one device is still connected"
        );
        drop(second);
        assert!(bus.channels().is_empty());
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = MemoryLiveBus::new(2);
        let user = UserId::generate();
        let mut slow = bus.subscribe(user).await;
        for _ in 0..5 {
            bus.publish(user, typing(user)).await;
        }
        assert_eq!(slow.next().await, Some(LiveItem::Lagged));
    }
}
