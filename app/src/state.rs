//! What every handler shares, built once by [`crate::Application::build`].

use std::sync::Arc;

use duet_adapters::sql::SqlStorage;
use duet_domain::accounts::AccountService;
use duet_domain::conversations::ConversationService;
use duet_domain::events::LiveBus;
use duet_domain::inbox::InboxService;
use duet_domain::presence::PresenceService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerSettings;
use crate::rate_limit::AuthRateLimiter;

/// An optional backend (NATS, Redis): Duet serves without it, more slowly.
pub struct Accelerator {
    pub name: &'static str,
    /// Whether it answers right now; cheap (no I/O).
    pub is_up: Box<dyn Fn() -> bool + Send + Sync>,
}

/// The services and process-level handles the API needs. Handlers reach it through
/// `Arc<AppState>` (poem-openapi API objects hold one; plain poem handlers and the auth checker
/// read it from request data).
pub struct AppState {
    pub accounts: AccountService,
    pub conversations: ConversationService,
    pub inbox: InboxService,
    /// Who is online; announced to peers when a device connects or leaves.
    pub presence: PresenceService,
    /// How often an open event stream tells presence its user is still connected.
    pub presence_heartbeat: std::time::Duration,
    /// Live fan-out; the WebSocket subscribes here before replaying from the feed.
    pub live: Arc<dyn LiveBus>,
    /// Pinged by `GET /health/ready`.
    pub storage: SqlStorage,
    /// Optional backends `GET /health/ready` reports as degraded when down.
    pub accelerators: Vec<Accelerator>,
    /// Login and registration attempts per client address.
    pub auth_limiter: AuthRateLimiter,
    pub metrics: PrometheusHandle,
    pub server: ServerSettings,
    /// Cancelled on shutdown: open WebSockets close when it fires.
    pub shutdown: CancellationToken,
    /// Every open WebSocket session, so shutdown can wait for them before closing the pools.
    pub sessions: TaskTracker,
}
