//! The relay's hand-off to JetStream.

use std::future::IntoFuture;

use anyhow::anyhow;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use duet_domain::StoreError;
use duet_domain::events::{DurableEvent, EventQueue};
use tracing::instrument;

use super::{Nats, unavailable};

/// Publishes durable events to the stream. Each carries its event id as `Nats-Msg-Id`, so a
/// batch the relay publishes again (it crashed before deleting the outbox rows) is dropped by
/// the server within the duplicate window; delivery is idempotent beyond it.
pub struct NatsQueue {
    nats: Nats,
}

impl NatsQueue {
    pub fn new(nats: &Nats) -> Self {
        Self { nats: nats.clone() }
    }

    /// Sends every event before awaiting any ack (one round trip per batch, not per event),
    /// then waits for all acks. A `duplicate` ack means the stream already holds the event.
    async fn publish_all(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        let options = self.nats.options();
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event).map_err(anyhow::Error::from)?;
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(event.id.to_string());
            let subject = options.event_subject(event.body.conversation_id());
            acks.push(
                self.nats
                    .jetstream()
                    .send_publish(subject, message)
                    .await
                    .map_err(unavailable)?,
            );
        }
        let results =
            futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await;
        for result in results {
            if let Err(err) = result {
                if err.kind() == PublishErrorKind::StreamNotFound {
                    // Lost with a NATS wiped clean: set it up again for the relay's retry.
                    self.nats.ensure_stream().await?;
                }
                return Err(unavailable(err));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventQueue for NatsQueue {
    #[instrument(skip_all, fields(events = events.len()))]
    async fn publish(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let result = if !self.nats.is_connected() {
            // Queued publishes would only wait out the timeout, then go out after reconnecting.
            Err(unavailable(anyhow!("not connected to NATS")))
        } else {
            let timeout = self.nats.options().request_timeout;
            tokio::time::timeout(timeout, self.publish_all(events))
                .await
                .unwrap_or_else(|_| {
                    Err(unavailable(anyhow!("no ack from NATS within {timeout:?}")))
                })
        };
        match &result {
            Ok(()) => metrics::counter!("duet_nats_published_total").increment(events.len() as u64),
            Err(err) => {
                metrics::counter!("duet_nats_publish_failures_total").increment(1);
                tracing::debug!(error = %err, "events stay in the outbox");
            }
        }
        result
    }
}
