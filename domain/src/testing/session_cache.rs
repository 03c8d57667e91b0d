use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::cache::{CachedSession, SessionCache};

/// Sessions by token hash in a map, with no expiry of its own: the service must check
/// `expires_at` itself.
#[derive(Default)]
pub struct MemorySessionCache {
    sessions: Mutex<HashMap<String, CachedSession>>,
}

impl MemorySessionCache {
    /// What the cache holds for this token hash, without going through the port.
    pub fn peek(&self, token_hash: &str) -> Option<CachedSession> {
        lock(&self.sessions).get(token_hash).copied()
    }
}

#[async_trait]
impl SessionCache for MemorySessionCache {
    async fn get(&self, token_hash: &str) -> Option<CachedSession> {
        self.peek(token_hash)
    }

    async fn put(&self, token_hash: &str, session: CachedSession) {
        lock(&self.sessions).insert(token_hash.to_owned(), session);
    }

    async fn invalidate(&self, token_hash: &str) {
        lock(&self.sessions).remove(token_hash);
    }
}
