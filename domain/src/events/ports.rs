use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{DurableEvent, LiveEvent, LiveItem, OutboxEntry};
use crate::{StoreError, UserId};

/// The outboxes of every shard, read by the relay.
///
/// Where several processes share a database, each shard's entries are *claimed* by one relay
/// at a time: from `pending` until `remove` or `release`, another process's relay gets none
/// of that shard's entries. Claims only save work (delivery is idempotent); a claim a crashed
/// process held ends with its connection.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` entries in commit order per shard, claimed for this relay.
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Deletes relayed entries and ends this relay's claims.
    async fn remove(&self, entries: &[OutboxEntry]) -> Result<(), StoreError>;

    /// Ends this relay's claims without deleting anything: the hand-off failed and the
    /// entries stay for the next attempt.
    async fn release(&self) {}

    /// Moves an entry whose delivery keeps failing out of the way, keeping it for an
    /// operator, so the entries behind it flow again. Inside this relay's claim, if
    /// it holds one: the move takes effect with the next `remove`.
    ///
    /// # Errors
    /// When the entry cannot be moved (or this outbox cannot set entries aside); it then
    /// stays in the outbox.
    async fn set_aside(&self, entry: &OutboxEntry, error: &str) -> Result<(), StoreError> {
        let _ = (entry, error);
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "this outbox cannot set entries aside"
        )))
    }

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

/// A place where committed events wait for delivery: the outboxes, the queue.
#[async_trait]
pub trait Backlog: Send + Sync {
    /// When the oldest event still waiting here was committed; `None` when none waits.
    ///
    /// # Errors
    /// When the backlog cannot be read now.
    async fn oldest_waiting(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;
}

/// Whether delivery keeps up: sends are refused while it does not, so the lag between an
/// acknowledgement and the peer's inbox cannot grow without bound.
pub trait DeliveryPressure: Send + Sync {
    /// `Some(wait)` while delivery is too far behind to take more sends: a client should retry
    /// after `wait`. Cheap: answered from what a watcher measured last.
    fn refuse_for(&self) -> Option<std::time::Duration>;
}

/// Applies a durable event; the consumer side of the queue.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Must be idempotent: a queue delivers at least once.
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError>;

    /// Applies `events` in order, as `handle` would one by one; a handler that can do it in
    /// fewer transactions overrides this. Idempotent as `handle` is: after an error, the
    /// whole batch may be handled again.
    async fn handle_batch(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        for event in events {
            self.handle(event).await?;
        }
        Ok(())
    }
}

/// Live fan-out to connected devices. Best effort: the feed is the truth.
///
/// Feed events reach the bus from several publishers at once (each send that delivered
/// inline, the relay's delivery, other processes), so one user's events may arrive out of
/// cursor order. A subscriber orders them by cursor: a jump past the next cursor means it
/// reads the gap from the feed (every lower cursor is committed by then, since a user's
/// cursors are taken under one row lock), and anything at or below what it has is dropped.
#[async_trait]
pub trait LiveBus: Send + Sync {
    /// Sends to every device `user` has connected, wherever it is connected.
    async fn publish(&self, user: UserId, event: LiveEvent);

    /// Everything published to `user` from now on, until the stream is dropped.
    async fn subscribe(&self, user: UserId) -> BoxStream<'static, LiveItem>;
}
