//! What every replica test needs: one test at a time, the servers checked, an app on the
//! `postgres-replica` profile, its read counters, a direct connection to the replica, and
//! guards that undo what a test does to the replica even when it fails.

use std::ops::Deref;
use std::process::Output;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use duet_tests::postgres::{connect_or_explain, execute, execute_blocking, query_i64};
use duet_tests::{
    TestApp, TestUser, eventually_within, metric_sum, metric_sum_where, spawn_app_on,
};

/// The maintenance databases of the two servers.
const PRIMARY_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REPLICA_ADMIN: &str = "postgres://postgres@127.0.0.1:5433/postgres";
/// The longest the replica may take to catch up, or to leave the rotation.
pub const REPLICA_WAIT: Duration = Duration::from_secs(10);
/// The longest a restarted replica may take to rejoin the rotation.
pub const REJOIN_WAIT: Duration = Duration::from_secs(30);

/// Held for the whole of each test: they share one replica and one metrics recorder.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// An app on the `postgres-replica` profile, alone in the process until dropped.
pub struct ReplicaApp {
    app: TestApp,
    // Declared after `app`, so it is released only once the app is gone.
    _serial: MutexGuard<'static, ()>,
}

impl Deref for ReplicaApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Checks the servers, starts an app whose replica is measured every 100 ms, and waits until
/// the replica is in its rotation.
pub async fn replica_app() -> ReplicaApp {
    let serial = SERIAL.lock().await;
    check_servers().await;
    let app = spawn_app_on(
        "postgres-replica",
        &[
            ("storage.postgres.replica_check_interval_ms", "100"),
            // Lag counts the whole server's WAL, other databases' included: with a bound far
            // above it, only this process's write marks decide where reads go.
            ("storage.postgres.max_replica_lag_bytes", "1073741824"),
        ],
    )
    .await;
    wait_for_rotation(&app, 1.0, REPLICA_WAIT).await;
    ReplicaApp {
        app,
        _serial: serial,
    }
}

/// The primary answers, 127.0.0.1:5433 is a standby of it, and it is replaying.
async fn check_servers() {
    let primary = connect_or_explain(PRIMARY_ADMIN).await;
    let _ = primary.close().await;
    let replica = connect_or_explain(REPLICA_ADMIN).await;
    let standby = query_i64(&replica, "SELECT pg_is_in_recovery()::int::int8 AS value").await;
    assert_eq!(
        standby, 1,
        "127.0.0.1:5433 answers but is not a standby; these tests need the streaming replica \
         that `scripts/pg-replica.sh up` creates"
    );
    // A run killed in the middle of a test may have left replay paused.
    execute(&replica, "SELECT pg_wal_replay_resume()").await;
    let _ = replica.close().await;
}

/// Reads the app counted, by target.
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    pub primary: f64,
    pub replica: f64,
}

pub async fn reads(app: &TestApp) -> Reads {
    let page = app.metrics().await;
    let count = |target: &str| {
        let label = format!("target=\"{target}\"");
        metric_sum_where(&page, "duet_db_reads_total", Some(&label)).unwrap_or(0.0)
    };
    Reads {
        primary: count("primary"),
        replica: count("replica"),
    }
}

/// `duet_db_replicas_in_rotation`, `None` when the app does not publish it.
pub async fn in_rotation(app: &TestApp) -> Option<f64> {
    metric_sum(&app.metrics().await, "duet_db_replicas_in_rotation")
}

/// Waits until `duet_db_replicas_in_rotation` is `replicas`, at most `limit`.
pub async fn wait_for_rotation(app: &TestApp, replicas: f64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = in_rotation(app).await;
        if now == Some(replicas) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "duet_db_replicas_in_rotation is {now:?} after {limit:?}; expected {replicas}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `user`'s history of `conversation` until one of those reads is counted as served by
/// the replica (the replica has replayed this process's writes to it); returns that page.
pub async fn until_the_replica_serves(app: &TestApp, user: &TestUser, conversation: &str) -> Value {
    eventually_within(
        REPLICA_WAIT,
        "a history read to be served by the replica",
        || async {
            let before = reads(app).await;
            let page = app.history(user, conversation, "").await;
            let after = reads(app).await;
            (after.replica > before.replica).then_some(page)
        },
    )
    .await
}

/// The test's own database on the replica, queried directly.
pub struct ReplicaDb {
    url: String,
    db: DatabaseConnection,
}

impl ReplicaDb {
    pub async fn connect(app: &TestApp) -> Self {
        let url = app
            .setting("storage.postgres.replicas")
            .expect("the postgres-replica profile sets storage.postgres.replicas");
        let db = connect_or_explain(&url).await;
        Self { url, db }
    }

    /// Whether the replica has replayed the insert of `message`.
    pub async fn has_message(&self, message: &Value) -> bool {
        let id: Uuid = message["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("a message id in {message}"));
        let sql = format!("SELECT count(*) AS value FROM messages WHERE id = '{id}'");
        query_i64(&self.db, &sql).await == 1
    }

    /// Pauses replay and waits until the replica reports it paused.
    pub async fn pause_replay(&self) -> ReplayPaused {
        execute(&self.db, "SELECT pg_wal_replay_pause()").await;
        let paused = ReplayPaused {
            url: self.url.clone(),
            resumed: false,
        };
        let sql = "SELECT (pg_get_wal_replay_pause_state() = 'paused')::int::int8 AS value";
        eventually_within(REPLICA_WAIT, "replay to pause", || async {
            (query_i64(&self.db, sql).await == 1).then_some(())
        })
        .await;
        paused
    }
}

/// Replay is paused until [`ReplayPaused::resume`], or until this is dropped.
pub struct ReplayPaused {
    url: String,
    resumed: bool,
}

impl ReplayPaused {
    pub async fn resume(mut self) {
        let db = connect_or_explain(&self.url).await;
        execute(&db, "SELECT pg_wal_replay_resume()").await;
        self.resumed = true;
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        if self.resumed {
            return;
        }
        if let Err(e) = execute_blocking(&self.url, "SELECT pg_wal_replay_resume()") {
            eprintln!(
                "could not resume replay on the replica: {e}; \
                 run `SELECT pg_wal_replay_resume()` on 127.0.0.1:5433"
            );
        }
    }
}

/// The replica is stopped until [`ReplicaStopped::start`], or until this is dropped.
pub struct ReplicaStopped {
    started: bool,
}

impl ReplicaStopped {
    /// `scripts/pg-replica.sh down`.
    pub async fn stop() -> Self {
        let stopped = Self { started: false };
        let output = pg_replica_async("down").await;
        assert_ran("down", &output);
        stopped
    }

    /// `scripts/pg-replica.sh up`.
    pub async fn start(mut self) {
        self.started = true;
        let output = pg_replica_async("up").await;
        assert_ran("up", &output);
    }
}

impl Drop for ReplicaStopped {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        match std::process::Command::new(PG_REPLICA).arg("up").output() {
            Ok(output) if output.status.success() => {}
            other => eprintln!("`scripts/pg-replica.sh up` failed after the test: {other:?}"),
        }
    }
}

const PG_REPLICA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg-replica.sh");

async fn pg_replica_async(action: &str) -> Output {
    tokio::process::Command::new(PG_REPLICA)
        .arg(action)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{PG_REPLICA} {action} does not run: {e}"))
}

#[track_caller]
fn assert_ran(action: &str, output: &Output) {
    assert!(
        output.status.success(),
        "scripts/pg-replica.sh {action} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
