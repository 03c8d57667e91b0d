//! Wiring: settings → adapters → services → HTTP server and background workers.
//!
//! Tests start the server exactly as `main` does: `Application::build(settings)`, then
//! `port()` and `run_until_stopped()`, with `shutdown_handle()` to stop it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use duet_adapters::crypto::Argon2Credentials;
use duet_adapters::nats::{DeliveryConsumer, Nats};
use duet_adapters::sql::SqlStorage;
use duet_domain::accounts::{AccountService, AccountStore};
use duet_domain::conversations::{ConversationService, ConversationStore};
use duet_domain::events::{Backlog, Outbox, Relay};
use duet_domain::inbox::{InboxService, InboxStore};
use duet_domain::presence::PresenceService;
use poem::Server;
use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::delivery::{self, DeliveryLag, DeliveryStack};
use crate::rate_limit::AuthRateLimiter;
use crate::state::{Accelerator, AppState};
use crate::{caches, routes, storage, telemetry, workers};

/// A built server: storage connected and migrated, services wired, port bound. Nothing runs
/// until [`Application::run_until_stopped`].
pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    endpoint: BoxEndpoint<'static>,
    state: Arc<AppState>,
    relay: Arc<Relay>,
    /// Measured while serving; sends are refused while it is over the limit.
    delivery_lag: Arc<DeliveryLag>,
    /// With NATS: applies the events this process is handed.
    consumer: Option<DeliveryConsumer>,
    /// With NATS: drained on shutdown, so the server forgets this process's pull requests at
    /// once instead of handing it events it will never ack.
    nats: Option<Nats>,
    inbox: Arc<dyn InboxStore>,
    accounts: Arc<dyn AccountStore>,
    storage: SqlStorage,
    settings: Settings,
}

impl Application {
    /// Connects storage (migrating if `storage.migrate_on_start`), builds the services and
    /// binds `server.host:server.port` (port 0 picks a free one).
    ///
    /// # Errors
    /// When storage cannot be reached or migrated, or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // In process anyway: a message's inboxes are written with it, not by the relay, and
        // the send pushes it live.
        let inline_delivery = settings.delivery.kind == crate::config::DeliveryKind::Memory
            && settings.delivery.inline;
        let storage = storage::connect(
            &settings.storage,
            settings.storage.migrate_on_start,
            inline_delivery,
        )
        .await
        .context("connecting to storage")?;
        match Self::assemble(settings, storage.clone()).await {
            Ok(app) => Ok(app),
            Err(err) => {
                storage.close().await;
                Err(err)
            }
        }
    }

    async fn assemble(settings: Settings, storage: SqlStorage) -> anyhow::Result<Self> {
        let accounts: Arc<dyn AccountStore> = Arc::new(storage.clone());
        let conversations: Arc<dyn ConversationStore> = Arc::new(storage.clone());
        let inbox: Arc<dyn InboxStore> = Arc::new(storage.clone());
        let outbox: Arc<dyn Outbox> = Arc::new(storage.clone());

        let DeliveryStack {
            queue,
            queued,
            live,
            consumer,
            nats,
        } = delivery::build(&settings.delivery, inbox.clone())
            .await
            .context("setting up delivery")?;
        let mut backlogs: Vec<Arc<dyn Backlog>> = vec![Arc::new(storage.clone())];
        backlogs.extend(queued);
        let delivery_lag = Arc::new(DeliveryLag::new(
            backlogs,
            Duration::from_millis(settings.delivery.max_lag_ms),
        ));
        let relay = Arc::new(
            Relay::new(outbox, queue, settings.delivery.relay_batch)
                .with_max_attempts(settings.delivery.relay_max_attempts),
        );
        // Only with SQLite is this process the one that can revoke a session.
        let sole_revoker = settings.storage.kind == crate::config::StorageKind::Sqlite;
        let caches = caches::build(&settings.cache, &settings.limits, sole_revoker)?;
        let mut accelerators = Vec::new();
        if let Some(nats) = nats.clone() {
            accelerators.push(Accelerator {
                name: "nats",
                is_up: Box::new(move || nats.is_connected()),
            });
        }
        if let Some(redis) = caches.redis.clone() {
            accelerators.push(Accelerator {
                name: "redis",
                is_up: Box::new(move || redis.healthy()),
            });
        }

        let session_ttl = chrono::Duration::hours(i64::from(settings.auth.session_ttl_hours));
        let attempts = NonZeroU32::new(settings.auth.attempts_per_minute)
            .context("auth.attempts_per_minute must be at least 1")?;
        let mut account_service = AccountService::new(
            accounts.clone(),
            Arc::new(Argon2Credentials::new()),
            session_ttl,
        );
        if let Some(sessions) = caches.sessions {
            account_service = account_service.with_session_cache(sessions);
        }
        let mut conversation_service = ConversationService::new(
            accounts.clone(),
            conversations.clone(),
            inbox.clone(),
            live.clone(),
        );
        if let Some(history) = caches.history {
            conversation_service = conversation_service.with_history_cache(history);
        }
        if let Some(limiter) = caches.send_limit {
            conversation_service = conversation_service.with_send_limit(limiter);
        }
        conversation_service = conversation_service.with_delivery_pressure(delivery_lag.clone());
        let state = Arc::new(AppState {
            accounts: account_service,
            conversations: conversation_service,
            inbox: InboxService::new(accounts.clone(), inbox.clone()),
            presence: PresenceService::new(
                caches.presence,
                conversations,
                inbox.clone(),
                live.clone(),
            ),
            presence_heartbeat: Duration::from_secs((settings.cache.presence_ttl_secs / 3).max(1)),
            live,
            storage: storage.clone(),
            accelerators,
            auth_limiter: AuthRateLimiter::new(attempts),
            metrics: telemetry::metrics_handle(),
            server: settings.server.clone(),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
        });

        let address = (settings.server.host.as_str(), settings.server.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {}:{}", address.0, address.1))?;
        let port = listener.local_addr()?.port();
        let acceptor = TcpAcceptor::from_tokio(listener)?;

        Ok(Self {
            acceptor,
            port,
            endpoint: routes::endpoint(state.clone())?,
            state,
            relay,
            delivery_lag,
            consumer,
            nats,
            inbox,
            accounts,
            storage,
            settings,
        })
    }

    /// The bound port (the real one when `server.port` was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancelling this token stops the server, the workers and every open WebSocket.
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (or the server fails), then lets in-flight
    /// requests finish (up to `server.shutdown_timeout_secs`), waits for the workers and
    /// WebSocket sessions, and closes the storage pools, so the same database can be opened
    /// again at once.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            acceptor,
            port,
            endpoint,
            state,
            relay,
            delivery_lag,
            consumer,
            nats,
            inbox,
            accounts,
            storage,
            settings,
        } = self;
        let shutdown = state.shutdown.clone();
        let grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
        let delivery = &settings.delivery;

        let workers = TaskTracker::new();
        let relaying = workers.spawn(workers::relay(
            relay,
            Duration::from_millis(delivery.relay_poll_ms),
            shutdown.clone(),
        ));
        if let Some(consumer) = consumer {
            // The consumer stops only after the relay's last step: an event this process
            // publishes while stopping is then still taken (or handed back) by its own
            // consumer, rather than left to the server's redelivery after the ack wait.
            let consumer_stop = CancellationToken::new();
            let stop_after_relay = consumer_stop.clone();
            workers.spawn(async move {
                let _ = relaying.await;
                stop_after_relay.cancel();
            });
            workers.spawn(async move { consumer.run(consumer_stop).await });
        }
        workers.spawn(workers::prune(
            inbox,
            accounts,
            Duration::from_secs(delivery.prune_interval_secs),
            chrono::Duration::days(i64::from(delivery.feed_retention_days)),
            shutdown.clone(),
        ));
        workers.spawn(delivery_lag.watch(
            Duration::from_millis(delivery.lag_check_ms),
            shutdown.clone(),
        ));
        workers.spawn(workers::metrics_upkeep(
            state.metrics.clone(),
            shutdown.clone(),
        ));
        workers.close();

        tracing::info!(port, "duet is serving");
        let served = Server::new_with_acceptor(acceptor)
            .name("duet")
            .run_with_graceful_shutdown(endpoint, shutdown.clone().cancelled_owned(), Some(grace))
            .await;

        // The server may also have stopped on its own (an accept error): stop everything else.
        shutdown.cancel();
        state.sessions.close();
        if tokio::time::timeout(grace, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some WebSocket sessions did not end in time");
        }
        if tokio::time::timeout(grace, workers.wait()).await.is_err() {
            tracing::warn!("some background workers did not stop in time");
        }
        if let Some(nats) = nats
            && tokio::time::timeout(grace, nats.client().drain())
                .await
                .is_err()
        {
            tracing::warn!("the NATS connection did not drain in time");
        }
        storage.close().await;
        tracing::info!("duet stopped");
        served.context("HTTP server failed")
    }
}
