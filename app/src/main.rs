//! `duet [--config PATH] [serve|migrate|backup PATH]`: load settings, start telemetry, then
//! serve (the default), apply migrations, or back the SQLite database up, and exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
