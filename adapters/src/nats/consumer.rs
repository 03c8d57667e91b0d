//! The delivery side of the queue: every process pulls from one shared durable consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use duet_domain::StoreError;
use duet_domain::events::{DurableEvent, EventHandler};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Nats, unavailable};

/// First wait before re-creating a consumer that failed; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Redelivery delay after a handler's first failure; doubles per delivery up to
/// [`MAX_NAK_DELAY`], so a down database is not hammered by every pending event.
const NAK_DELAY: Duration = Duration::from_secs(1);
const MAX_NAK_DELAY: Duration = Duration::from_secs(60);

/// Applies events from the stream with an [`EventHandler`]. Every process runs one; they
/// share the durable consumer, so the server hands each event to one of them, and hands it
/// again (to any) until it is acked: unlimited redelivery, because an inbox must not miss it.
pub struct DeliveryConsumer {
    nats: Nats,
    handler: Arc<dyn EventHandler>,
}

impl DeliveryConsumer {
    pub fn new(nats: &Nats, handler: Arc<dyn EventHandler>) -> Self {
        Self {
            nats: nats.clone(),
            handler,
        }
    }

    /// Runs [`run_once`](Self::run_once) until `shutdown` is cancelled, backing off between
    /// sessions that fail: NATS down or restarted, the stream or consumer deleted.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            let Err(err) = self.run_once(&shutdown).await else {
                break;
            };
            if started.elapsed() > MAX_BACKOFF {
                // It worked for a while: this is a new outage, not the same one again.
                backoff = MIN_BACKOFF;
            }
            tracing::warn!(error = format!("{err:#}"), retry_in = ?backoff, "event delivery interrupted");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::debug!("event delivery stopped");
    }

    /// One session: sets up the stream and consumer, then applies events, at most
    /// `max_in_flight` at a time, until `shutdown` (returns `Ok`) or until the message stream
    /// fails or ends. Events being applied are finished and acked before it returns; events
    /// pulled but not started are redelivered after the ack wait.
    ///
    /// # Errors
    /// `Unavailable` when NATS cannot be reached or the message stream broke off.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let max_in_flight = self.nats.options().max_in_flight;
        let consumer = self.consumer().await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(max_in_flight)
            .messages()
            .await
            .map_err(unavailable)?;
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let mut running = JoinSet::new();
        let outcome = loop {
            while let Some(done) = running.try_join_next() {
                log_panic(done);
            }
            let permit = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                permit = Arc::clone(&permits).acquire_owned() => permit,
            };
            let Ok(permit) = permit else {
                break Err(StoreError::Unexpected(anyhow!("delivery permits closed")));
            };
            let next = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let handler = Arc::clone(&self.handler);
                    let ack_wait = self.nats.options().ack_wait;
                    running.spawn(async move {
                        deliver(message, handler.as_ref(), ack_wait).await;
                        drop(permit);
                    });
                }
                Some(Err(err)) => break Err(unavailable(err)),
                None => break Err(unavailable(anyhow!("the message stream ended"))),
            }
        };
        while let Some(done) = running.join_next().await {
            log_panic(done);
        }
        outcome
    }

    /// Creates the durable consumer, or binds to it when another process already did.
    async fn consumer(&self) -> Result<PullConsumer, StoreError> {
        let options = self.nats.options();
        // The stream may be gone (NATS restarted without its store) or never made (NATS was
        // down when this process started).
        self.nats.ensure_stream().await?;
        let config = pull::Config {
            durable_name: Some(options.durable_name.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: -1,
            ..Default::default()
        };
        self.nats
            .jetstream()
            .create_consumer_on_stream(config, options.stream.as_str())
            .await
            .map_err(unavailable)
    }
}

/// Applies one event; acks it only once the handler succeeded.
async fn deliver(message: Message, handler: &dyn EventHandler, ack_wait: Duration) {
    let event: DurableEvent = match serde_json::from_slice(&message.payload) {
        Ok(event) => event,
        Err(err) => {
            // No retry can decode it: drop it instead of blocking a slot forever.
            tracing::error!(error = %err, subject = %message.subject, "undecodable event terminated");
            settle(&message, AckKind::Term, "terminated").await;
            return;
        }
    };
    match keep_alive(&message, ack_wait, handler.handle(&event)).await {
        Ok(()) => settle(&message, AckKind::Ack, "acked").await,
        Err(err) => {
            let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
            let delay = nak_delay(delivered);
            tracing::warn!(event = %event.id, error = format!("{err:#}"), delivered, retry_in = ?delay, "event not applied");
            settle(&message, AckKind::Nak(Some(delay)), "nacked").await;
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

/// Sends the outcome; a lost ack only means the event is applied again, idempotently.
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

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(error = %err, "event handler panicked; the event will be redelivered");
    }
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
