//! The relay's hand-off to JetStream.

use std::collections::BTreeMap;
use std::future::IntoFuture;

use anyhow::anyhow;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::StoreError;
use duet_domain::events::{Backlog, DurableEvent, EventQueue};
use tracing::instrument;

use super::{Nats, unavailable};

/// Most events in one stream message.
const MAX_BATCH_EVENTS: usize = 256;
/// Most bytes of events in one stream message, well under NATS's default 1 MiB payload.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Publishes durable events to the stream, one message per partition per relay batch: a JSON
/// array of that partition's events, in order (see [`EventBatch`]), so a consumer applies
/// them in one transaction and acks them with one ack. Each message carries its events' ids as
/// `Nats-Msg-Id`, so a batch the relay publishes again as it was (it crashed before deleting
/// the outbox rows) is dropped by the server within the duplicate window; delivery is
/// idempotent beyond it, and for a batch made up differently.
pub struct NatsQueue {
    nats: Nats,
}

impl NatsQueue {
    pub fn new(nats: &Nats) -> Self {
        Self { nats: nats.clone() }
    }

    /// Sends every batch message before awaiting any ack (one round trip per relay batch, not
    /// per message), then waits for all acks. A `duplicate` ack means the stream already holds
    /// the batch.
    async fn publish_all(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        let options = self.nats.options();
        let mut by_partition: BTreeMap<usize, Vec<&DurableEvent>> = BTreeMap::new();
        for event in events {
            by_partition
                .entry(options.partition(event.body.conversation_id()))
                .or_default()
                .push(event);
        }
        let mut acks = Vec::new();
        for (partition, events) in by_partition {
            for payload in batches(&events)? {
                let message = PublishMessage::build()
                    .payload(payload.bytes.into())
                    .message_id(payload.id);
                acks.push(
                    self.nats
                        .jetstream()
                        .send_publish(options.partition_subject(partition), message)
                        .await
                        .map_err(unavailable)?,
                );
            }
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

/// One stream message: its payload and its deduplication id.
struct BatchPayload {
    bytes: Vec<u8>,
    id: String,
}

/// `events` (one partition's, in order) as stream messages of at most [`MAX_BATCH_EVENTS`]
/// events and about [`MAX_BATCH_BYTES`] each.
fn batches(events: &[&DurableEvent]) -> Result<Vec<BatchPayload>, StoreError> {
    let mut encoded = Vec::with_capacity(events.len());
    for event in events {
        encoded.push(serde_json::to_vec(event).map_err(anyhow::Error::from)?);
    }
    let mut payloads = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let mut end = start;
        let mut size = 2;
        while end < events.len()
            && end - start < MAX_BATCH_EVENTS
            && (end == start || size + encoded[end].len() < MAX_BATCH_BYTES)
        {
            size += encoded[end].len() + 1;
            end += 1;
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.push(b'[');
        for (i, event) in encoded[start..end].iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(event);
        }
        bytes.push(b']');
        let id = format!("{}+{}", events[start].id, end - start);
        payloads.push(BatchPayload { bytes, id });
        start = end;
    }
    Ok(payloads)
}

/// What a stream message holds: a batch of one partition's events, in order, or (as written
/// before batches) a single event.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum EventBatch {
    Many(Vec<DurableEvent>),
    One(Box<DurableEvent>),
}

impl EventBatch {
    pub(super) fn into_events(self) -> Vec<DurableEvent> {
        match self {
            Self::Many(events) => events,
            Self::One(event) => vec![*event],
        }
    }
}

/// The stream holds only what is not applied yet (work-queue retention): its first message is
/// the oldest event waiting.
#[async_trait]
impl Backlog for NatsQueue {
    async fn oldest_waiting(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let stream = self
            .nats
            .jetstream()
            .get_stream(&self.nats.options().stream)
            .await
            .map_err(unavailable)?;
        let state = &stream.cached_info().state;
        if state.messages == 0 {
            return Ok(None);
        }
        let first = state.first_timestamp;
        Ok(DateTime::from_timestamp(
            first.unix_timestamp(),
            first.nanosecond(),
        ))
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

#[cfg(test)]
mod tests {
    use duet_domain::conversations::Message;
    use duet_domain::inbox::FeedEventBody;
    use duet_domain::{ConversationId, MessageId, UserId};

    use super::*;

    fn event(body_bytes: usize) -> DurableEvent {
        let (a, b) = (UserId::generate(), UserId::generate());
        let message = Message {
            id: MessageId::generate(),
            conversation_id: ConversationId::between(a, b),
            seq: 1,
            sender_id: a,
            client_msg_id: "c".into(),
            body: "x".repeat(body_bytes),
            created_at: duet_domain::clock::now(),
        };
        DurableEvent::new(
            [a, b],
            FeedEventBody::MessageCreated { message },
            duet_domain::clock::now(),
        )
    }

    fn decoded(payload: &BatchPayload) -> Vec<DurableEvent> {
        serde_json::from_slice::<EventBatch>(&payload.bytes)
            .expect("a batch decodes")
            .into_events()
    }

    #[test]
    fn batches_keep_every_event_in_order_within_their_limits() {
        let events: Vec<DurableEvent> = (0..600).map(|_| event(10)).collect();
        let refs: Vec<&DurableEvent> = events.iter().collect();
        let payloads = batches(&refs).expect("encodes");
        assert_eq!(payloads.len(), 3, "256 + 256 + 88");
        let round_trip: Vec<DurableEvent> = payloads.iter().flat_map(decoded).collect();
        assert_eq!(round_trip, events);
        assert_eq!(payloads[0].id, format!("{}+256", events[0].id));

        let large: Vec<DurableEvent> = (0..300).map(|_| event(4096)).collect();
        let refs: Vec<&DurableEvent> = large.iter().collect();
        let payloads = batches(&refs).expect("encodes");
        assert!(payloads.iter().all(|p| p.bytes.len() <= MAX_BATCH_BYTES));
        let round_trip: Vec<DurableEvent> = payloads.iter().flat_map(decoded).collect();
        assert_eq!(round_trip, large);
    }

    #[test]
    fn a_single_event_as_written_before_batches_still_decodes() {
        let one = event(5);
        let bytes = serde_json::to_vec(&one).expect("encodes");
        let events = serde_json::from_slice::<EventBatch>(&bytes)
            .expect("decodes")
            .into_events();
        assert_eq!(events, vec![one]);
    }
}
