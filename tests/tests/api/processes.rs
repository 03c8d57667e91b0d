//! Several server processes on one database, as behind a load balancer: both take writes,
//! and seq, idempotency and delivery stay exactly as correct as with one.
//!
//! SQLite is the single-process `small` profile (one writer connection per process), so
//! these tests only run on the PostgreSQL profiles and say so when skipped.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use duet_tests::{TestApp, eventually, seqs, spawn_app};

/// Two apps on one database, or `None` (with a note) on a single-process profile.
async fn two_processes() -> Option<(Arc<TestApp>, Arc<TestApp>)> {
    let first = spawn_app().await;
    if first.profile == "sqlite" {
        eprintln!("skipped: the sqlite profile runs one process per database");
        return None;
    }
    let second = first.spawn_another(&[]).await;
    Some((Arc::new(first), Arc::new(second)))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_taking_writes_to_one_conversation_assign_gap_free_seqs() {
    const TASKS_PER_USER: usize = 4;
    const MESSAGES_PER_TASK: usize = 6;
    let Some((a, b)) = two_processes().await else {
        return;
    };
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = a.open_conversation(&alice, &bob).await;

    let mut tasks = Vec::new();
    for (app, user) in [(&a, &alice), (&b, &bob)] {
        for task in 0..TASKS_PER_USER {
            let (app, user, id) = (Arc::clone(app), user.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..MESSAGES_PER_TASK {
                    let client_id = format!("{}-{task}-{i}", user.handle);
                    app.send_raw(&user, &id, &client_id, &client_id)
                        .await
                        .expect(StatusCode::CREATED);
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("a sender task does not panic");
    }

    // Each process may read a replica that has not replayed the other's last writes yet
    // (other users may see slightly stale data, by design): wait until both show the end,
    // then the history must be exactly 1..=total, without gaps or doubles.
    let total = (2 * TASKS_PER_USER * MESSAGES_PER_TASK) as i64;
    let expected: Vec<i64> = (1..=total).collect();
    for app in [&a, &b] {
        let history = eventually("both processes to show every message", || async {
            let history = app.all_history(&alice, &id).await;
            (history.len() as i64 >= total).then_some(history)
        })
        .await;
        assert_eq!(seqs(&history), expected);
    }
    // Both processes relay; every message reaches both inboxes, each exactly once.
    for user in [&alice, &bob] {
        for app in [&a, &b] {
            let list = eventually("delivery to reach the inbox", || async {
                let list = app.list(user, "").await;
                (list["items"][0]["last_seq"] == total).then_some(list)
            })
            .await;
            assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_id_sent_to_two_processes_at_once_stores_one_message() {
    let Some((a, b)) = two_processes().await else {
        return;
    };
    let [alice, bob] = a.register_users(["alice", "bob"]).await;
    let id = a.open_conversation(&alice, &bob).await;

    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let app = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let (alice, id) = (alice.clone(), id.clone());
            tokio::spawn(async move { app.send_raw(&alice, &id, "once", "only once").await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("the task does not panic"));
    }

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let replayed = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!((created, replayed), (1, 11));
    let first: &Value = &replies[0].json;
    assert!(replies.iter().all(|r| &r.json == first));
    for app in [&a, &b] {
        let history = eventually("the message to reach both processes' reads", || async {
            let history = app.all_history(&bob, &id).await;
            (!history.is_empty()).then_some(history)
        })
        .await;
        assert_eq!(history, vec![first.clone()]);
    }
}
