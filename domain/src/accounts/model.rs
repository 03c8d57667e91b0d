use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::UserId;

/// Why a piece of user input was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    /// The name of the offending field, as the API spells it.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A unique user handle: 3–32 characters of `[a-z0-9_.]`, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// Case-folds and validates a handle.
    ///
    /// # Errors
    /// Returns [`InvalidInput`] when it is too short, too long or has other characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let folded = raw.trim().to_ascii_lowercase();
        let len = folded.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(InvalidInput::new(
                "handle",
                format!("must be {}–{} characters", Self::MIN_LEN, Self::MAX_LEN),
            ));
        }
        if !folded
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        {
            return Err(InvalidInput::new(
                "handle",
                "may contain only letters, digits, '_' and '.'",
            ));
        }
        Ok(Self(folded))
    }

    /// Rebuilds a handle read back from storage, where it was validated on the way in.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8–128 characters. Never stored; only its argon2id hash is.
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    /// # Errors
    /// Returns [`InvalidInput`] when its length is out of bounds.
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(InvalidInput::new(
                "password",
                format!("must be {}–{} characters", Self::MIN_LEN, Self::MAX_LEN),
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1–64 characters, no control characters. Defaults to the handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// Returns [`InvalidInput`] when it is blank, too long or contains control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "display_name",
                format!("must be 1–{} characters", Self::MAX_LEN),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "display_name",
                "may not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A registered user, as others may see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub handle: Handle,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// A user about to be stored, with the hash of their password.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user: User,
    pub password_hash: String,
}

/// A stored session: the hash of its bearer token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A bearer token as handed to the client once, at login.
///
/// Its form is `<user id, 32 hex>.<secret>`: the user id part lets the server find the shard
/// holding the session without a global lookup; the secret makes it unguessable.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The user this token claims to belong to, if it is well formed.
    pub fn claimed_user(&self) -> Option<UserId> {
        let (user, secret) = self.0.split_once('.')?;
        if user.len() != 32 || secret.is_empty() || secret.len() > 128 {
            return None;
        }
        uuid::Uuid::try_parse(user).ok().map(UserId)
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_case_folded_and_bounded() {
        assert_eq!(Handle::parse(" Alice.B_1 ").unwrap().as_str(), "alice.b_1");
        assert!(Handle::parse("ab").is_err());
        assert!(Handle::parse(&"a".repeat(33)).is_err());
        assert!(Handle::parse("al ice").is_err());
        assert!(Handle::parse("alicé").is_err());
    }

    #[test]
    fn passwords_have_length_bounds() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn a_token_names_its_user_only_when_well_formed() {
        let id = UserId::generate();
        let token = SessionToken::new(format!("{}.secret", id.0.simple()));
        assert_eq!(token.claimed_user(), Some(id));
        assert_eq!(SessionToken::new("nonsense".into()).claimed_user(), None);
        assert_eq!(
            SessionToken::new(format!("{}.", id.0.simple())).claimed_user(),
            None
        );
    }
}
