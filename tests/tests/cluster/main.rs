//! The `medium` deployment proven on real servers: two or three `duet serve` processes
//! sharing PostgreSQL, Redis and NATS, as behind a load balancer. Each test starts its own
//! NATS (JetStream) and Redis servers on free loopback ports, so it can stop and restart
//! them without disturbing anything else, and its own PostgreSQL database.
//!
//! `cargo test` leaves this binary out (`test = false`): it needs the `duet` binary built
//! and the `nats-server` and `redis-server` programs. `scripts/test.sh` builds the binary and
//! runs it with `cargo test -p duet-tests --test cluster`. Without those programs or
//! PostgreSQL the tests say SKIPPED and why; with CI=true that is a failure.

mod crash;
mod delivery;
mod nginx;
mod outages;
mod support;
