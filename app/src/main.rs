//! `duet [--config PATH] [serve|migrate|backup PATH|shards …]`: load settings, start
//! telemetry, then serve (the default), apply migrations, back the SQLite database up, or show
//! and move shards, and exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use duet::shards::{self, ShardCommand};
use duet::{Application, Profile, Settings, storage, telemetry};

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
    /// The shard map of a PostgreSQL cluster, and moving logical shards between its
    /// physical shards while it serves.
    #[command(subcommand)]
    Shards(ShardsCommand),
}

#[derive(Debug, Clone, Subcommand)]
enum ShardsCommand {
    /// The map's version and, per physical shard, its logical shards, rows and bytes.
    Status,
    /// Move one logical shard to another physical shard (or finish an interrupted move).
    Move {
        /// The logical shard (0 to storage.logical_shards - 1).
        logical: u32,
        /// The physical shard to move it to (its place in storage.postgres.shards).
        #[arg(long)]
        to: usize,
    },
    /// Move logical shards until every physical shard owns as many as the others (±1).
    Rebalance {
        /// Print the moves without making them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll back a move that has not switched owners yet.
    Abort {
        /// The logical shard whose move to roll back.
        logical: u32,
    },
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
        Command::Shards(command) => {
            let command = match command {
                ShardsCommand::Status => ShardCommand::Status,
                ShardsCommand::Move { logical, to } => ShardCommand::Move { logical, to },
                ShardsCommand::Rebalance { dry_run } => ShardCommand::Rebalance { dry_run },
                ShardsCommand::Abort { logical } => ShardCommand::Abort { logical },
            };
            shards::run(&settings.storage, command).await
        }
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
