//! The rules `AccountService` keeps, proven against in-memory fakes and a fake clock:
//! registration and logging in (`registration`), sessions, their expiry and their cache
//! (`sessions`).

mod registration;
mod sessions;

use std::sync::Arc;

use chrono::Duration;

use super::{AccountService, Credentials, SessionToken};
use crate::testing::{FakeClock, FakeCredentials, MemoryAccountStore, MemorySessionCache};

pub(super) const PASSWORD: &str = "correct horse battery staple";
pub(super) const TTL: Duration = Duration::hours(24);

pub(super) struct Accounts {
    pub(super) service: AccountService,
    pub(super) store: Arc<MemoryAccountStore>,
    pub(super) credentials: Arc<FakeCredentials>,
    pub(super) cache: Arc<MemorySessionCache>,
    pub(super) clock: Arc<FakeClock>,
}

/// An account service on fakes; with the session cache when `cached`.
pub(super) fn accounts(cached: bool) -> Accounts {
    let store = Arc::new(MemoryAccountStore::default());
    let credentials = Arc::new(FakeCredentials::default());
    let cache = Arc::new(MemorySessionCache::default());
    let clock = Arc::new(FakeClock::new());
    let mut service =
        AccountService::new(store.clone(), credentials.clone(), TTL).with_clock(clock.clone());
    if cached {
        service = service.with_session_cache(cache.clone());
    }
    Accounts {
        service,
        store,
        credentials,
        cache,
        clock,
    }
}

impl Accounts {
    /// Registers `handle` with [`PASSWORD`] and logs in; returns the token.
    pub(super) async fn logged_in(&self, handle: &str) -> SessionToken {
        self.service
            .register(handle, PASSWORD.into(), None)
            .await
            .expect("registered");
        self.service
            .log_in(handle, PASSWORD)
            .await
            .expect("logged in")
            .token
    }

    /// The hash the service stores and caches `token` under.
    pub(super) fn token_hash(&self, token: &SessionToken) -> String {
        self.credentials.token_hash(token)
    }
}
