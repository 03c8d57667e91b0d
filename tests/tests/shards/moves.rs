//! Moving a logical shard while processes send into it; a process with a stale map; a move
//! stopped at each step and run again; a move rolled back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use duet_adapters::sql::{MoveOptions, MoveStep};
use reqwest::StatusCode;

use crate::support::{
    assert_history_is_exactly, databases, logical_of, physical_of, rows_per_shard, send_until,
    sharded_app, storage_beside,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_move_under_sends_from_two_processes_loses_nothing_and_leaves_nothing_behind() {
    let first = Arc::new(sharded_app(&[]).await);
    let second = Arc::new(first.spawn_another(&[]).await);
    let storage = storage_beside(&first).await;
    let dbs = databases(&first).await;
    let [alice, bob] = first.register_users(["alice", "bob"]).await;
    let id = first.open_conversation(&alice, &bob).await;
    let logical = logical_of(&id);
    let source = physical_of(&storage, &id).await;
    // The next shard in the list is on the other server.
    let target = (source + 1) % 4;

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = [
        (first.clone(), alice.clone()),
        (first.clone(), bob.clone()),
        (second.clone(), alice.clone()),
        (second.clone(), bob.clone()),
    ]
    .into_iter()
    .map(|(app, user)| tokio::spawn(send_until(app, user, id.clone(), stop.clone())))
    .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = storage
        .move_shard(logical, target, &MoveOptions::default())
        .await
        .expect("the move finishes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.expect("a sender does not panic"));
    }
    acked.sort_by_key(|(_, seq)| *seq);

    assert!(!report.resumed);
    assert!(
        report.copied.get("messages").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert!(acked.len() > 10, "the senders got through: {}", acked.len());
    assert_history_is_exactly(&first, &alice, &id, &acked).await;
    assert_history_is_exactly(&second, &bob, &id, &acked).await;
    let mut expected = [0; 4];
    expected[target] = acked.len() as i64;
    assert_eq!(
        rows_per_shard(&dbs, "messages", "conversation_id", &id).await,
        expected,
        "every message on the target, none left on the source"
    );
    assert_eq!(
        rows_per_shard(&dbs, "conversations", "id", &id).await[source],
        0
    );
    assert_eq!(physical_of(&storage, &id).await, target);
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_with_a_stale_map_is_refused_by_the_old_owner_and_writes_to_the_new_one() {
    // This process never refreshes its map by itself.
    let stale = sharded_app(&[("storage.postgres.shard_map_refresh_ms", "3600000")]).await;
    let storage = storage_beside(&stale).await;
    let dbs = databases(&stale).await;
    let [alice, bob] = stale.register_users(["alice", "bob"]).await;
    let id = stale.open_conversation(&alice, &bob).await;
    stale.send(&alice, &id, "before the move").await;
    let logical = logical_of(&id);
    let source = physical_of(&storage, &id).await;
    let target = (source + 1) % 4;

    // Switched, but the source's old copy stays for a while: a write routed there by the
    // stale map would find the conversation and land, were it not for the fence.
    let mover = {
        let storage = storage_beside(&stale).await;
        tokio::spawn(async move {
            let options = MoveOptions {
                grace: Some(Duration::from_secs(5)),
                stop_after: None,
            };
            let report = storage.move_shard(logical, target, &options).await;
            storage.close().await;
            report
        })
    };
    duet_tests::eventually("the move to switch owners", || async {
        let status = storage.shard_status().await.expect("status");
        let owner = physical_of(&storage, &id).await;
        (owner == target && status.moves.iter().any(|m| m.3 == "switched")).then_some(())
    })
    .await;
    assert_eq!(
        rows_per_shard(&dbs, "messages", "conversation_id", &id).await[source],
        1,
        "the source still holds its old copy"
    );

    let sent = stale.send(&bob, &id, "through a stale map").await;
    assert_eq!(sent["seq"], 2);
    let messages = rows_per_shard(&dbs, "messages", "conversation_id", &id).await;
    assert_eq!(
        messages[source], 1,
        "nothing new landed on the former owner"
    );
    assert_eq!(messages[target], 2, "the write landed on the new owner");
    stale.mark_read(&alice, &id, 2).await.expect(StatusCode::OK);

    mover
        .await
        .expect("the move task does not panic")
        .expect("the move finishes");
    let messages = rows_per_shard(&dbs, "messages", "conversation_id", &id).await;
    assert_eq!(messages[source], 0);
    assert_eq!(messages[target], 2);
    let history = stale.all_history(&alice, &id).await;
    assert_eq!(history.len(), 2);
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_stopped_after_each_step_finishes_when_run_again() {
    let app = Arc::new(sharded_app(&[]).await);
    let storage = storage_beside(&app).await;
    let dbs = databases(&app).await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    let logical = logical_of(&id);
    let mut acked = Vec::new();
    for (i, step) in [MoveStep::Copying, MoveStep::Fenced, MoveStep::Switched]
        .into_iter()
        .enumerate()
    {
        let sent = app.send(&alice, &id, &format!("before stop {i}")).await;
        acked.push((
            sent["client_msg_id"].as_str().expect("an id").to_owned(),
            sent["seq"].as_i64().expect("a seq"),
        ));
        let source = physical_of(&storage, &id).await;
        let target = (source + 1) % 4;
        let stopped = storage
            .move_shard(
                logical,
                target,
                &MoveOptions {
                    grace: Some(Duration::ZERO),
                    stop_after: Some(step),
                },
            )
            .await;
        assert!(stopped.is_err(), "stopped after {step:?}");
        let status = storage.shard_status().await.expect("status");
        assert_eq!(status.moves.len(), 1, "the move is recorded as in progress");

        // A send while the move is stopped: it goes through at once, or (fenced) waits
        // for the move to go on.
        let sender = {
            let (app, alice, id) = (app.clone(), alice.clone(), id.clone());
            tokio::spawn(async move { app.send(&alice, &id, &format!("while stopped {i}")).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report = storage
            .move_shard(
                logical,
                target,
                &MoveOptions {
                    grace: Some(Duration::from_millis(100)),
                    stop_after: None,
                },
            )
            .await
            .expect("run again, the move finishes");
        assert!(report.resumed, "{report:?}");
        let sent = sender.await.expect("the sender does not panic");
        acked.push((
            sent["client_msg_id"].as_str().expect("an id").to_owned(),
            sent["seq"].as_i64().expect("a seq"),
        ));
        assert!(
            storage
                .shard_status()
                .await
                .expect("status")
                .moves
                .is_empty()
        );
        assert_eq!(physical_of(&storage, &id).await, target);
        let mut expected = [0; 4];
        expected[target] = acked.len() as i64;
        assert_eq!(
            rows_per_shard(&dbs, "messages", "conversation_id", &id).await,
            expected,
            "after stopping at {step:?} and running again"
        );
    }
    acked.sort_by_key(|(_, seq)| *seq);
    assert_history_is_exactly(&app, &bob, &id, &acked).await;
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_move_leaves_the_source_serving_and_nothing_on_the_target() {
    let app = sharded_app(&[]).await;
    let storage = storage_beside(&app).await;
    let dbs = databases(&app).await;
    let [alice, bob] = app.register_users(["alice", "bob"]).await;
    let id = app.open_conversation(&alice, &bob).await;
    app.send_many(&alice, &id, "m", 3).await;
    let logical = logical_of(&id);
    let source = physical_of(&storage, &id).await;
    let target = (source + 2) % 4;
    let stopped = storage
        .move_shard(
            logical,
            target,
            &MoveOptions {
                grace: None,
                stop_after: Some(MoveStep::Fenced),
            },
        )
        .await;
    assert!(stopped.is_err());
    assert_eq!(
        rows_per_shard(&dbs, "messages", "conversation_id", &id).await[target],
        3,
        "the copy is on the target"
    );

    storage
        .abort_move(logical)
        .await
        .expect("the move rolls back");
    let sent = app.send(&bob, &id, "after the abort").await;
    assert_eq!(sent["seq"], 4);
    let mut expected = [0; 4];
    expected[source] = 4;
    assert_eq!(
        rows_per_shard(&dbs, "messages", "conversation_id", &id).await,
        expected
    );
    assert!(
        storage
            .shard_status()
            .await
            .expect("status")
            .moves
            .is_empty()
    );
    assert!(
        storage.abort_move(logical).await.is_err(),
        "nothing left to abort"
    );
    storage.close().await;
}
