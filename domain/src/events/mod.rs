//! Events: the durable path from a committed write to both inboxes (outbox → queue →
//! delivery, or inline: both inboxes written with the message, see
//! [`ConversationStore::append`](crate::conversations::ConversationStore::append)), and the
//! live lane to connected devices.

mod delivery;
mod model;
mod ports;
mod relay;

pub use delivery::*;
pub use model::*;
pub use ports::*;
pub use relay::*;
