//! `duet-bench`: the tools that measure and plan Duet without being part of it, so the server's
//! dependency tree is the server's.
//!
//! The load generator (`duet-bench run`) drives a running Duet like real clients:
//! - [`args`]: the flags and their checks, resolved into a [`Plan`].
//! - [`runner`]: one run from setup to report, and the command line around it.
//! - [`setup`]: registers the run's users and opens conversations between random pairs.
//! - [`client`]: the HTTP side (register, log in, open, send, read, `/metrics`).
//! - [`socket`]: one `/v1/events` WebSocket per recipient, timestamping deliveries.
//! - [`load`]: the closed loop (as fast as answers come) and the open loop (fixed timeline,
//!   latency from the due time, see [`schedule`]).
//! - [`recorder`]: histograms and counters both sides write to.
//! - [`progress`]: the bar on a terminal while sending.
//! - [`server`]: the local server's CPU time and memory from /proc.
//! - [`writer`]: the server's group-commit batches and their phases, from its /metrics.
//! - [`baseline`]: the same rows inserted straight into the server's database.
//! - [`report`]: the table and the JSON.
//!
//! The capacity planner (`duet-bench capacity`) is [`capacity`]: the growth table's arithmetic.
//! What idle WebSockets cost the server (`duet-bench idle`) is [`idle`].

pub mod args;
pub mod baseline;
pub mod capacity;
pub mod client;
pub mod idle;
pub mod load;
pub mod progress;
pub mod prometheus;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod server;
pub mod setup;
pub mod socket;
pub mod writer;

#[cfg(test)]
mod tests;

pub use args::{BenchArgs, Pacing, Plan};
pub use report::Report;
pub use runner::{run, run_cli};
