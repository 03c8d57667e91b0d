use std::sync::Arc;

use chrono::{Duration, Utc};
use tracing::instrument;

use super::{
    AccountStore, CreatedUser, Credentials, DisplayName, Handle, InvalidInput, NewUser, Password,
    Session, SessionToken, User,
};
use crate::cache::{CachedSession, SessionCache};
use crate::clock::{Clock, SystemClock};
use crate::{StoreError, UserId};

/// What can go wrong in an account use case.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("this handle is taken")]
    HandleTaken,
    #[error("wrong handle or password")]
    WrongCredentials,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new session: the token (shown once) and who it belongs to.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: SessionToken,
    pub user: User,
    pub expires_at: chrono::DateTime<Utc>,
}

/// The caller behind a valid bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
}

/// Registration, login, logout and token checks.
pub struct AccountService {
    store: Arc<dyn AccountStore>,
    credentials: Arc<dyn Credentials>,
    session_ttl: Duration,
    /// Answers token checks without a database read when set.
    session_cache: Option<Arc<dyn SessionCache>>,
    /// Stamps users and sessions and decides which sessions have expired.
    clock: Arc<dyn Clock>,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn AccountStore>,
        credentials: Arc<dyn Credentials>,
        session_ttl: Duration,
    ) -> Self {
        Self {
            store,
            credentials,
            session_ttl,
            session_cache: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks tokens against `cache` before the store, and keeps it told of log-outs.
    #[must_use]
    pub fn with_session_cache(mut self, cache: Arc<dyn SessionCache>) -> Self {
        self.session_cache = Some(cache);
        self
    }

    /// Registers a user.
    ///
    /// # Errors
    /// `Invalid` for a bad handle, password or display name; `HandleTaken` when the handle is
    /// in use.
    #[instrument(skip(self, password, display_name))]
    pub async fn register(
        &self,
        handle: &str,
        password: String,
        display_name: Option<&str>,
    ) -> Result<User, AccountError> {
        let handle = Handle::parse(handle)?;
        let password = Password::parse(password)?;
        let display_name = match display_name {
            Some(name) => DisplayName::parse(name)?.into_inner(),
            None => handle.as_str().to_owned(),
        };
        let password_hash = self.credentials.hash_password(password.expose()).await?;
        let user = User {
            id: UserId::generate(),
            handle,
            display_name,
            created_at: self.clock.now(),
        };
        match self
            .store
            .create_user(NewUser {
                user,
                password_hash,
            })
            .await?
        {
            CreatedUser::Created(user) => Ok(user),
            CreatedUser::HandleTaken => Err(AccountError::HandleTaken),
        }
    }

    /// Checks a handle and password and opens a session.
    ///
    /// # Errors
    /// `WrongCredentials` for an unknown handle or a wrong password, indistinguishably.
    #[instrument(skip(self, password))]
    pub async fn log_in(&self, handle: &str, password: &str) -> Result<LoggedIn, AccountError> {
        let found = match Handle::parse(handle) {
            Ok(handle) => self.store.credentials(&handle).await?,
            Err(_) => None,
        };
        let hash = found.as_ref().map(|(_, hash)| hash.as_str());
        let matches = self.credentials.verify_password(password, hash).await;
        let Some((user, _)) = found.filter(|_| matches) else {
            return Err(AccountError::WrongCredentials);
        };
        let token = self.credentials.new_token(user.id);
        let now = self.clock.now();
        let expires_at = now + self.session_ttl;
        self.store
            .create_session(Session {
                user_id: user.id,
                token_hash: self.credentials.token_hash(&token),
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(LoggedIn {
            token,
            user,
            expires_at,
        })
    }

    /// The caller a bearer token stands for, or `None` when it is malformed, unknown, revoked
    /// or expired. With a session cache, a cached session answers without a database read;
    /// a miss reads the store and fills the cache.
    ///
    /// # Errors
    /// Only storage failures; an invalid token is `Ok(None)`.
    pub async fn authenticate(&self, token: &SessionToken) -> Result<Option<Caller>, StoreError> {
        let Some(user_id) = token.claimed_user() else {
            return Ok(None);
        };
        let hash = self.credentials.token_hash(token);
        let now = self.clock.now();
        if let Some(cache) = &self.session_cache
            && let Some(cached) = cache.get(&hash).await
            // The store only answers a session to the user it belongs to; so does the cache.
            && cached.user_id == user_id
            && cached.expires_at > now
        {
            return Ok(Some(Caller { user_id }));
        }
        let session = self
            .store
            .session(user_id, &hash)
            .await?
            .filter(|s| s.expires_at > now);
        if let (Some(cache), Some(session)) = (&self.session_cache, &session) {
            let cached = CachedSession {
                user_id: session.user_id,
                expires_at: session.expires_at,
            };
            cache.put(&hash, cached).await;
        }
        Ok(session.map(|s| Caller { user_id: s.user_id }))
    }

    /// Revokes the session behind this token. The cached copy is forgotten before the
    /// delete (so fewer requests can be answered from it meanwhile) and again after it (so
    /// a fill that read the store just before the delete cannot outlive it).
    pub async fn log_out(&self, token: &SessionToken) -> Result<(), StoreError> {
        let Some(user) = token.claimed_user() else {
            return Ok(());
        };
        let hash = self.credentials.token_hash(token);
        if let Some(cache) = &self.session_cache {
            cache.invalidate(&hash).await;
        }
        self.store.delete_session(user, &hash).await?;
        if let Some(cache) = &self.session_cache {
            cache.invalidate(&hash).await;
        }
        Ok(())
    }

    /// A user by id.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn user(&self, id: UserId) -> Result<User, AccountError> {
        self.store.user(id).await?.ok_or(AccountError::NotFound)
    }

    /// A user by handle. A malformed handle cannot exist, so it is `NotFound` too.
    pub async fn user_by_handle(&self, handle: &str) -> Result<User, AccountError> {
        let handle = Handle::parse(handle).map_err(|_| AccountError::NotFound)?;
        let id = self
            .store
            .user_id_by_handle(&handle)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.user(id).await
    }

    /// Several users by id; unknown ids are left out.
    pub async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.store.users(ids).await
    }
}
