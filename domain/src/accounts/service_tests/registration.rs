//! Registering, logging in and finding users.

use super::{PASSWORD, accounts};
use crate::accounts::AccountError;
use crate::clock::Clock;

#[tokio::test]
async fn registering_a_handle_taken_in_another_case_is_refused() {
    let accounts = accounts(false);
    accounts
        .service
        .register("alice", PASSWORD.into(), None)
        .await
        .expect("the first alice");
    let second = accounts
        .service
        .register("ALICE", PASSWORD.into(), None)
        .await;
    assert!(
        matches!(second, Err(AccountError::HandleTaken)),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_new_user_is_named_after_their_handle_and_stamped_by_the_clock() {
    let accounts = accounts(false);
    let user = accounts
        .service
        .register("Alice", PASSWORD.into(), None)
        .await
        .expect("registered");
    assert_eq!(user.handle.as_str(), "alice");
    assert_eq!(user.display_name, "alice");
    assert_eq!(user.created_at, accounts.clock.now());
}

#[tokio::test]
async fn registration_stores_the_password_hash_not_the_password() {
    let accounts = accounts(false);
    let user = accounts
        .service
        .register("alice", PASSWORD.into(), None)
        .await
        .expect("registered");
    let stored = accounts
        .store
        .password_hash(user.id)
        .expect("a stored hash");
    assert_ne!(stored, PASSWORD);
    assert_eq!(stored, format!("hashed:{PASSWORD}"));
}

#[tokio::test]
async fn registration_with_bad_input_stores_nothing() {
    let accounts = accounts(false);
    let attempts = [
        ("a", PASSWORD, None),
        ("alice", "short", None),
        ("alice", PASSWORD, Some("   ")),
    ];
    for (handle, password, display_name) in attempts {
        let result = accounts
            .service
            .register(handle, password.into(), display_name)
            .await;
        assert!(
            matches!(result, Err(AccountError::Invalid(_))),
            "{result:?}"
        );
    }
    let found = accounts.service.user_by_handle("alice").await;
    assert!(matches!(found, Err(AccountError::NotFound)), "{found:?}");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_handle_get_the_same_answer_and_the_same_work() {
    let accounts = accounts(false);
    accounts.logged_in("alice").await;
    let verified_before = accounts.credentials.verifications();
    let sessions_before = accounts.store.sessions().len();
    for (handle, password) in [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("x", PASSWORD),
    ] {
        let result = accounts.service.log_in(handle, password).await;
        assert!(
            matches!(result, Err(AccountError::WrongCredentials)),
            "{handle}: {result:?}"
        );
    }
    // One password check each, whether or not the handle exists: no timing tells them apart.
    assert_eq!(accounts.credentials.verifications(), verified_before + 3);
    assert_eq!(accounts.store.sessions().len(), sessions_before);
}

#[tokio::test]
async fn a_handle_is_found_in_any_case_and_a_malformed_one_is_unknown() {
    let accounts = accounts(false);
    accounts.logged_in("alice").await;
    let found = accounts
        .service
        .user_by_handle("ALICE")
        .await
        .expect("found");
    assert_eq!(found.handle.as_str(), "alice");
    let malformed = accounts.service.user_by_handle("a!").await;
    assert!(
        matches!(malformed, Err(AccountError::NotFound)),
        "{malformed:?}"
    );
}
