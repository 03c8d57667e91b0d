use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::UserId;

/// What a session cache keeps of a session: enough to answer "who is this, until when",
/// nothing else (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedSession {
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
}

/// Sessions by token hash, so an authenticated request need not read the database.
///
/// The contract that matters is revocation: after [`SessionCache::invalidate`] returns, no
/// later [`SessionCache::get`] in this process answers the session, and other processes
/// stop answering it within the adapter's documented bound (its entry TTL).
#[async_trait]
pub trait SessionCache: Send + Sync {
    /// The cached session for this token hash; `None` on a miss or a backend failure.
    async fn get(&self, token_hash: &str) -> Option<CachedSession>;

    /// Remembers a session just read from the store. The entry lives no longer than the
    /// session itself, and never revives a session invalidated since the caller read it.
    async fn put(&self, token_hash: &str, session: CachedSession);

    /// Forgets the session behind this token hash (on log-out). A failure is retried by
    /// the adapter before it answers anything from its backend again.
    async fn invalidate(&self, token_hash: &str);
}
