//! NATS: JetStream for the durable event queue, core subjects for live fan-out.
//!
//! - [`Nats`]: one connection per process, shared by the parts below; it reconnects forever in
//!   the background and owns the JetStream stream's configuration.
//! - [`NatsQueue`]: the relay's [`EventQueue`](duet_domain::events::EventQueue): publishes
//!   outbox events to the stream, deduplicated by event id, on the subject of their
//!   conversation's partition.
//! - [`DeliveryConsumer`]: the consumer every process runs; all share one durable pull
//!   consumer per partition, so each event is applied by one process (at least once), and the
//!   events of one conversation one at a time, in the order they were published.
//! - [`NatsLiveBus`]: the [`LiveBus`](duet_domain::events::LiveBus) over core NATS, one
//!   subscription per connected user per process.

mod connection;
mod consumer;
mod live;
mod queue;

pub use connection::{MAX_PARTITIONS, Nats, NatsOptions};
pub use consumer::DeliveryConsumer;
pub use live::NatsLiveBus;
pub use queue::NatsQueue;

use duet_domain::StoreError;

/// A backend failure the caller may retry: NATS down, slow, or the stream missing.
fn unavailable(err: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(err.into())
}
