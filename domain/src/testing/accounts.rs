use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::accounts::{
    AccountStore, CreatedUser, Credentials, Handle, NewUser, Session, SessionToken, User,
};
use crate::{StoreError, UserId};

/// Users, handles and sessions in maps. Counts session reads, so a test can tell a cached
/// answer from a stored one.
#[derive(Default)]
pub struct MemoryAccountStore {
    state: Mutex<Accounts>,
    session_reads: AtomicUsize,
}

#[derive(Default)]
struct Accounts {
    users: HashMap<UserId, (User, String)>,
    handles: HashMap<Handle, UserId>,
    sessions: HashMap<(UserId, String), Session>,
}

impl MemoryAccountStore {
    /// Stores a user with this handle (and no usable password) as registration would.
    pub fn add(&self, handle: &str) -> User {
        let user = User {
            id: UserId::generate(),
            handle: Handle::parse(handle).expect("a valid handle"),
            display_name: handle.to_owned(),
            created_at: crate::clock::now(),
        };
        let mut state = lock(&self.state);
        state.handles.insert(user.handle.clone(), user.id);
        state.users.insert(user.id, (user.clone(), String::new()));
        user
    }

    /// Every stored session.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.state).sessions.values().cloned().collect()
    }

    /// How many times `session` was called.
    pub fn session_reads(&self) -> usize {
        self.session_reads.load(Ordering::SeqCst)
    }

    /// The password hash stored for `id`.
    pub fn password_hash(&self, id: UserId) -> Option<String> {
        lock(&self.state)
            .users
            .get(&id)
            .map(|(_, hash)| hash.clone())
    }
}

#[async_trait]
impl AccountStore for MemoryAccountStore {
    async fn create_user(&self, new: NewUser) -> Result<CreatedUser, StoreError> {
        let mut state = lock(&self.state);
        if state.handles.contains_key(&new.user.handle) {
            return Ok(CreatedUser::HandleTaken);
        }
        let user = new.user;
        state.handles.insert(user.handle.clone(), user.id);
        state
            .users
            .insert(user.id, (user.clone(), new.password_hash));
        Ok(CreatedUser::Created(user))
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(lock(&self.state)
            .users
            .get(&id)
            .map(|(user, _)| user.clone()))
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let state = lock(&self.state);
        Ok(ids
            .iter()
            .filter_map(|id| state.users.get(id).map(|(user, _)| user.clone()))
            .collect())
    }

    async fn user_id_by_handle(&self, handle: &Handle) -> Result<Option<UserId>, StoreError> {
        Ok(lock(&self.state).handles.get(handle).copied())
    }

    async fn credentials(&self, handle: &Handle) -> Result<Option<(User, String)>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .handles
            .get(handle)
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        let key = (session.user_id, session.token_hash.clone());
        lock(&self.state).sessions.insert(key, session);
        Ok(())
    }

    async fn session(&self, user: UserId, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.session_reads.fetch_add(1, Ordering::SeqCst);
        let key = (user, token_hash.to_owned());
        Ok(lock(&self.state).sessions.get(&key).cloned())
    }

    async fn delete_session(&self, user: UserId, token_hash: &str) -> Result<(), StoreError> {
        lock(&self.state)
            .sessions
            .remove(&(user, token_hash.to_owned()));
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = lock(&self.state);
        let before = state.sessions.len();
        state
            .sessions
            .retain(|_, session| session.expires_at >= now);
        Ok((before - state.sessions.len()) as u64)
    }
}

/// Readable "hashes" and numbered tokens instead of argon2 and randomness. Counts every
/// password check, the ones against no hash (an unknown handle) included.
#[derive(Default)]
pub struct FakeCredentials {
    verifications: AtomicUsize,
    tokens: AtomicUsize,
}

impl FakeCredentials {
    /// How many times `verify_password` ran, with or without a hash.
    pub fn verifications(&self) -> usize {
        self.verifications.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Credentials for FakeCredentials {
    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        Ok(format!("hashed:{password}"))
    }

    async fn verify_password(&self, password: &str, hash: Option<&str>) -> bool {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        hash.is_some_and(|hash| hash == format!("hashed:{password}"))
    }

    fn new_token(&self, user: UserId) -> SessionToken {
        let n = self.tokens.fetch_add(1, Ordering::SeqCst);
        SessionToken::new(format!("{}.secret{n}", user.0.simple()))
    }

    fn token_hash(&self, token: &SessionToken) -> String {
        format!("hashed:{}", token.expose())
    }
}
