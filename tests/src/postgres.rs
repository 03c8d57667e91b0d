//! Direct connections to the test PostgreSQL servers, beside the app: creating and dropping
//! test databases, and looking at a replica the way an operator would.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

/// A one-connection pool to `url`.
///
/// # Errors
/// When the server does not answer within 5 s or refuses the connection.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// As [`connect`], panicking with a message that names the server and the way out.
pub async fn connect_or_explain(url: &str) -> DatabaseConnection {
    connect(url).await.unwrap_or_else(|e| {
        panic!(
            "this test needs the PostgreSQL server at {url}, which does not answer: {e}.\n\
             Start PostgreSQL (and `scripts/pg-replica.sh up` for the replica on port 5433), \
             or run `scripts/test.sh`, which skips the PostgreSQL profiles when no server answers."
        )
    })
}

/// Runs `sql` (no parameters); panics with the statement on error.
pub async fn execute(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The single `int8` column `value` of the single row `sql` returns (cast to `::int8`).
pub async fn query_i64(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get("", "value")
        .unwrap_or_else(|e| panic!("{sql}: no i64 column `value`: {e}"))
}

/// Creates the empty database `name` through the maintenance database at `maintenance_url`.
pub async fn create_database(maintenance_url: &str, name: &str) {
    let db = connect_or_explain(maintenance_url).await;
    execute(&db, &format!("CREATE DATABASE \"{name}\"")).await;
    let _ = db.close().await;
}

/// Waits until the server at `maintenance_url` (a replica) lists the database `name`.
pub async fn wait_until_visible(maintenance_url: &str, name: &str, limit: Duration) {
    let db = connect_or_explain(maintenance_url).await;
    let sql = format!("SELECT count(*) AS value FROM pg_database WHERE datname = '{name}'");
    let deadline = tokio::time::Instant::now() + limit;
    while query_i64(&db, &sql).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "database {name} did not reach the replica {maintenance_url} within {limit:?}: \
             is it streaming? (`scripts/pg-replica.sh status`; replay may be paused)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = db.close().await;
}

/// Drops `name` (ending its sessions), from `Drop`. Failures are reported, not raised.
pub fn drop_database_blocking(maintenance_url: &str, name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    if let Err(e) = execute_blocking(maintenance_url, &sql) {
        eprintln!("note: could not drop test database {name}: {e}");
    }
}

/// Connects to `url` and runs `sql` from a thread of its own, so it works from `Drop` while a
/// test's runtime is busy or shutting down.
///
/// # Errors
/// When the server does not answer or refuses the statement.
pub fn execute_blocking(url: &str, sql: &str) -> Result<(), DbErr> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    block_on_own_runtime(async move {
        let db = connect(&url).await?;
        let done = db.execute_unprepared(&sql).await;
        let _ = db.close().await;
        done.map(|_| ())
    })
}

/// Runs `work` to completion on a new thread with a current-thread runtime of its own, with
/// a 30 s limit. For cleanup in `Drop`, where awaiting is impossible.
fn block_on_own_runtime<T, F>(work: F) -> Result<T, DbErr>
where
    T: Send + 'static,
    F: Future<Output = Result<T, DbErr>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbErr::Custom(format!("a cleanup runtime: {e}")))?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), work)
                .await
                .map_err(|_| DbErr::Custom("cleanup took over 30 s".into()))?
        })
    })
    .join()
    .unwrap_or_else(|_| Err(DbErr::Custom("the cleanup thread panicked".into())))
}
