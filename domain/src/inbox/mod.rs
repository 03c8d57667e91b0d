//! Inboxes: each user's view of their conversations (last message, read positions, unread
//! count) and their change feed, numbered by a per-user cursor that sync and the event stream
//! resume from. Inbox rows live on the user's shard and are written only by delivery.

mod model;
mod ports;
mod service;
#[cfg(test)]
mod service_tests;

pub use model::*;
pub use ports::*;
pub use service::*;
