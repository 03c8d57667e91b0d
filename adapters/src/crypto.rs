//! argon2id password hashes and SHA-256-hashed bearer tokens.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use duet_domain::accounts::{Credentials, SessionToken};
use duet_domain::{StoreError, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// argon2id with the crate's default (OWASP-recommended) parameters.
pub struct Argon2Credentials {
    /// Verified against when a handle is unknown, so both paths cost the same.
    dummy_hash: String,
    /// Each hash takes ~19 MiB and a core for tens of milliseconds: at most two per core run
    /// at once, the rest queue, so a burst of logins cannot exhaust memory.
    hashing: tokio::sync::Semaphore,
}

impl Argon2Credentials {
    /// # Panics
    /// Never in practice: hashing a constant with default parameters cannot fail.
    pub fn new() -> Self {
        #[allow(clippy::expect_used)]
        let dummy_hash = hash("duet-dummy-password").expect("hashing a constant");
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            dummy_hash,
            hashing: tokio::sync::Semaphore::new(2 * cores),
        }
    }
}

impl Default for Argon2Credentials {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[async_trait]
impl Credentials for Argon2Credentials {
    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_owned();
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| StoreError::Unexpected(e.into()))?;
        tokio::task::spawn_blocking(move || hash(&password))
            .await
            .map_err(|e| StoreError::Unexpected(e.into()))?
            .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("argon2: {e}")))
    }

    async fn verify_password(&self, password: &str, hash: Option<&str>) -> bool {
        let password = password.to_owned();
        let (phc, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let matched = tokio::task::spawn_blocking(move || verify(&password, &phc))
            .await
            .unwrap_or(false);
        matched && real
    }

    fn new_token(&self, user: UserId) -> SessionToken {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        SessionToken::new(format!("{}.{}", user.0.simple(), hex::encode(secret)))
    }

    fn token_hash(&self, token: &SessionToken) -> String {
        hex::encode(Sha256::digest(token.expose().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_only_against_its_own_hash() {
        let creds = Argon2Credentials::new();
        let phc = creds.hash_password("correct horse").await.unwrap();
        assert!(creds.verify_password("correct horse", Some(&phc)).await);
        assert!(!creds.verify_password("wrong horse", Some(&phc)).await);
        assert!(!creds.verify_password("duet-dummy-password", None).await);
    }

    #[test]
    fn tokens_are_unique_and_name_their_user() {
        let creds = Argon2Credentials::new();
        let user = UserId::generate();
        let (a, b) = (creds.new_token(user), creds.new_token(user));
        assert_ne!(a, b);
        assert_eq!(a.claimed_user(), Some(user));
        assert_ne!(creds.token_hash(&a), creds.token_hash(&b));
    }
}
