//! Where rows land, and a conversation whose members and itself live on three databases.

use std::collections::BTreeSet;

use chrono::Utc;
use duet_domain::accounts::AccountStore;
use reqwest::StatusCode;

use crate::support::{
    databases, physical_of, rows_per_shard, rows_where, sharded_app, storage_beside,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_cluster_spreads_the_logical_shards_evenly_over_four_databases() {
    let app = sharded_app(&[]).await;
    let storage = storage_beside(&app).await;
    let status = storage.shard_status().await.expect("status");
    assert_eq!(status.logical_shards, 1024);
    assert_eq!(status.physical.len(), 4);
    for shard in &status.physical {
        assert_eq!(shard.logical.len(), 256, "physical shard {}", shard.index);
    }
    let all: BTreeSet<u32> = status
        .physical
        .iter()
        .flat_map(|s| s.logical.iter().copied())
        .collect();
    assert_eq!(all.len(), 1024, "every logical shard has one owner");
    assert!(status.moves.is_empty());
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_on_a_third_database_works_as_on_one() {
    let app = sharded_app(&[]).await;
    let storage = storage_beside(&app).await;
    let dbs = databases(&app).await;
    let users = app
        .register_users([
            "user0", "user1", "user2", "user3", "user4", "user5", "user6", "user7",
        ])
        .await;

    // Find two members on two databases whose conversation lives on a third.
    let mut found = None;
    'search: for (i, a) in users.iter().enumerate() {
        for b in &users[i + 1..] {
            let (pa, pb) = (
                physical_of(&storage, &a.id).await,
                physical_of(&storage, &b.id).await,
            );
            if pa == pb {
                continue;
            }
            let id = app.open_conversation(a, b).await;
            let pc = physical_of(&storage, &id).await;
            if pc != pa && pc != pb {
                found = Some((a.clone(), b.clone(), id, [pa, pb, pc]));
                break 'search;
            }
        }
    }
    let (alice, bob, id, [pa, pb, pc]) = found.expect("eight users give such a pair");

    let mut bob_ws = app.ws_connect(&bob, Some(0)).await;
    bob_ws.until_ready().await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(app.send(&alice, &id, &format!("from alice {i}")).await);
        sent.push(app.send(&bob, &id, &format!("from bob {i}")).await);
    }
    app.mark_read(&bob, &id, 8).await.expect(StatusCode::OK);

    // The event stream: Bob sees every message once, in seq order, then his receipt.
    let mut seen = Vec::new();
    while seen.len() < 8 {
        let frame = bob_ws.next().await;
        if frame["type"] == "message.created" {
            seen.push(frame["message"]["seq"].as_i64().expect("a seq"));
        }
    }
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());

    // History and sync, from both sides.
    for user in [&alice, &bob] {
        let history = app.all_history(user, &id).await;
        assert_eq!(history, sent, "{}'s history", user.handle);
    }
    app.delivered(&alice, &id, 8).await;
    app.delivered(&bob, &id, 8).await;
    let alice_view = app.conversation(&alice, &id).await;
    assert_eq!(alice_view["last_message"], sent[7]);
    crate::support::wait_for_peer_read(&app, &alice, &id, 8).await;

    // The rows: messages only on the conversation's database, each inbox on its owner's.
    let messages = rows_per_shard(&dbs, "messages", "conversation_id", &id).await;
    let mut expected = [0; 4];
    expected[pc] = 8;
    assert_eq!(messages, expected, "messages by physical shard");
    let entry = |user: &str| format!("user_id = '{user}' AND conversation_id = '{id}'");
    let alice_entries = rows_where(&dbs, "inbox_entries", &entry(&alice.id)).await;
    let mut expected = [0; 4];
    expected[pa] = 1;
    assert_eq!(
        alice_entries, expected,
        "Alice's inbox entries by physical shard"
    );
    let bob_entries = rows_where(&dbs, "inbox_entries", &entry(&bob.id)).await;
    let mut expected = [0; 4];
    expected[pb] = 1;
    assert_eq!(
        bob_entries, expected,
        "Bob's inbox entries by physical shard"
    );
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_whose_handle_claim_never_landed_is_swept_and_a_claimed_one_kept() {
    let app = sharded_app(&[]).await;
    let storage = storage_beside(&app).await;
    let dbs = databases(&app).await;
    let [kept, orphan] = app.register_users(["kept", "orphan"]).await;
    // As if each registration stopped half-way: Kept's after its claim, Orphan's before it.
    for user in [&kept, &orphan] {
        let shard = physical_of(&storage, &user.id).await;
        duet_tests::postgres::execute(
            &dbs[shard],
            &format!(
                "UPDATE users SET claimed = false, created_at = now() - interval '1 hour' \
                 WHERE id = '{}'",
                user.id
            ),
        )
        .await;
    }
    let handle_shard = physical_of_handle(&storage, "orphan").await;
    duet_tests::postgres::execute(
        &dbs[handle_shard],
        "DELETE FROM handles WHERE handle = 'orphan'",
    )
    .await;

    let removed = storage
        .remove_unclaimed_users(Utc::now() - chrono::Duration::minutes(10))
        .await
        .expect("the sweep runs");
    assert_eq!(removed, 1);
    let orphan_rows = rows_per_shard(&dbs, "users", "id", &orphan.id).await;
    assert_eq!(orphan_rows.iter().sum::<i64>(), 0, "the orphan is gone");
    let kept_rows = rows_per_shard(&dbs, "users", "id", &kept.id).await;
    assert_eq!(
        kept_rows.iter().sum::<i64>(),
        1,
        "the claimed account stays"
    );
    app.get("/v1/me", Some(&kept.token))
        .await
        .expect(StatusCode::OK);
    let again = storage
        .remove_unclaimed_users(Utc::now())
        .await
        .expect("the sweep runs");
    assert_eq!(again, 0, "the kept account was marked claimed");
    // The handle is free again.
    app.register("orphan").await;
    storage.close().await;
}

async fn physical_of_handle(storage: &duet_adapters::sql::SqlStorage, handle: &str) -> usize {
    let map = storage.reload_shard_map().await.expect("the map loads");
    map.owner(duet_adapters::sql::logical_shard(handle.as_bytes(), 1024))
}
