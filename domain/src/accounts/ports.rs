use async_trait::async_trait;

use super::{Handle, NewUser, Session, SessionToken, User};
use crate::{StoreError, UserId};

/// What `AccountStore::create_user` did.
#[derive(Debug)]
pub enum CreatedUser {
    Created(User),
    /// Another user already holds this handle (compared case-insensitively).
    HandleTaken,
}

/// Where users, handles and sessions are kept. Users and sessions live on the user's shard;
/// the handle → user id claim lives on the handle's shard.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Claims the handle and stores the user, or neither.
    ///
    /// # Errors
    /// Returns `Unavailable` when the backend cannot be reached.
    async fn create_user(&self, user: NewUser) -> Result<CreatedUser, StoreError>;

    /// The user with this id.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Several users at once, in no particular order; unknown ids are left out.
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;

    /// The id of the user holding this handle.
    async fn user_id_by_handle(&self, handle: &Handle) -> Result<Option<UserId>, StoreError>;

    /// The user and password hash for this handle, for logging in.
    async fn credentials(&self, handle: &Handle) -> Result<Option<(User, String)>, StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: Session) -> Result<(), StoreError>;

    /// The session with this token hash, if it belongs to `user` (expired ones included).
    async fn session(&self, user: UserId, token_hash: &str) -> Result<Option<Session>, StoreError>;

    /// Deletes a session; deleting one that is gone is not an error.
    async fn delete_session(&self, user: UserId, token_hash: &str) -> Result<(), StoreError>;

    /// Deletes every session that expired before `now`, on every shard; returns how many.
    async fn delete_expired_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes accounts registered before `registered_before` whose handle claim never came
    /// to point at them (a registration that lost a race, or stopped between writing the
    /// account and claiming its handle, on stores where those are two databases); returns
    /// how many. A store that writes both at once has none: the default.
    async fn remove_unclaimed_users(
        &self,
        registered_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let _ = registered_before;
        Ok(0)
    }
}

/// Password hashing and token minting: CPU work with secrets, kept out of the domain.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// An argon2id PHC string for this password, with a fresh salt.
    async fn hash_password(&self, password: &str) -> Result<String, StoreError>;

    /// Whether the password matches the PHC string. With `None`, spends the same time
    /// verifying against a dummy hash, so unknown handles cannot be told apart by timing.
    async fn verify_password(&self, password: &str, hash: Option<&str>) -> bool;

    /// A new unguessable bearer token for `user`.
    fn new_token(&self, user: UserId) -> SessionToken;

    /// The hash under which a token is stored.
    fn token_hash(&self, token: &SessionToken) -> String;
}
