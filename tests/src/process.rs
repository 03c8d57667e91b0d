//! Real `duet serve` child processes on a test's database, for the tests that kill a server
//! or need several of them: the same binary and settings an operator would run, given as
//! `DUET__SECTION__KEY` environment variables.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::TestApp;
use crate::profile::{TestDatabase, profile_settings};

/// The longest a new process may take to answer `/health/ready`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running `duet serve`, killed when dropped. Its log goes to a file printed on failure.
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
    _log_dir: TempDir,
}

impl ServerProcess {
    /// Sends SIGTERM and asserts a clean exit within 15 s (graceful shutdown).
    pub async fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill -TERM {pid} failed");
        }
        let exited = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("duet did not stop within 15 s of SIGTERM\n{}", self.log()))
            .expect("waiting for duet");
        assert!(
            exited.success(),
            "duet exited with {exited}\n{}",
            self.log()
        );
    }

    /// Kills the process at once (SIGKILL): no graceful shutdown, as in a crash.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The `duet` binary next to the test binary (`target/<profile>/duet`), or `DUET_BIN`.
fn duet_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DUET_BIN") {
        return PathBuf::from(path);
    }
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let target = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps");
    let binary = target.join("duet");
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p duet`), or set DUET_BIN",
        binary.display()
    );
    binary
}

/// A free loopback port (the listener is closed again before the server binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `duet serve` with `settings` (`{db}` resolved for `database`) on a free port and
/// waits until it is ready.
async fn start_process(
    profile: &'static str,
    database: Arc<TestDatabase>,
    settings: Vec<(String, String)>,
) -> TestApp {
    let port = free_port();
    let log_dir = tempfile::tempdir().expect("a temporary folder");
    let log = log_dir.path().join("duet.log");
    let log_file = std::fs::File::create(&log).expect("a log file");
    let mut command = Command::new(duet_binary());
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DUET__SERVER__HOST", "127.0.0.1")
        .env("DUET__SERVER__PORT", port.to_string())
        .env("DUET__AUTH__ATTEMPTS_PER_MINUTE", "100000")
        .env("DUET__LIMITS__SENDS_PER_SECOND", "0")
        .env("DUET__TELEMETRY__LOG_LEVEL", "warn,duet=info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("a log file handle"))
        .stderr(log_file)
        .kill_on_drop(true);
    for (key, value) in database.resolve(&settings) {
        let name = format!("DUET__{}", key.replace('.', "__").to_ascii_uppercase());
        command.env(name, value);
    }
    let child = command.spawn().expect("duet starts");
    let process = ServerProcess {
        child,
        log,
        _log_dir: log_dir,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let address = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let ready = client
            .get(format!("{address}/health/ready"))
            .send()
            .await
            .is_ok_and(|reply| reply.status().is_success());
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "duet on port {port} was not ready within {READY_WITHIN:?}\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TestApp {
        address,
        port,
        client,
        profile,
        settings,
        database,
        stop: CancellationToken::new(),
        server: None,
        process: Some(process),
    }
}

/// Starts a `duet serve` process on a fresh database of the profile called `profile`, with
/// `overrides` after the profile's settings.
pub async fn spawn_process_on(profile: &str, overrides: &[(&str, &str)]) -> TestApp {
    let (profile, settings) = profile_settings(profile, overrides);
    let database = TestDatabase::create(&settings).await;
    start_process(profile, database, settings).await
}

impl TestApp {
    /// Starts another `duet serve` process on this app's database and settings plus
    /// `overrides`, as a second server behind a load balancer.
    pub async fn spawn_process(&self, overrides: &[(&str, &str)]) -> TestApp {
        let mut settings = self.settings.clone();
        settings.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        start_process(self.profile, Arc::clone(&self.database), settings).await
    }

    /// Another handle on the same server, for calls from another task; dropping it stops
    /// nothing.
    pub fn handle(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            port: self.port,
            client: self.client.clone(),
            profile: self.profile,
            settings: self.settings.clone(),
            database: Arc::clone(&self.database),
            stop: CancellationToken::new(),
            server: None,
            process: None,
        }
    }

    /// Kills this app's process at once (SIGKILL), as in a crash. Panics for an in-process
    /// app.
    pub async fn kill(&mut self) {
        self.process
            .as_mut()
            .expect("only a `duet serve` process can be killed")
            .kill()
            .await;
    }

    /// This process's log so far (empty for an in-process app).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(ServerProcess::log)
            .unwrap_or_default()
    }
}
