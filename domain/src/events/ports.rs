use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{DurableEvent, LiveEvent, LiveItem, OutboxEntry};
use crate::{StoreError, UserId};

/// The outboxes of every shard, read by the relay.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` entries in commit order per shard.
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Deletes relayed entries.
    async fn remove(&self, entries: &[OutboxEntry]) -> Result<(), StoreError>;

    /// Resolves when an entry may have been added in this process, or after `timeout`
    /// (other processes add entries too, so the relay also polls).
    async fn wait_for_entries(&self, timeout: std::time::Duration);
}

/// The durable hand-off from ingestion to delivery.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Returns once every event is durably handed off: after this, the outbox rows may go.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot take them now; they stay in the outbox.
    async fn publish(&self, events: &[DurableEvent]) -> Result<(), StoreError>;
}

/// Applies a durable event; the consumer side of the queue.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Must be idempotent: a queue delivers at least once.
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError>;
}

/// Live fan-out to connected devices. Best effort: the feed is the truth.
#[async_trait]
pub trait LiveBus: Send + Sync {
    /// Sends to every device `user` has connected, wherever it is connected.
    async fn publish(&self, user: UserId, event: LiveEvent);

    /// Everything published to `user` from now on, until the stream is dropped.
    async fn subscribe(&self, user: UserId) -> BoxStream<'static, LiveItem>;
}
