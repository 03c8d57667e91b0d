//! Optional accelerators: caches, presence and send limits. Their absence or failure never
//! changes a result.
//!
//! - [`SessionCache`]: bearer-token checks without a database read.
//! - [`HistoryCache`]: the newest page of each conversation, validated against the
//!   conversation's `last_seq` before use.
//! - [`SendLimiter`]: a per-user send rate shared by every process.
//! - [`Presence`]: who is connected, and when each user was last seen.
//!
//! Every method here is infallible by design: an adapter whose backend fails answers a miss
//! (or "allowed", or "offline") and counts the fallback, so callers never branch on cache
//! errors and a cache outage can only cost speed.

mod history;
mod limiter;
mod presence;
mod session;

pub use history::*;
pub use limiter::*;
pub use presence::*;
pub use session::*;
