//! Duet's domain: what a one-to-one messaging server *is*, with no I/O and no framework types.
//!
//! - [`accounts`]: users, handles, credentials and sessions.
//! - [`conversations`]: 1:1 conversations and their messages (append with idempotency, history).
//! - [`inbox`]: each user's conversation list, read positions and per-user change feed.
//! - [`events`]: durable events (outbox → queue → delivery) and live fan-out to devices.
//!
//! Each context has `model.rs` (types and rules), `ports.rs` (what it needs from the outside,
//! implemented in `duet-adapters`) and `service.rs` (use cases the API calls).

pub mod accounts;
pub mod cache;
pub mod clock;
pub mod conversations;
pub mod error;
pub mod events;
pub mod ids;
pub mod inbox;
pub mod presence;

pub use error::StoreError;
pub use ids::{ConversationId, MessageId, UserId};
