//! How Duet's black-box tests start Duet and talk to it, shared by the three test binaries
//! of this crate: `api` (the conformance suite, every storage profile), `replica` (read
//! routing on a real streaming replica) and `cluster` (several `duet serve` processes with
//! their own NATS and Redis).
//!
//! [`spawn_app`] starts the real `Application` exactly as `main` does, on port 0, on the
//! storage profile `DUET_TEST_PROFILE` names (see `profile`: SQLite by default,
//! PostgreSQL, PostgreSQL with a read replica, `medium`) against a fresh database of its
//! own, and returns a [`TestApp`]; [`spawn_process_on`] starts a real `duet serve` child
//! process instead. The typed API calls live in `calls` (on top of the raw ones in `http`),
//! the WebSocket client in `ws`, shape and error checks in `assertions`, `/metrics` parsing
//! in `metrics`, and direct database connections in [`postgres`]. Nothing here waits without
//! a deadline: HTTP calls have a client timeout, WebSocket reads [`WS_TIMEOUT`] and polling
//! ([`eventually`], in `wait`) [`EVENTUALLY`], so a broken server fails a test instead of
//! hanging it.

mod app;
mod assertions;
mod brokers;
mod calls;
mod http;
mod metrics;
pub mod postgres;
mod process;
mod profile;
mod wait;
mod ws;

pub use app::{PASSWORD, TestApp, TestUser, spawn_app, spawn_app_on, spawn_app_with};
pub use assertions::*;
pub use http::Reply;
pub use metrics::{metric_sum, metric_sum_where};
pub use process::{free_port, spawn_process_on};
pub use wait::{EVENTUALLY, WS_TIMEOUT, eventually, eventually_within};
pub use ws::{WsClient, assert_cursors_increase};
