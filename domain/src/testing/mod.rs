//! In-memory fakes of the domain's ports, so a service's rules can be proven without a
//! database, a broker or a real clock. Test-only (`#[cfg(test)]`).
//!
//! Each fake keeps its port's documented contract (a replayed append, an idempotent apply,
//! a forward-only read position) as simply as it can, and records what it was asked, so a
//! test can check what a service did as well as what it answered. The store rules
//! themselves are proven against the real stores by the adapters' tests and the black-box
//! suite in `tests/`; tests here prove what the services decide.
//!
//! - [`FakeClock`]: a clock that moves only when told.
//! - [`MemoryAccountStore`], [`FakeCredentials`], [`MemorySessionCache`]: accounts.
//! - [`MemoryConversationStore`]: conversations and messages; [`UncheckedHistoryCache`] and
//!   [`RefusingLimiter`], its optional accelerators.
//! - [`MemoryInbox`]: inbox entries and feeds.
//! - [`MemoryOutbox`], [`RecordingQueue`], [`RecordingLiveBus`]: events.
//! - [`MemoryPresence`]: who is connected.
//! - [`Journal`]: what the conversation store and the live bus were asked, in one order.

mod accounts;
mod cache;
mod clock;
mod conversations;
mod events;
mod inbox;
mod journal;
mod presence;
mod session_cache;

pub use accounts::{FakeCredentials, MemoryAccountStore};
pub use cache::{RefusingLimiter, UncheckedHistoryCache};
pub use clock::FakeClock;
pub use conversations::MemoryConversationStore;
pub use events::{MemoryOutbox, RecordingLiveBus, RecordingQueue};
pub use inbox::MemoryInbox;
pub use journal::{Journal, Step};
pub use presence::MemoryPresence;
pub use session_cache::MemorySessionCache;

use std::sync::{Mutex, MutexGuard};

/// Locks a fake's state. A test that panicked while holding it has failed already; the
/// state is still worth reading.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
