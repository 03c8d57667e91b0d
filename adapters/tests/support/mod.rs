//! What the adapter tests share: names no two tests (or runs) reuse, and a fresh PostgreSQL
//! database per test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

const MAINTENANCE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `prefix` with this process's id and a counter: unique across tests and runs.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database of its own on the PostgreSQL at 127.0.0.1:5432; [`FreshPostgres::drop`] drops it.
pub struct FreshPostgres {
    admin: DatabaseConnection,
    name: String,
    pub url: String,
}

impl FreshPostgres {
    /// Creates a database named after `prefix`. `None` (after printing `SKIPPED:`) when
    /// PostgreSQL does not answer, except with `CI=true`, where that fails the test.
    pub async fn create(prefix: &str) -> Option<Self> {
        let mut admin = ConnectOptions::new(MAINTENANCE_URL.to_owned());
        admin
            .max_connections(1)
            .connect_timeout(Duration::from_secs(3))
            .sqlx_logging(false);
        let admin = match Database::connect(admin).await {
            Ok(db) => db,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL not reachable at 127.0.0.1:5432: {err}")
            }
            Err(_) => {
                println!("SKIPPED: PostgreSQL not reachable at 127.0.0.1:5432");
                return None;
            }
        };
        let name = unique_name(prefix);
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a fresh database");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Some(Self { admin, name, url })
    }

    /// Drops the database, whoever is still connected to it.
    pub async fn drop(self) {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("the test database drops");
        let _ = self.admin.close().await;
    }
}
