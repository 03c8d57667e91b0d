//! Events: the durable path from a committed write to both inboxes (outbox → queue →
//! delivery, or inline: both inboxes written with the message, see
//! [`ConversationStore::append`](crate::conversations::ConversationStore::append)), and the
//! live lane to connected devices.

mod delivery;
#[cfg(test)]
mod delivery_tests;
mod model;
mod ports;
mod relay;
#[cfg(test)]
mod relay_tests;

pub use delivery::*;
pub use model::*;
pub use ports::*;
pub use relay::*;
