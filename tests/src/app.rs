//! A running Duet for one test: [`spawn_app`] and friends start the real `Application` on a
//! free port against a fresh database, and [`TestApp`] stops, restarts or duplicates it.

use std::sync::Arc;
use std::time::Duration;

use duet::config::{Profile, Settings};
use duet::startup::Application;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process::ServerProcess;
use crate::profile::{self, TestDatabase, current_profile};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running Duet on a free port with its own database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// The storage profile it runs on.
    pub profile: &'static str,
    /// The profile's settings, then the test's overrides, before `{db}` is resolved.
    pub(crate) settings: Vec<(String, String)>,
    /// Shared by every `Application` built on it (restarts included), so it outlives them.
    pub(crate) database: Arc<TestDatabase>,
    pub(crate) stop: CancellationToken,
    pub(crate) server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Set when this is a real `duet serve` child process rather than an in-process app.
    pub(crate) process: Option<ServerProcess>,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub handle: String,
    pub token: String,
}

/// Starts Duet with the test defaults on the current profile.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts Duet with the test defaults plus `overrides` (later wins) on the current profile,
/// e.g. `&[("auth.attempts_per_minute", "3")]`.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(current_profile(), overrides).await
}

/// Starts Duet on the profile called `profile`, whatever `DUET_TEST_PROFILE` says, with
/// `overrides` applied after the profile's settings.
pub async fn spawn_app_on(profile: &str, overrides: &[(&str, &str)]) -> TestApp {
    let (profile, settings) = profile::profile_settings(profile, overrides);
    let database = TestDatabase::create(&settings).await;
    start(profile, database, settings).await
}

async fn start(
    profile: &'static str,
    database: Arc<TestDatabase>,
    settings: Vec<(String, String)>,
) -> TestApp {
    let resolved = database.resolve(&settings);
    let mut all: Vec<(&str, &str)> = vec![
        ("server.host", "127.0.0.1"),
        ("server.port", "0"),
        ("auth.attempts_per_minute", "100000"),
        // Tests send bursts from one user; `limits.rs` turns the send limit back on.
        ("limits.sends_per_second", "0"),
    ];
    all.extend(resolved.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let loaded = Settings::load(&Profile::None, &all).expect("test settings load");
    // Logs stay silent unless TEST_LOG is set; the first app in the process installs them.
    if std::env::var_os("TEST_LOG").is_some() {
        duet::telemetry::init_tracing(&loaded.telemetry).expect("telemetry starts");
    }
    let app = Application::build(loaded)
        .await
        .unwrap_or_else(|e| panic!("the application builds on profile {profile}: {e:#}"));
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
        profile,
        settings,
        database,
        stop,
        server: Some(server),
        process: None,
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
        if let Some(process) = &mut self.process {
            process.terminate().await;
            return;
        }
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let finished = tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("the server stops within 15 s of cancellation")
                .expect("the server task does not panic");
            finished.expect("run_until_stopped returns Ok after cancellation");
        }
    }

    /// Stops this process and starts a new `Application` on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let database = Arc::clone(&self.database);
        let settings = std::mem::take(&mut self.settings);
        let profile = self.profile;
        drop(self);
        start(profile, database, settings).await
    }

    /// Starts a second `Application` on the same database and settings plus `overrides`, as
    /// a second server process behind a load balancer would run.
    pub async fn spawn_another(&self, overrides: &[(&str, &str)]) -> TestApp {
        let mut settings = self.settings.clone();
        settings.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        start(self.profile, Arc::clone(&self.database), settings).await
    }

    /// The value this app was given for a setting, `{db}` resolved (e.g.
    /// `storage.postgres.replicas`); `None` when neither the profile nor the test set it.
    pub fn setting(&self, key: &str) -> Option<String> {
        profile::setting(&self.settings, key).map(|v| v.replace("{db}", self.database.name()))
    }

    /// The settings this app was built with, as `Settings` (for opening its storage
    /// beside it, as an operator's `duet` command would).
    pub fn loaded_settings(&self) -> Settings {
        let resolved = self.database.resolve(&self.settings);
        let all: Vec<(&str, &str)> = resolved
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Settings::load(&Profile::None, &all).expect("test settings load")
    }

    /// The URL of every database this app stores in: each PostgreSQL physical shard, or the
    /// SQLite file (read-only).
    pub fn database_urls(&self) -> Vec<String> {
        if self.setting("storage.kind").as_deref() == Some("postgres") {
            profile::postgres_urls(&self.settings)
                .into_iter()
                .map(|url| url.replace("{db}", self.database.name()))
                .collect()
        } else {
            let path = self.setting("storage.sqlite.path").expect("a SQLite path");
            vec![format!("sqlite://{path}?mode=ro")]
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}
