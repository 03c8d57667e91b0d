//! Waiting with a deadline: every wait in the tests is bounded, so a broken server fails a
//! test instead of hanging it.

use std::future::Future;
use std::time::Duration;

/// The longest a test waits for one WebSocket frame.
pub const WS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a test waits for an eventually consistent read (list, sync) to catch up.
pub const EVENTUALLY: Duration = Duration::from_secs(5);

/// Polls `probe` until it returns `Some`, at most [`EVENTUALLY`]; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(EVENTUALLY, what, probe).await
}

/// Polls `probe` every 20 ms until it returns `Some`, at most `limit`; panics naming `what`.
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
