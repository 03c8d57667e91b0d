//! Accounts: users with unique, case-folded handles; argon2id credentials; opaque sessions.

mod model;
mod ports;
mod service;
#[cfg(test)]
mod service_tests;

pub use model::*;
pub use ports::*;
pub use service::*;
