//! Sessions: how they are stored, when they expire, what the cache may answer.

use chrono::Duration;

use super::{PASSWORD, TTL, accounts};
use crate::accounts::SessionToken;
use crate::cache::{CachedSession, SessionCache};
use crate::clock::Clock;

#[tokio::test]
async fn a_session_is_stored_under_the_hash_of_its_token() {
    let accounts = accounts(false);
    let token = accounts.logged_in("alice").await;
    let sessions = accounts.store.sessions();
    assert_eq!(sessions.len(), 1);
    assert_ne!(sessions[0].token_hash, token.expose());
    assert_eq!(sessions[0].token_hash, format!("hashed:{}", token.expose()));
}

#[tokio::test]
async fn a_session_expires_at_exactly_its_ttl() {
    let accounts = accounts(false);
    let logged_in_at = accounts.clock.now();
    let token = accounts.logged_in("alice").await;
    assert_eq!(accounts.store.sessions()[0].expires_at, logged_in_at + TTL);
    accounts.clock.advance(TTL - Duration::microseconds(1));
    let caller = accounts
        .service
        .authenticate(&token)
        .await
        .expect("no error");
    assert!(caller.is_some(), "valid until its last microsecond");
    accounts.clock.advance(Duration::microseconds(1));
    let caller = accounts
        .service
        .authenticate(&token)
        .await
        .expect("no error");
    assert_eq!(caller, None, "expired at exactly its TTL");
}

#[tokio::test]
async fn a_cached_session_expires_at_exactly_its_ttl_too() {
    let accounts = accounts(true);
    let token = accounts.logged_in("alice").await;
    let hash = accounts.token_hash(&token);
    accounts.clock.advance(TTL - Duration::microseconds(1));
    assert!(
        accounts
            .service
            .authenticate(&token)
            .await
            .expect("no error")
            .is_some()
    );
    assert!(
        accounts.cache.peek(&hash).is_some(),
        "the check filled the cache"
    );
    accounts.clock.advance(Duration::microseconds(1));
    let caller = accounts
        .service
        .authenticate(&token)
        .await
        .expect("no error");
    assert_eq!(caller, None, "a cached copy does not outlive the session");
}

#[tokio::test]
async fn an_expired_session_is_not_cached() {
    let accounts = accounts(true);
    let token = accounts.logged_in("alice").await;
    accounts.clock.advance(TTL);
    assert_eq!(
        accounts
            .service
            .authenticate(&token)
            .await
            .expect("no error"),
        None
    );
    assert_eq!(accounts.cache.peek(&accounts.token_hash(&token)), None);
}

#[tokio::test]
async fn a_cached_session_answers_without_reading_the_store() {
    let accounts = accounts(true);
    let token = accounts.logged_in("alice").await;
    for _ in 0..3 {
        let caller = accounts
            .service
            .authenticate(&token)
            .await
            .expect("no error");
        assert!(caller.is_some());
    }
    assert_eq!(
        accounts.store.session_reads(),
        1,
        "only the first check read the store"
    );
}

#[tokio::test]
async fn a_cached_session_answers_only_for_the_user_it_belongs_to() {
    let accounts = accounts(true);
    let alice = accounts.logged_in("alice").await;
    let alice = accounts
        .service
        .authenticate(&alice)
        .await
        .expect("no error");
    let alice = alice.expect("alice is logged in").user_id;
    let bob = accounts
        .service
        .register("bob", PASSWORD.into(), None)
        .await
        .expect("registered");
    // Bob has no session; a cache entry under a token naming him says it is alice's.
    let token = SessionToken::new(format!("{}.forged", bob.id.0.simple()));
    let entry = CachedSession {
        user_id: alice,
        expires_at: accounts.clock.now() + TTL,
    };
    accounts
        .cache
        .put(&accounts.token_hash(&token), entry)
        .await;
    let caller = accounts
        .service
        .authenticate(&token)
        .await
        .expect("no error");
    assert_eq!(caller, None);
}

#[tokio::test]
async fn a_logged_out_token_fails_and_leaves_the_cache() {
    let accounts = accounts(true);
    let token = accounts.logged_in("alice").await;
    let hash = accounts.token_hash(&token);
    assert!(
        accounts
            .service
            .authenticate(&token)
            .await
            .expect("no error")
            .is_some()
    );
    assert!(accounts.cache.peek(&hash).is_some());
    accounts.service.log_out(&token).await.expect("logged out");
    assert_eq!(accounts.cache.peek(&hash), None);
    assert!(accounts.store.sessions().is_empty());
    assert_eq!(
        accounts
            .service
            .authenticate(&token)
            .await
            .expect("no error"),
        None
    );
}

#[tokio::test]
async fn a_malformed_token_is_refused_without_a_lookup() {
    let accounts = accounts(true);
    for raw in ["", "nonsense", "not-a-uuid.secret"] {
        let caller = accounts
            .service
            .authenticate(&SessionToken::new(raw.into()))
            .await;
        assert_eq!(caller.expect("no error"), None, "{raw:?}");
    }
    assert_eq!(accounts.store.session_reads(), 0);
}
