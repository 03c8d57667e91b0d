//! `duet [--config PATH] [serve|migrate|backup PATH|capacity|bench]`: load settings, start
//! telemetry, then serve (the default), apply migrations, or back the SQLite database up;
//! `capacity` and `bench` need no settings.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use duet::{Application, Profile, Settings, bench, capacity, storage, telemetry};

/// mimalloc rather than glibc's malloc: each argon2 hash allocates ~19 MiB, and glibc's
/// adaptive mmap threshold then keeps such blocks on its heaps. Measured with 50 concurrent
/// registrations: RSS 862 MiB with glibc, a few tens of MiB with a fixed threshold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Duet, a one-to-one messaging server.
#[derive(Debug, Parser)]
#[command(name = "duet", version)]
struct Cli {
    /// A settings file layered over the built-in defaults (else `DUET_PROFILE=NAME` picks the
    /// built-in profile `small`, `medium` or `large`, or `config/NAME.toml` when that file
    /// exists). Environment variables `DUET__SECTION__KEY` win over both.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Serve the HTTP and WebSocket API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Write a consistent copy of the live SQLite database to PATH (a new file), safe while
    /// the server runs. Restore by stopping the server and putting the copy in place of
    /// `storage.sqlite.path`.
    Backup {
        /// Where the copy goes; it must not exist yet.
        path: PathBuf,
    },
    /// Print the back-of-envelope for a deployment: load, storage, bandwidth, and how many
    /// app processes, shards and replicas it needs. Without --users, the growth table.
    Capacity(CapacityArgs),
    /// Drive a running Duet over HTTP and WebSocket like real clients and report messages/s,
    /// send and delivery latency and errors; with --baseline, the database's raw limit too.
    Bench(Box<bench::BenchArgs>),
}

/// Inputs of `duet capacity`. Per-node figures default to conservative values; pass the ones
/// measured on your hardware (scripts/bench/).
#[derive(Debug, Clone, clap::Args)]
struct CapacityArgs {
    /// Users to plan for (default: the four rows of the growth table, 100 to 100 M).
    #[arg(long)]
    users: Option<u64>,
    /// Messages each user sends per day.
    #[arg(long, default_value_t = 10.0)]
    messages_per_user: f64,
    /// Average stored size of a message, in bytes.
    #[arg(long, default_value_t = 1000.0)]
    message_bytes: f64,
    /// Message reads per message written.
    #[arg(long, default_value_t = 2.0)]
    reads_per_write: f64,
    /// Busiest second over the average second.
    #[arg(long, default_value_t = 2.0)]
    peak_factor: f64,
    /// Sends per second one app process sustains.
    #[arg(long, default_value_t = 1000.0)]
    app_sends_per_sec: f64,
    /// Write transactions per second one primary sustains.
    #[arg(long, default_value_t = 2000.0)]
    db_writes_per_sec: f64,
    /// Reads per second one replica serves.
    #[arg(long, default_value_t = 5000.0)]
    replica_reads_per_sec: f64,
}

impl CapacityArgs {
    fn print(&self) -> anyhow::Result<()> {
        let positive = [
            ("--messages-per-user", self.messages_per_user),
            ("--message-bytes", self.message_bytes),
            ("--peak-factor", self.peak_factor),
            ("--app-sends-per-sec", self.app_sends_per_sec),
            ("--db-writes-per-sec", self.db_writes_per_sec),
            ("--replica-reads-per-sec", self.replica_reads_per_sec),
        ];
        for (name, value) in positive {
            anyhow::ensure!(
                value.is_finite() && value > 0.0,
                "{name} must be a positive number"
            );
        }
        anyhow::ensure!(
            self.reads_per_write.is_finite() && self.reads_per_write >= 0.0,
            "--reads-per-write must not be negative"
        );
        let users = match self.users {
            Some(users) => vec![users],
            None => vec![100, 10_000, 1_000_000, 100_000_000],
        };
        let loads: Vec<_> = users
            .into_iter()
            .map(|users| capacity::Load {
                users,
                messages_per_user_per_day: self.messages_per_user,
                message_bytes: self.message_bytes,
                reads_per_write: self.reads_per_write,
                peak_factor: self.peak_factor,
            })
            .collect();
        let nodes = capacity::NodeFigures {
            app_sends_per_sec: self.app_sends_per_sec,
            db_writes_per_sec: self.db_writes_per_sec,
            replica_reads_per_sec: self.replica_reads_per_sec,
        };
        print!("{}", capacity::report(&loads, nodes));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "duet failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Capacity(args)) => return args.print(),
        // A client of some server, not one: no settings, no server telemetry.
        Some(Command::Bench(args)) => return bench::run_cli(args).await,
        _ => {}
    }
    let settings = Settings::load(&Profile::from_cli_or_env(cli.config), &[])?;
    telemetry::init_tracing(&settings.telemetry)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            let stop = app.shutdown_handle();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown requested");
                stop.cancel();
            });
            app.run_until_stopped().await
        }
        Command::Migrate => storage::migrate(&settings.storage).await,
        Command::Backup { path } => {
            let summary = storage::backup(&settings.storage, &path).await?;
            println!(
                "backed up {} to {} ({} bytes)",
                settings.storage.sqlite.path.display(),
                path.display(),
                summary.bytes
            );
            Ok(())
        }
        Command::Capacity(args) => args.print(),
        Command::Bench(args) => bench::run_cli(&args).await,
    }
}

/// Ctrl-C, or SIGTERM on Unix (what container runtimes send).
async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
