//! Reading the Prometheus page at `/metrics`. The recorder is global to a process, so every
//! app in one test binary shares the counters: compare deltas, and only where nothing else
//! runs at the same time.

use reqwest::StatusCode;

use crate::TestApp;

impl TestApp {
    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let reply = self.get("/metrics", None).await;
        assert_eq!(reply.status, StatusCode::OK, "GET /metrics: {}", reply.text);
        reply.text
    }
}

/// The sum of every sample of `metric` (all label sets) in a Prometheus text page.
pub fn metric_sum(page: &str, metric: &str) -> Option<f64> {
    metric_sum_where(page, metric, None)
}

/// The sum of the samples of `metric` whose labels include `label` (e.g.
/// `target="replica"`), or of all its samples when `label` is `None`; `None` when there is
/// no such sample.
pub fn metric_sum_where(page: &str, metric: &str, label: Option<&str>) -> Option<f64> {
    duet_bench::prometheus::sample_sum(page, metric, label)
}
