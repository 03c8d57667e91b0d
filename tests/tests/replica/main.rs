//! Read-replica routing, proven with real queries on the real streaming replica of the local
//! PostgreSQL (`scripts/pg-replica.sh up`: primary 127.0.0.1:5432, replica 127.0.0.1:5433)
//! and with the app's own read counters at `/metrics`.
//!
//! These tests pause the replica's replay and stop the replica itself, so `support` runs
//! them one at a time whatever `--test-threads` says, checks the servers first (failing
//! with what to start when one is missing), and puts the replica back on the way out,
//! failures included. `cargo test` leaves this binary out (`test = false`); `scripts/test.sh`
//! runs it with `cargo test -p duet-tests --test replica -- --test-threads=1`.

mod outage;
mod paused;
mod routing;
mod support;
