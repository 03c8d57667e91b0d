//! Duet's domain: what a one-to-one messaging server *is*, with no I/O and no framework types.
//!
//! - [`accounts`]: users, handles, credentials and sessions.
//! - [`conversations`]: 1:1 conversations and their messages (append with idempotency, history).
//! - [`inbox`]: each user's conversation list, read positions and per-user change feed.
//! - [`events`]: durable events (outbox → queue → delivery) and live fan-out to devices.
//! - [`presence`]: who is online, told only to the people they talk to.
//! - [`cache`]: optional accelerators (sessions, history, send limits, presence store).
//! - [`clock`]: the time services stamp and compare, injectable with `with_clock`.
//!
//! Each context has `model.rs` (types and rules), `ports.rs` (what it needs from the outside,
//! implemented in `duet-adapters`) and `service.rs` (use cases the API calls). The services'
//! rules are unit-tested in `*_tests` modules beside them, against the in-memory fakes of
//! the ports in `testing` (test builds only), so a rule is proven without a database.

pub mod accounts;
pub mod cache;
pub mod clock;
pub mod conversations;
pub mod error;
pub mod events;
pub mod ids;
pub mod inbox;
pub mod presence;
#[cfg(test)]
mod presence_tests;
#[cfg(test)]
mod testing;

pub use error::StoreError;
pub use ids::{ConversationId, MessageId, UserId};
