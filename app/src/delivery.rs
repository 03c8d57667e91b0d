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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use duet_adapters::memory::{DirectQueue, MemoryLiveBus};
use duet_adapters::nats::{DeliveryConsumer, Nats, NatsLiveBus, NatsOptions, NatsQueue};
use duet_domain::events::{Backlog, Delivery, DeliveryPressure, EventQueue, LiveBus};
use duet_domain::inbox::InboxStore;

use crate::config::{DeliveryKind, DeliverySettings};

/// Live events buffered per connected user before a slow subscriber is told it lagged (it
/// then catches up from its feed).
pub const LIVE_BUFFER: usize = 256;

/// The wired delivery path.
pub struct DeliveryStack {
    pub queue: Arc<dyn EventQueue>,
    /// Set with NATS: the stream, where published events wait until applied.
    pub queued: Option<Arc<dyn Backlog>>,
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
                queued: None,
                live,
                consumer: None,
                nats: None,
            })
        }
        DeliveryKind::Nats => {
            let nats = Nats::connect(nats_options(settings)).await?;
            let live: Arc<dyn LiveBus> = Arc::new(NatsLiveBus::new(&nats));
            let delivery = Arc::new(Delivery::new(inbox, live.clone()));
            let queue = Arc::new(NatsQueue::new(&nats));
            Ok(DeliveryStack {
                queue: queue.clone(),
                queued: Some(queue),
                live,
                consumer: Some(DeliveryConsumer::new(&nats, delivery)),
                nats: Some(nats),
            })
        }
    }
}

/// How far behind delivery is: the age of the oldest event still waiting in a backlog (the
/// outboxes, and with NATS the stream), measured every `delivery.lag_check_ms` by
/// [`DeliveryLag::watch`]. While it is over `delivery.max_lag_ms`, sends are refused, so
/// senders slow down to what delivery sustains instead of the lag growing without bound.
///
/// Not while a backlog cannot be read (NATS is down): then delivery is not slow but stopped,
/// and sends go on into the outboxes, durable, to be delivered once it is back. The limit is
/// for a delivery that runs and cannot keep up.
pub struct DeliveryLag {
    backlogs: Vec<Arc<dyn Backlog>>,
    limit: Duration,
    lag_ms: AtomicU64,
    /// A backlog could not be read at the last measurement.
    stopped: AtomicBool,
}

/// What a refused send is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl DeliveryLag {
    /// `limit` zero never refuses.
    pub fn new(backlogs: Vec<Arc<dyn Backlog>>, limit: Duration) -> Self {
        Self {
            backlogs,
            limit,
            lag_ms: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// The lag measured last.
    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }

    /// Measures the lag now.
    pub async fn measure(&self) {
        let mut oldest = None;
        let mut stopped = false;
        for backlog in &self.backlogs {
            match backlog.oldest_waiting().await {
                Ok(Some(at)) => {
                    oldest = Some(oldest.map_or(at, |o: chrono::DateTime<_>| o.min(at)))
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "a delivery backlog could not be read");
                    stopped = true;
                }
            }
        }
        self.stopped.store(stopped, Ordering::Relaxed);
        let lag = oldest.map_or(Duration::ZERO, |at| {
            (duet_domain::clock::now() - at)
                .to_std()
                .unwrap_or_default()
        });
        let millis = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
        self.lag_ms.store(millis, Ordering::Relaxed);
        metrics::gauge!("duet_delivery_lag_seconds").set(lag.as_secs_f64());
    }

    /// Measures every `interval` until `shutdown`.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            self.measure().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl DeliveryPressure for DeliveryLag {
    fn refuse_for(&self) -> Option<Duration> {
        let behind = self.lag() > self.limit && !self.stopped.load(Ordering::Relaxed);
        (!self.limit.is_zero() && behind).then_some(RETRY_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use duet_domain::StoreError;

    use super::*;

    /// A backlog whose oldest event is whatever the test sets.
    #[derive(Default)]
    struct Waiting(Mutex<Option<DateTime<Utc>>>);

    #[async_trait]
    impl Backlog for Waiting {
        async fn oldest_waiting(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(*self.0.lock().expect("not poisoned"))
        }
    }

    struct Unreachable;

    #[async_trait]
    impl Backlog for Unreachable {
        async fn oldest_waiting(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
            Err(StoreError::Unavailable(anyhow::anyhow!("down")))
        }
    }

    #[tokio::test]
    async fn sends_are_refused_only_while_the_oldest_waiting_event_is_over_the_limit() {
        let outbox = Arc::new(Waiting::default());
        let queue = Arc::new(Waiting::default());
        let lag = DeliveryLag::new(vec![outbox.clone(), queue.clone()], Duration::from_secs(2));
        lag.measure().await;
        assert_eq!(lag.refuse_for(), None, "nothing waits");

        let now = duet_domain::clock::now();
        *queue.0.lock().expect("not poisoned") = Some(now - chrono::Duration::seconds(1));
        lag.measure().await;
        assert_eq!(
            lag.refuse_for(),
            None,
            "one second behind is within the limit"
        );

        *outbox.0.lock().expect("not poisoned") = Some(now - chrono::Duration::seconds(5));
        lag.measure().await;
        assert!(
            lag.lag() >= Duration::from_secs(5),
            "the oldest of all backlogs"
        );
        assert_eq!(lag.refuse_for(), Some(RETRY_AFTER));

        *outbox.0.lock().expect("not poisoned") = None;
        lag.measure().await;
        assert_eq!(lag.refuse_for(), None, "caught up again");
    }

    #[tokio::test]
    async fn sends_go_on_into_the_outbox_while_the_queue_is_down() {
        let outbox = Arc::new(Waiting::default());
        *outbox.0.lock().expect("not poisoned") =
            Some(duet_domain::clock::now() - chrono::Duration::minutes(1));
        let lag = DeliveryLag::new(
            vec![outbox.clone(), Arc::new(Unreachable)],
            Duration::from_secs(2),
        );
        lag.measure().await;
        assert!(
            lag.lag() >= Duration::from_secs(60),
            "the outbox's backlog still counts"
        );
        assert_eq!(
            lag.refuse_for(),
            None,
            "a stopped queue is no reason to refuse"
        );
    }

    #[tokio::test]
    async fn a_zero_limit_never_refuses() {
        let outbox = Arc::new(Waiting::default());
        *outbox.0.lock().expect("not poisoned") =
            Some(duet_domain::clock::now() - chrono::Duration::hours(1));
        let lag = DeliveryLag::new(vec![outbox], Duration::ZERO);
        lag.measure().await;
        assert_eq!(lag.refuse_for(), None);
    }
}
