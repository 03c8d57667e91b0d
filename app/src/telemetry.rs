//! Logs through `tracing` and metrics through the `metrics` facade, rendered for Prometheus.
//!
//! Both are process-wide: tests start many [`crate::Application`]s in one process, so each
//! installer runs at most once and later calls reuse what the first one set up.

use std::io::IsTerminal;
use std::sync::OnceLock;

use anyhow::Context;
use duet_adapters::sql::GROUP_COMMIT_PHASE_SECONDS;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetrySettings};

/// The name of the request latency histogram; it gets explicit buckets so Prometheus sees a
/// histogram rather than a summary.
pub const HTTP_DURATION: &str = "duet_http_request_duration_seconds";

/// Latency buckets in seconds, from a cache hit to a slow argon2 login.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Group commit phase buckets in seconds, from a cached statement to a slow fsync.
const PHASE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Installs the global `tracing` subscriber: `RUST_LOG` if set, else `telemetry.log_level`;
/// pretty or JSON lines on stdout, coloured only when stdout is a terminal and `NO_COLOR` is
/// unset (escape codes in a file or a log collector are noise). A second call (another app in
/// the same process) keeps the first subscriber.
///
/// # Errors
/// When the filter in the settings does not parse.
pub fn init_tracing(settings: &TelemetrySettings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => {
            EnvFilter::try_new(&env).with_context(|| format!("invalid RUST_LOG {env:?}"))?
        }
        _ => EnvFilter::try_new(&settings.log_level)
            .with_context(|| format!("invalid telemetry.log_level {:?}", settings.log_level))?,
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    // `try_init` fails only when a subscriber is already set, which is fine here.
    let _ = match settings.log_format {
        LogFormat::Pretty => builder.finish().try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .try_init(),
    };
    Ok(())
}

/// The handle of the process-wide Prometheus recorder, installing it on first use.
///
/// If another recorder was installed first (by an embedding program), metrics go there and
/// this handle renders an empty page rather than failing start-up.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Only an empty bucket list is refused, and ours is a non-empty constant.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(GROUP_COMMIT_PHASE_SECONDS.into()),
                        PHASE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%err, "a metrics recorder was already installed");
            }
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    metrics::describe_counter!(
        "duet_http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route template."
    );
    metrics::describe_counter!(
        "duet_messages_sent_total",
        "Messages stored (retries that return the original are not counted)."
    );
    metrics::describe_histogram!(
        GROUP_COMMIT_PHASE_SECONDS,
        metrics::Unit::Seconds,
        "Time a group commit batch spends per phase: begin (connection and BEGIN), read \
         (locks, duplicates, inbox state), write, commit (COMMIT and its fsync)."
    );
    metrics::describe_gauge!(
        "duet_live_connections",
        "Authenticated WebSocket connections open on this process."
    );
    metrics::describe_gauge!(
        "duet_delivery_lag_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest event not yet delivered to the inboxes (outboxes, NATS stream); \
         sends are refused while it is over delivery.max_lag_ms."
    );
}
