//! The delivery side of the queue: one durable pull consumer per partition, shared by every
//! process.
//!
//! Events are published to `{prefix}.events.{partition}`, the partition being a stable hash of
//! their conversation (see [`NatsOptions::partition`](super::NatsOptions::partition)), as
//! batches: one stream message holds a relay batch's events of that partition, in order. Each
//! partition has its own durable consumer with `max_ack_pending = 1`: the server hands out the
//! next message of a partition only once the previous one is acked (or, after a failure, the
//! same one again), so a conversation's events are applied in the order they were published,
//! a whole message in one transaction per user shard, whichever process applies them. Every process pulls from every partition,
//! so any of them takes over a partition another one stops serving.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use duet_domain::StoreError;
use duet_domain::events::EventHandler;
use futures::{FutureExt, StreamExt};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::queue::EventBatch;
use super::{Nats, unavailable};

/// First wait before re-creating a consumer that failed; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Redelivery delay after a handler's first failure; doubles per delivery up to
/// [`MAX_NAK_DELAY`], so a down database is not hammered by every pending event.
const NAK_DELAY: Duration = Duration::from_secs(1);
const MAX_NAK_DELAY: Duration = Duration::from_secs(60);
/// Events asked for per pull request. The server hands out one event per partition at a time
/// anyway (`max_ack_pending = 1`); a larger batch would only park more requests on it.
const PULL_BATCH: usize = 1;
/// How long a pull request waits on the server: an idle partition costs one request per
/// this long per process...
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// ...plus one idle heartbeat per this long, which tells a loop its consumer is gone (NATS
/// restarted without its store, or the stream deleted) within two of them, when nothing else
/// did.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);

/// Applies events from the stream with an [`EventHandler`]. Every process runs one; they
/// share the partitions' durable consumers, so the server hands each event to one of them, and
/// hands it again (to any) until it is acked: unlimited redelivery, because an inbox must not
/// miss it.
pub struct DeliveryConsumer {
    shared: Arc<Shared>,
}

struct Shared {
    nats: Nats,
    handler: Arc<dyn EventHandler>,
    /// When the stream was last set up (see [`Shared::prepare`]): partition loops that fail
    /// together, e.g. when the stream was lost, set it up once between them.
    prepared: Mutex<Option<Instant>>,
}

impl DeliveryConsumer {
    pub fn new(nats: &Nats, handler: Arc<dyn EventHandler>) -> Self {
        Self {
            shared: Arc::new(Shared {
                nats: nats.clone(),
                handler,
                prepared: Mutex::new(None),
            }),
        }
    }

    /// Runs one loop per partition until `shutdown` is cancelled. Each loop applies the
    /// partition's events one at a time and starts over, backing off, when its session fails:
    /// NATS down or restarted, the stream or consumer deleted. At most `max_in_flight` loops
    /// of this process apply an event at the same time.
    ///
    /// It returns once every loop finished the event it was applying (and acked it); events
    /// pulled but not started are handed back to the server for another process.
    pub async fn run(&self, shutdown: CancellationToken) {
        let options = self.shared.nats.options();
        if let Err(err) = self.shared.prepare(Instant::now()).await {
            // Each partition loop sets it up again when its consumer cannot be made.
            tracing::warn!(error = format!("{err:#}"), "event delivery not set up yet");
        }
        let permits = Arc::new(Semaphore::new(options.max_in_flight));
        let mut loops = JoinSet::new();
        for partition in 0..options.partitions {
            loops.spawn(Arc::clone(&self.shared).run_partition(
                partition,
                Arc::clone(&permits),
                shutdown.clone(),
            ));
        }
        while let Some(done) = loops.join_next().await {
            if let Err(err) = done {
                tracing::error!(error = %err, "a partition's delivery loop panicked");
            }
        }
        tracing::debug!("event delivery stopped");
    }
}

impl Shared {
    /// Runs sessions of one partition until `shutdown`, backing off between failed ones.
    async fn run_partition(
        self: Arc<Self>,
        partition: usize,
        permits: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            let outcome = AssertUnwindSafe(self.session(partition, &permits, &shutdown))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unexpected(anyhow!(
                        "the delivery session panicked"
                    )))
                });
            let Err(err) = outcome else {
                break;
            };
            if shutdown.is_cancelled() {
                break;
            }
            if started.elapsed() > MAX_BACKOFF {
                // It worked for a while: this is a new outage, not the same one again.
                backoff = MIN_BACKOFF;
            }
            tracing::warn!(partition, error = format!("{err:#}"), retry_in = ?backoff, "event delivery interrupted");
            metrics::counter!("duet_nats_delivery_interruptions_total").increment(1);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One session of one partition: binds to (or creates) its consumer, then applies its
    /// events one at a time until `shutdown` (returns `Ok`) or until the message stream fails
    /// or ends.
    ///
    /// # Errors
    /// `Unavailable` when NATS cannot be reached or the message stream broke off.
    async fn session(
        &self,
        partition: usize,
        permits: &Semaphore,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        let consumer = self.consumer(partition).await?;
        // Set up again since (by any loop or the queue): this consumer may be on the lost one.
        let mut stream_setups = self.nats.stream_setups();
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(unavailable)?;
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = stream_setups.changed() => {
                    return Err(unavailable(anyhow!("the stream was set up again")));
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => self.deliver(message, permits, shutdown).await,
                Some(Err(err)) => return Err(unavailable(err)),
                None => return Err(unavailable(anyhow!("the message stream ended"))),
            }
        }
        // An event that arrived but was not started goes back now rather than after the ack
        // wait, which would hold up its partition that long.
        while let Some(Some(Ok(message))) = messages.next().now_or_never() {
            settle(&message, AckKind::Nak(None), "released").await;
        }
        Ok(())
    }

    /// Binds to the partition's durable consumer, creating it (or bringing it to this
    /// configuration) when needed.
    async fn consumer(&self, partition: usize) -> Result<PullConsumer, StoreError> {
        let attempted = Instant::now();
        match self.create_consumer(partition).await {
            Ok(consumer) => Ok(consumer),
            Err(err) => {
                // The stream may be gone (NATS restarted without its store) or never made
                // (NATS was down when this process started).
                tracing::debug!(partition, error = %err, "setting up the stream again");
                self.prepare(attempted).await?;
                self.create_consumer(partition).await.map_err(unavailable)
            }
        }
    }

    async fn create_consumer(
        &self,
        partition: usize,
    ) -> Result<PullConsumer, async_nats::jetstream::stream::ConsumerError> {
        let options = self.nats.options();
        let config = pull::Config {
            durable_name: Some(options.partition_consumer(partition)),
            filter_subject: options.partition_subject(partition),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: -1,
            // One event of the partition out at a time: the order across processes.
            max_ack_pending: 1,
            ..Default::default()
        };
        self.nats
            .jetstream()
            .create_consumer_on_stream(config, options.stream.as_str())
            .await
    }

    /// Sets up the stream, unless that was done after `since` already (by another
    /// partition's loop).
    async fn prepare(&self, since: Instant) -> Result<(), StoreError> {
        let mut prepared = self.prepared.lock().await;
        if prepared.is_some_and(|at| at >= since) {
            return Ok(());
        }
        self.nats.ensure_stream().await?;
        *prepared = Some(Instant::now());
        Ok(())
    }

    /// Applies one stream message (a batch of the partition's events) in one go; acks it only
    /// once the handler succeeded. Until then the partition's next message stays on the server.
    async fn deliver(&self, message: Message, permits: &Semaphore, shutdown: &CancellationToken) {
        let events = match serde_json::from_slice::<EventBatch>(&message.payload) {
            Ok(batch) => batch.into_events(),
            Err(err) => {
                // No retry can decode it: drop it instead of blocking its partition forever.
                tracing::error!(error = %err, subject = %message.subject, "undecodable event terminated");
                settle(&message, AckKind::Term, "terminated").await;
                return;
            }
        };
        let ack_wait = self.nats.options().ack_wait;
        let applied = keep_alive(&message, ack_wait, async {
            let _permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                permit = permits.acquire() => permit.ok()?,
            };
            // The whole batch: every member's inbox rows in one transaction per user shard.
            let outcome = AssertUnwindSafe(self.handler.handle_batch(&events))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unexpected(anyhow!(
                        "the event handler panicked"
                    )))
                });
            Some(outcome)
        })
        .await;
        match applied {
            Some(Ok(())) => settle(&message, AckKind::Ack, "acked").await,
            Some(Err(err)) => {
                let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
                let delay = nak_delay(delivered);
                let first = events.first().map(|e| e.id.to_string()).unwrap_or_default();
                tracing::warn!(first_event = %first, events = events.len(), error = format!("{err:#}"), delivered, retry_in = ?delay, "events not applied");
                settle(&message, AckKind::Nak(Some(delay)), "nacked").await;
            }
            // Shutting down before it started: another process takes it at once.
            None => settle(&message, AckKind::Nak(None), "released").await,
        }
    }
}

/// Runs `work`, telling the server it is still in progress every half ack wait, so a slow
/// handler is not raced by a redelivery to another process.
async fn keep_alive<T>(message: &Message, ack_wait: Duration, work: impl Future<Output = T>) -> T {
    let period = (ack_wait / 2).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticks.tick() => {
                if let Err(err) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %err, "progress ack failed");
                }
            }
        }
    }
}

/// Sends the outcome; a lost ack only means the event is applied again, idempotently (and
/// holds up its partition until the ack wait ends).
async fn settle(message: &Message, kind: AckKind, outcome: &'static str) {
    if let Err(err) = message.ack_with(kind).await {
        tracing::warn!(error = %err, outcome, "could not settle event; it will be redelivered");
    }
    metrics::counter!("duet_nats_delivered_total", "outcome" => outcome).increment(1);
}

fn nak_delay(delivered: i64) -> Duration {
    // `delivered` counts from 1; a missing or bogus count is treated as a first delivery.
    let doublings = u32::try_from(delivered.saturating_sub(1).max(0))
        .unwrap_or(u32::MAX)
        .min(16);
    NAK_DELAY.saturating_mul(1 << doublings).min(MAX_NAK_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_backs_off_and_stays_bounded() {
        assert_eq!(nak_delay(1), NAK_DELAY);
        assert_eq!(nak_delay(2), NAK_DELAY * 2);
        assert_eq!(nak_delay(1_000), MAX_NAK_DELAY);
        assert_eq!(nak_delay(0), NAK_DELAY);
    }
}
