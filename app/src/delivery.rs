//! The delivery section of the settings becomes the event queue, the live bus and (with
//! NATS) the consumer that applies events on this process.
//!
//! - `memory`: with `delivery.inline`, a message is delivered in its own append transaction
//!   when both inboxes are in the conversation's database, and the send pushes it live (see
//!   `GroupCommitOptions::inline_delivery`, wired in `startup`); for everything else the
//!   relay's hand-off *is* delivery (applied before the outbox row goes). Live events reach
//!   devices on this process only.
//! - `nats`: the relay publishes to JetStream, one subject per partition of conversations;
//!   every process runs a loop per partition on durable consumers they all share, so each
//!   event is applied once, in conversation order, by whichever process gets it; live events
//!   go through core NATS to the process holding each device.

use std::sync::Arc;
use std::time::Duration;

use duet_adapters::memory::{DirectQueue, MemoryLiveBus};
use duet_adapters::nats::{DeliveryConsumer, Nats, NatsLiveBus, NatsOptions, NatsQueue};
use duet_domain::events::{Delivery, EventQueue, LiveBus};
use duet_domain::inbox::InboxStore;

use crate::config::{DeliveryKind, DeliverySettings};

/// Live events buffered per connected user before a slow subscriber is told it lagged (it
/// then catches up from its feed).
pub const LIVE_BUFFER: usize = 256;

/// The wired delivery path.
pub struct DeliveryStack {
    pub queue: Arc<dyn EventQueue>,
    pub live: Arc<dyn LiveBus>,
    /// Set with NATS: run it as a background worker.
    pub consumer: Option<DeliveryConsumer>,
    /// Set with NATS: reported by the readiness check.
    pub nats: Option<Nats>,
}

/// NATS options from the settings.
pub fn nats_options(settings: &DeliverySettings) -> NatsOptions {
    let nats = &settings.nats;
    NatsOptions {
        url: nats.url.expose().to_owned(),
        stream: nats.stream.clone(),
        subject_prefix: nats.subject_prefix.clone(),
        durable_name: nats.consumer.clone(),
        partitions: nats.partitions,
        ack_wait: Duration::from_secs(nats.ack_wait_secs),
        max_in_flight: nats.max_in_flight,
        request_timeout: Duration::from_millis(nats.request_timeout_ms.max(1)),
        live_buffer: LIVE_BUFFER,
        ..NatsOptions::default()
    }
}

/// Builds the queue, the live bus and the consumer the settings ask for.
///
/// # Errors
/// With NATS, when the options are invalid or the server refuses the stream's configuration
/// (NATS being down is not an error: the process starts and reconnects).
pub async fn build(
    settings: &DeliverySettings,
    inbox: Arc<dyn InboxStore>,
) -> anyhow::Result<DeliveryStack> {
    match settings.kind {
        DeliveryKind::Memory => {
            let live: Arc<dyn LiveBus> = Arc::new(MemoryLiveBus::new(LIVE_BUFFER));
            let delivery = Arc::new(Delivery::new(inbox, live.clone()));
            Ok(DeliveryStack {
                queue: Arc::new(DirectQueue::new(delivery)),
                live,
                consumer: None,
                nats: None,
            })
        }
        DeliveryKind::Nats => {
            let nats = Nats::connect(nats_options(settings)).await?;
            let live: Arc<dyn LiveBus> = Arc::new(NatsLiveBus::new(&nats));
            let delivery = Arc::new(Delivery::new(inbox, live.clone()));
            Ok(DeliveryStack {
                queue: Arc::new(NatsQueue::new(&nats)),
                live,
                consumer: Some(DeliveryConsumer::new(&nats, delivery)),
                nats: Some(nats),
            })
        }
    }
}
