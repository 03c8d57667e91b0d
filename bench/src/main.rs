//! `duet-bench run …` drives a running Duet and reports what it sustained;
//! `duet-bench capacity …` prints the back-of-envelope for a deployment; `duet-bench idle …`
//! measures what idle WebSockets cost. None needs the server's settings: the load generator
//! is a client of some server, not one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use duet_bench::BenchArgs;
use duet_bench::capacity::CapacityArgs;

/// Duet's load generator and capacity planner.
#[derive(Debug, Parser)]
#[command(name = "duet-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Drive a running Duet over HTTP and WebSocket like real clients and report messages/s,
    /// send and delivery latency and errors; with --baseline, the database's raw limit too.
    Run(Box<BenchArgs>),
    /// Print the back-of-envelope for a deployment: load, storage, bandwidth, and how many
    /// app processes, shards and replicas it needs. Without --users, the growth table.
    Capacity(CapacityArgs),
    /// Open and hold many authenticated WebSockets, report the server's memory per socket,
    /// and time messages reaching one user's devices meanwhile.
    Idle(duet_bench::idle::IdleArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => duet_bench::run_cli(&args).await,
        Command::Capacity(args) => args.print(),
        Command::Idle(args) => duet_bench::idle::run(&args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
