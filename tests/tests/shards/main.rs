//! Sharded PostgreSQL on real servers: four physical shards, two on the local PostgreSQL
//! (127.0.0.1:5432) and two on a second server (`scripts/pg-second.sh up`: 127.0.0.1:5434),
//! the `sharded` profile of the conformance suite. These tests look at where rows land,
//! move logical shards while processes send, and stop moves half-way.
//!
//! `cargo test` leaves this binary out (`test = false`); `scripts/test.sh` runs it with
//! `cargo test -p duet-tests --test shards -- --test-threads=2`.

mod moves;
mod placement;
mod support;
