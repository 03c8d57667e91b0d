//! In-process caches for the `small` profile (one process): history pages, sessions, send
//! limits and presence. The session cache is only sound where this process is the only one
//! that can revoke a session (SQLite: one process per database file).

mod history;
mod limiter;
mod presence;
mod session;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use history::MemoryHistoryCache;
pub use limiter::MemorySendLimiter;
pub use presence::MemoryPresence;
pub use session::MemorySessionCache;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its map consistent: a panic cannot tear it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
