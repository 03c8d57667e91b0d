//! What every handler shares, built once by [`crate::Application::build`].

use std::sync::Arc;

use duet_adapters::sql::SqlStorage;
use duet_domain::accounts::AccountService;
use duet_domain::conversations::ConversationService;
use duet_domain::events::LiveBus;
use duet_domain::inbox::InboxService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerSettings;
use crate::rate_limit::AuthRateLimiter;

/// The services and process-level handles the API needs. Handlers reach it through
/// `Arc<AppState>` (poem-openapi API objects hold one; plain poem handlers and the auth checker
/// read it from request data).
pub struct AppState {
    pub accounts: AccountService,
    pub conversations: ConversationService,
    pub inbox: InboxService,
    /// Live fan-out; the WebSocket subscribes here before replaying from the feed.
    pub live: Arc<dyn LiveBus>,
    /// Pinged by `GET /health/ready`.
    pub storage: SqlStorage,
    /// Login and registration attempts per client address.
    pub auth_limiter: AuthRateLimiter,
    pub metrics: PrometheusHandle,
    pub server: ServerSettings,
    /// Cancelled on shutdown: open WebSockets close when it fires.
    pub shutdown: CancellationToken,
    /// Every open WebSocket session, so shutdown can wait for them before closing the pools.
    pub sessions: TaskTracker,
}
