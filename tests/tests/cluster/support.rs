//! Private NATS and Redis servers for one test, and a cluster of `duet serve` processes
//! on the `medium` profile pointed at them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use duet_tests::{TestApp, free_port, spawn_process_on};

/// The longest a server may take to accept connections after it is started.
const LISTENING_WITHIN: Duration = Duration::from_secs(15);

/// Whether the programs and servers a cluster test needs are here. When one is missing the
/// test prints why and returns, unless `CI=true`, where a missing service is a failure.
pub async fn cluster_prerequisites() -> bool {
    let mut missing = Vec::new();
    for program in ["nats-server", "redis-server"] {
        if find_program(program).is_none() {
            missing.push(format!("{program} is not installed"));
        }
    }
    if tokio::net::TcpStream::connect("127.0.0.1:5432")
        .await
        .is_err()
    {
        missing.push("PostgreSQL not reachable at 127.0.0.1:5432".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the cluster tests need: {why}"
    );
    eprintln!("SKIPPED: {why}");
    false
}

/// `program` on the PATH or in the sbin folders Debian installs servers to.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A server process of our own on a free loopback port, stopped (SIGKILL) when dropped.
pub struct LocalServer {
    program: PathBuf,
    args: Vec<String>,
    pub port: u16,
    child: Option<Child>,
    /// The data folder, kept across restarts (JetStream's store).
    _data: TempDir,
}

impl LocalServer {
    /// A NATS server with JetStream, storing in a folder of its own.
    pub async fn nats() -> Self {
        let data = tempfile::tempdir().expect("a temporary folder");
        let port = free_port();
        let store = data.path().to_str().expect("a UTF-8 path").to_owned();
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &store,
        ];
        Self::start_new("nats-server", &args, port, data).await
    }

    /// A Redis server that keeps nothing on disk.
    pub async fn redis() -> Self {
        let data = tempfile::tempdir().expect("a temporary folder");
        let port = free_port();
        let dir = data.path().to_str().expect("a UTF-8 path").to_owned();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
        ];
        Self::start_new("redis-server", &args, port, data).await
    }

    async fn start_new(program: &str, args: &[&str], port: u16, data: TempDir) -> Self {
        let mut server = Self {
            program: find_program(program).unwrap_or_else(|| panic!("{program} is installed")),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            port,
            child: None,
            _data: data,
        };
        server.start().await;
        server
    }

    /// Starts the server (again, on the same port and data) and waits until it listens.
    pub async fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "{} is already running",
            self.program.display()
        );
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.program.display()));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + LISTENING_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not listen on port {} within {LISTENING_WITHIN:?}",
                self.program.display(),
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server at once (SIGKILL), as an outage would.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// Duet processes on the `medium` profile sharing one fresh database and this cluster's own
/// NATS and Redis.
pub struct Cluster {
    /// First, so the processes stop (and the database is dropped) while NATS and Redis run.
    pub processes: Vec<TestApp>,
    pub nats: LocalServer,
    pub redis: LocalServer,
}

impl Cluster {
    /// `count` processes, or `None` (after saying why) when the prerequisites are missing.
    pub async fn start(count: usize) -> Option<Self> {
        Self::start_with(count, &[]).await
    }

    /// As [`Cluster::start`], with settings overrides for every process.
    pub async fn start_with(count: usize, overrides: &[(&str, &str)]) -> Option<Self> {
        if !cluster_prerequisites().await {
            return None;
        }
        let nats = LocalServer::nats().await;
        let redis = LocalServer::redis().await;
        let (nats_url, redis_url) = (nats.url("nats"), redis.url("redis"));
        let mut settings = vec![
            ("delivery.nats.url", nats_url.as_str()),
            ("cache.redis.url", redis_url.as_str()),
            // A killed process's in-flight event goes to another within seconds, not 30 s.
            ("delivery.nats.ack_wait_secs", "2"),
        ];
        settings.extend_from_slice(overrides);
        let first = spawn_process_on("medium", &settings).await;
        let mut processes = vec![first];
        for _ in 1..count {
            processes.push(processes[0].spawn_process(&[]).await);
        }
        Some(Self {
            processes,
            nats,
            redis,
        })
    }

    /// The process at `index`.
    pub fn at(&self, index: usize) -> &TestApp {
        &self.processes[index]
    }
}
