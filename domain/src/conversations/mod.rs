//! Conversations: a 1:1 conversation between two users and its messages, appended with
//! idempotency on `(sender, client_msg_id)` and numbered by a gap-free per-conversation `seq`.

mod model;
mod ports;
#[cfg(test)]
mod rules_tests;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
