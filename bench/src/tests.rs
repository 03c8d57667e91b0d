//! End to end: a real server in this process on a temporary SQLite file, the bench against
//! it, and the baseline on the same file.

use std::sync::atomic::{AtomicU32, Ordering};

use clap::Parser;
use duet::{Application, Profile, Settings};
use tokio_util::sync::CancellationToken;

use crate::{BenchArgs, Report, run};

static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

/// A running server on port 0 with its own SQLite file; stops and cleans up on drop.
struct Server {
    port: u16,
    dir: std::path::PathBuf,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "duet-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let path = dir.join("duet.db");
        let path = path.to_str().expect("a UTF-8 temp path");
        let base = [
            ("server.host", "127.0.0.1"),
            ("server.port", "0"),
            ("auth.attempts_per_minute", "100000"),
            ("storage.kind", "sqlite"),
            ("storage.sqlite.path", path),
            ("telemetry.log_level", "warn"),
        ];
        // The per-user send limit would turn a benchmark into a 429 count; lift it where
        // this build has one (older builds refuse the unknown section, so try both).
        let unlimited = [
            ("limits.sends_per_second", "1000000"),
            ("limits.send_burst", "1000000"),
        ];
        let with_limits: Vec<_> = base.iter().chain(&unlimited).copied().collect();
        let settings = Settings::load(&Profile::None, &with_limits)
            .or_else(|_| Settings::load(&Profile::None, &base))
            .expect("settings load");
        let app = Application::build(settings)
            .await
            .expect("the server builds");
        let port = app.port();
        let stop = app.shutdown_handle();
        let task = Some(tokio::spawn(app.run_until_stopped()));
        Self {
            port,
            dir,
            stop,
            task,
        }
    }

    async fn shut_down(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_messages_are_all_acknowledged_delivered_and_reported() {
    let server = Server::start().await;
    let json = server.dir.join("report.json");
    let url = format!("http://127.0.0.1:{}", server.port);
    let database = server.dir.join("duet.db");
    let pid = std::process::id().to_string();
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--users",
        "12",
        "--conversations",
        "8",
        "--count",
        "200",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.to_str().expect("UTF-8"),
        "--server-pid",
        &pid,
        "--baseline",
        "--database-url",
        database.to_str().expect("UTF-8"),
        "--baseline-batch",
        "64",
        "--reads-per-send",
        "2",
    ])
    .expect("valid flags");
    let plan = cli.args.plan().expect("a valid plan");
    let report = run(&plan, CancellationToken::new()).await;
    let written = std::fs::read_to_string(&json);
    server.shut_down().await;

    let report = report.expect("the bench runs");
    let parsed: Report = serde_json::from_str(&written.expect("the JSON report is written"))
        .expect("the JSON report parses");
    // The file says what the run returned (floats aside, which JSON may round in the last digit).
    assert_eq!(
        (
            parsed.run_id.as_str(),
            parsed.attempted,
            parsed.acknowledged
        ),
        (
            report.run_id.as_str(),
            report.attempted,
            report.acknowledged
        )
    );
    assert_eq!(parsed.attempted, 200);
    assert_eq!(parsed.acknowledged, 200, "{}", parsed.table());
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    // Every user of the 8 conversations has a socket, so every message is awaited.
    assert_eq!(parsed.deliveries_expected, 200);
    assert_eq!(parsed.deliveries_received, 200, "{}", parsed.table());
    assert_eq!(parsed.deliveries_missing, 0);
    assert_eq!(parsed.send_latency.count, 200);
    assert_eq!(parsed.delivery_latency.count, 200);
    assert_eq!(parsed.history_reads, 400, "two latest-page reads per send");
    assert_eq!(parsed.history_read_latency.count, 400);
    assert!(
        parsed.send_latency.p50_us > 0 && parsed.send_latency.max_us >= parsed.send_latency.p99_us
    );
    assert!(parsed.messages_per_sec > 0.0);
    let server = parsed.server.clone().expect("the server's usage");
    assert!(server.peak_rss_kib > 0);
    // The server runs in this process: its busiest thread did part of the process's work
    // (give or take a clock tick or two: the process and its threads are read one after the
    // other), and the machine was busy.
    let busiest = server.busiest_thread.expect("a busiest thread");
    let busiest_secs = busiest.cpu_cores * parsed.elapsed_secs;
    assert!(
        !busiest.name.is_empty() && busiest_secs <= server.cpu_secs + 0.05,
        "{busiest:?}"
    );
    let machine = server.machine.expect("the machine's CPU");
    assert!(machine.cores >= machine.busy_cores && machine.busy_cores > 0.0);
    let table = parsed.table();
    assert!(
        table.contains("busiest thread") && table.contains("cores busy"),
        "{table}"
    );
    let baseline = parsed.baseline.expect("a baseline");
    assert_eq!(baseline.per_message.inserted, 200);
    assert_eq!(baseline.batched.inserted, 200);
    assert_eq!(baseline.batched.batch, 64);
    assert!(baseline.per_message.duet_ratio > 0.0);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        "http://127.0.0.1:1",
        "--count",
        "1",
        "--quiet",
    ])
    .expect("valid flags");
    let plan = cli.args.plan().expect("a valid plan");
    let err = run(&plan, CancellationToken::new())
        .await
        .expect_err("nothing listens on port 1");
    assert!(format!("{err:#}").contains("registering"), "{err:#}");
}
