//! How every test starts Duet and talks to it.
//!
//! `spawn_app()` starts the real `Application` exactly as `main` does, on port 0, against a
//! fresh SQLite file in its own temporary folder, and returns a [`TestApp`]. The typed API
//! calls live in `api` (on top of the raw ones in `http`), the WebSocket client in `ws`, and
//! shape and error checks in `assertions`. Nothing here waits without a deadline: HTTP calls
//! have a client timeout, WebSocket reads [`WS_TIMEOUT`] and polling [`EVENTUALLY`], so a
//! broken server fails a test instead of hanging it.

mod api;
mod assertions;
mod http;
mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use duet::config::{Profile, Settings};
use duet::startup::Application;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use assertions::*;
pub use http::Reply;
pub use ws::{WsClient, assert_cursors_increase};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// The longest a test waits for one WebSocket frame.
pub const WS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a test waits for an eventually consistent read (list, sync) to catch up.
pub const EVENTUALLY: Duration = Duration::from_secs(5);

/// A running Duet on a free port with its own SQLite file.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    overrides: Vec<(String, String)>,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept so the folder outlives every `Application` built on it (restarts included).
    _dir: Arc<TempDir>,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub handle: String,
    pub token: String,
}

/// Starts Duet with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts Duet with the test defaults plus `overrides` (later wins), e.g.
/// `&[("auth.attempts_per_minute", "3")]`.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db_path = dir.path().join("duet.db");
    let overrides = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    start(Arc::new(dir), db_path, overrides).await
}

async fn start(dir: Arc<TempDir>, db_path: PathBuf, overrides: Vec<(String, String)>) -> TestApp {
    let db = db_path.to_str().expect("a UTF-8 temp path").to_owned();
    let mut all: Vec<(&str, &str)> = vec![
        ("server.host", "127.0.0.1"),
        ("server.port", "0"),
        ("storage.sqlite.path", &db),
        ("auth.attempts_per_minute", "100000"),
    ];
    all.extend(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let settings = Settings::load(&Profile::None, &all).expect("test settings load");
    // Logs stay silent unless TEST_LOG is set; the first app in the process installs them.
    if std::env::var_os("TEST_LOG").is_some() {
        duet::telemetry::init_tracing(&settings.telemetry).expect("telemetry starts");
    }
    let app = Application::build(settings)
        .await
        .expect("the application builds");
    let port = app.port();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        db_path,
        overrides,
        stop,
        server: Some(server),
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    /// Stops the server, asserts it finished cleanly within 15 s, and returns nothing else.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let finished = tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("the server stops within 15 s of cancellation")
                .expect("the server task does not panic");
            finished.expect("run_until_stopped returns Ok after cancellation");
        }
    }

    /// Stops this process and starts a new `Application` on the same SQLite file.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = Arc::clone(&self._dir);
        let db_path = self.db_path.clone();
        let overrides = std::mem::take(&mut self.overrides);
        drop(self);
        start(dir, db_path, overrides).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

/// Polls `probe` until it returns `Some`, at most [`EVENTUALLY`]; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {EVENTUALLY:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
