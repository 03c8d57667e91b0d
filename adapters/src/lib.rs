//! Implementations of Duet's ports.
//!
//! - [`sql`]: sea-orm over SQLite or PostgreSQL, behind a shard router: accounts,
//!   conversations, inboxes and the outbox.
//! - [`memory`]: the in-process event queue and live bus of the `small` profile.
//! - [`crypto`]: argon2id password hashing and session tokens.

pub mod crypto;
mod live_stream;
pub mod memory;
pub mod memory_cache;
pub mod nats;
pub mod redis;
pub mod sql;
