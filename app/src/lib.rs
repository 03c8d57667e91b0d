//! The `duet` binary as a library, so black-box tests start the server exactly as `main` does.
//!
//! - [`config`]: layered settings (defaults → profile file → `DUET__SECTION__KEY`).
//! - [`telemetry`]: `tracing` subscriber and the process-wide Prometheus recorder.
//! - [`startup`]: [`startup::Application`] builds adapters and services from [`config::Settings`],
//!   binds the listener and runs the server with its background workers until stopped.
//! - [`storage`]: turns the storage settings into the SQL adapter.
//! - [`workers`]: the outbox relay, the feed pruner and metrics upkeep.
//! - [`routes`]: every route, mounting [`api`] and [`ws`] inside the middleware of [`http`].
//! - [`api`]: the HTTP API (poem-openapi) and its OpenAPI document.
//! - [`ws`]: the `GET /v1/events` WebSocket: replay from the feed, then live events.
//! - [`http`]: what both share: the error mapping, token checks and the middleware.
//! - [`rate_limit`]: per-client-address limits on login and registration.
//! - [`state`]: what every handler shares.

pub mod api;
pub mod caches;
pub mod config;
pub mod delivery;
pub mod http;
pub mod rate_limit;
pub mod routes;
pub mod shards;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod workers;
pub mod ws;

pub use config::{Profile, Settings};
pub use startup::Application;
