//! Background work started next to the server: the outbox relay, the feed pruner and the
//! metrics upkeep. Each loop stops when the shutdown token fires; each step is a domain or
//! adapter call tests can drive directly (`Relay::run_once`, `InboxStore::prune_feeds`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use duet_domain::accounts::AccountStore;
use duet_domain::events::Relay;
use duet_domain::inbox::InboxStore;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// First wait after a failed relay step; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often histogram buckets are drained into the Prometheus view.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Relays outbox entries until the outbox is empty, then waits for new ones (or `poll`, for
/// entries other processes wrote). A failing step is logged and retried with backoff: the
/// entries stay in the outbox, so nothing is lost while storage or the queue is down.
pub async fn relay(relay: Arc<Relay>, poll: Duration, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    while !shutdown.is_cancelled() {
        // A step is left to finish on shutdown: it is short, and stopping it midway would
        // only make the next start relay its entries again.
        match relay.run_once().await {
            Ok(0) => {
                backoff = MIN_BACKOFF;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = relay.wait_for_work(poll) => {}
                }
            }
            Ok(moved) => {
                backoff = MIN_BACKOFF;
                tracing::trace!(moved, "relayed outbox entries");
            }
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    retry_in = ?backoff,
                    "relay step failed"
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::debug!("relay stopped");
}

/// How old an account without its handle claim must be before it is removed: far longer
/// than a registration takes between its two writes.
const UNCLAIMED_ACCOUNT_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// Every `interval` (and once at start), deletes feed events older than `retention`,
/// sessions that have expired and accounts whose handle claim failed. Clients further behind than the retention get a resync answer
/// instead of a replay.
pub async fn prune(
    inbox: Arc<dyn InboxStore>,
    accounts: Arc<dyn AccountStore>,
    interval: Duration,
    retention: chrono::Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let now = Utc::now();
        match inbox.prune_feeds(now - retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned old feed events"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "feed pruning failed"),
        }
        match accounts.delete_expired_sessions(now).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted expired sessions"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "session pruning failed"),
        }
        match accounts
            .remove_unclaimed_users(now - UNCLAIMED_ACCOUNT_GRACE)
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed accounts whose handle claim failed"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "account sweep failed"),
        }
    }
    tracing::debug!("pruner stopped");
}

/// Drains histogram samples regularly so the recorder's memory stays bounded between scrapes.
pub async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => handle.run_upkeep(),
        }
    }
}
