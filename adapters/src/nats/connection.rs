//! The process's NATS connection and the JetStream stream it publishes to.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::connection::State;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event};
use duet_domain::{ConversationId, StoreError};
use tokio::sync::watch;

use super::unavailable;

/// Most partitions a stream may be split into: each is a consumer on the server and a pull
/// loop on every process.
pub const MAX_PARTITIONS: usize = 1024;

/// How to reach NATS and name what Duet keeps there.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream holding durable events.
    pub stream: String,
    /// First token of every subject: events go to `{prefix}.events.{partition}`, live fan-out
    /// to `{prefix}.live.{user_id}`. Lets several deployments share one NATS.
    pub subject_prefix: String,
    /// Base name of the durable pull consumers every process shares: one per partition,
    /// `{durable_name}-{partition}`.
    pub durable_name: String,
    /// How many partitions the events are spread over, by a stable hash of their conversation
    /// id (see [`NatsOptions::partition`]). Events of one partition are applied one at a time,
    /// in stream order, by whichever process gets them; partitions proceed in parallel. Every
    /// process sharing the stream must use the same value, and it must not change while the
    /// stream holds pending events (they would stay on subjects no consumer reads, or be
    /// reordered against newer events of their conversation): drain first (stop the relays,
    /// wait for the consumers' backlog to reach zero), then change it everywhere.
    pub partitions: usize,
    /// How long the server waits for an ack before redelivering an event to any process.
    /// Slow handlers extend it with progress acks, so it bounds the stall after a crash.
    pub ack_wait: Duration,
    /// Partitions one process applies events of at the same time (each partition applies one
    /// event at a time). It protects the process's database pools when `partitions` is large;
    /// at or above `partitions` (the default) it never binds.
    pub max_in_flight: usize,
    /// Upper bound of every request to NATS: a publish batch, stream and consumer setup.
    pub request_timeout: Duration,
    /// Live events buffered per connected user on this process before a slow device is
    /// told it lagged.
    pub live_buffer: usize,
    /// How long the server remembers event ids to drop a re-published event.
    pub duplicate_window: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "DUET_EVENTS".into(),
            subject_prefix: "duet".into(),
            durable_name: "duet-delivery".into(),
            partitions: 32,
            ack_wait: Duration::from_secs(30),
            max_in_flight: 64,
            request_timeout: Duration::from_secs(5),
            live_buffer: 256,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl NatsOptions {
    /// The partition of `conversation`'s events: FNV-1a (64 bit) of the id's 16 bytes modulo
    /// `partitions`. Stable across processes, builds and versions: it must never change while
    /// a stream holds events.
    pub fn partition(&self, conversation: ConversationId) -> usize {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = conversation
            .as_uuid()
            .as_bytes()
            .iter()
            .fold(OFFSET, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
            });
        let partitions = self.partitions.max(1) as u64;
        // The remainder is below `partitions`, a usize.
        usize::try_from(hash % partitions).unwrap_or(0)
    }

    /// The subject of `partition`; all match the stream's `events.>` filter and none overlaps
    /// another, as the work-queue stream requires of its consumers' filters.
    pub fn partition_subject(&self, partition: usize) -> String {
        format!("{}.events.{partition}", self.subject_prefix)
    }

    /// Every event subject: the stream's filter.
    pub(super) fn all_events_subject(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    /// The durable consumer of `partition`.
    pub fn partition_consumer(&self, partition: usize) -> String {
        format!("{}-{partition}", self.durable_name)
    }

    /// Where live events of `user` go.
    pub(super) fn live_subject(&self, user: impl std::fmt::Display) -> String {
        format!("{}.live.{user}", self.subject_prefix)
    }
}

/// A cheap-to-clone handle on the process's NATS connection.
#[derive(Clone)]
pub struct Nats {
    client: Client,
    jetstream: jetstream::Context,
    options: Arc<NatsOptions>,
    /// Counts (re)connections; live subscribers lagged whenever it moves.
    connects: watch::Receiver<u64>,
    /// Counts the times the stream was set up again after it was found missing; delivery
    /// sessions bound to the lost stream start over when it moves (see [`Nats::ensure_stream`]).
    stream_setups: Arc<watch::Sender<u64>>,
}

impl Nats {
    /// Connects in the background and sets up the stream.
    ///
    /// The process starts even when NATS is down: the client keeps reconnecting forever, the
    /// queue answers `Unavailable` meanwhile, and the stream is set up again by the consumer
    /// once NATS is back.
    ///
    /// # Errors
    /// When the options are invalid (URL, names) or the server refuses the stream's
    /// configuration, e.g. a stream of that name with another retention policy exists.
    pub async fn connect(options: NatsOptions) -> anyhow::Result<Nats> {
        anyhow::ensure!(
            options.max_in_flight > 0,
            "nats.max_in_flight must be positive"
        );
        anyhow::ensure!(options.live_buffer > 0, "nats.live_buffer must be positive");
        anyhow::ensure!(
            (1..=MAX_PARTITIONS).contains(&options.partitions),
            "nats.partitions must be between 1 and {MAX_PARTITIONS}"
        );
        let (connects_tx, connects) = watch::channel(0u64);
        let connects_tx = Arc::new(connects_tx);
        let client = ConnectOptions::new()
            .name("duet")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(options.request_timeout)
            .request_timeout(Some(options.request_timeout))
            .event_callback(move |event| {
                let connects_tx = Arc::clone(&connects_tx);
                async move { on_event(&connects_tx, event) }
            })
            .connect(options.url.as_str())
            .await
            .with_context(|| format!("invalid NATS address {}", options.url))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());
        let nats = Nats {
            client,
            jetstream,
            options: Arc::new(options),
            connects,
            stream_setups: Arc::new(watch::channel(0u64).0),
        };
        match nats.set_up_stream().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(err)) => {
                tracing::warn!(error = %err, "NATS unavailable at start; the stream is set up once it is back");
            }
            Err(err) => return Err(err).context("setting up the JetStream stream"),
        }
        Ok(nats)
    }

    /// Whether the connection is up right now: the readiness check.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &NatsOptions {
        &self.options
    }

    /// The core NATS client, e.g. for statistics.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The JetStream context, e.g. to inspect the stream and consumer.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Changes each time the connection is (re)established.
    pub(super) fn connects(&self) -> watch::Receiver<u64> {
        self.connects.clone()
    }

    /// Changes each time the stream was set up again by [`Nats::ensure_stream`].
    pub(super) fn stream_setups(&self) -> watch::Receiver<u64> {
        self.stream_setups.subscribe()
    }

    /// Sets the stream up again after it was found missing (NATS restarted without its store,
    /// or someone deleted it), and tells this process's delivery sessions to bind to it anew:
    /// the server tells a pull request that its consumer was deleted only sometimes (2.9
    /// notifies some requests and not others), and otherwise a session would wait for two
    /// missed heartbeats.
    ///
    /// # Errors
    /// As [`Nats::set_up_stream`].
    pub async fn ensure_stream(&self) -> Result<(), StoreError> {
        self.set_up_stream().await?;
        self.stream_setups.send_modify(|count| *count += 1);
        Ok(())
    }

    /// Creates the stream, or brings an existing one to this configuration.
    ///
    /// Work-queue retention removes an event once the consumer acked it, so the stream holds
    /// only the backlog; file storage keeps that backlog across a NATS restart.
    ///
    /// # Errors
    /// `Unavailable` when NATS cannot be reached in time; `Unexpected` when the server rejects
    /// the configuration.
    async fn set_up_stream(&self) -> Result<(), StoreError> {
        use async_nats::jetstream::context::CreateStreamErrorKind as Kind;
        let config = stream::Config {
            name: self.options.stream.clone(),
            subjects: vec![self.options.all_events_subject()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: self.options.duplicate_window,
            ..Default::default()
        };
        match self.jetstream.create_or_update_stream(config).await {
            Ok(_) => Ok(()),
            Err(err) => match err.kind() {
                Kind::TimedOut | Kind::JetStreamUnavailable | Kind::Response => {
                    Err(unavailable(err))
                }
                _ => Err(StoreError::Unexpected(
                    anyhow::Error::new(err)
                        .context(format!("configuring stream {}", self.options.stream)),
                )),
            },
        }
    }
}

fn on_event(connects: &watch::Sender<u64>, event: Event) {
    match event {
        Event::Connected => {
            tracing::info!("connected to NATS");
            connects.send_modify(|count| *count += 1);
        }
        Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        other => tracing::warn!(event = %other, "NATS"),
    }
}
