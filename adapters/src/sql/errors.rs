//! Driver errors → domain errors. Connection trouble is `Unavailable` (the API answers 503
//! with Retry-After); anything else is `Unexpected`, and its text never reaches a client.

use duet_domain::StoreError;
use sea_orm::{DbErr, RuntimeErr};

pub fn from_db(err: DbErr) -> StoreError {
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(err.into()),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
            if is_unavailable(e) =>
        {
            StoreError::Unavailable(err.into())
        }
        _ => StoreError::Unexpected(err.into()),
    }
}

fn is_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
        // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: the file is overloaded.
        // PostgreSQL: connection exceptions (08…), shutdown (57P0x), too many connections.
        Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("5" | "6" | "517" | "53300" | "57P01" | "57P02" | "57P03")
            ) || db.code().is_some_and(|c| c.starts_with("08"))
        }
        _ => false,
    }
}

/// Wraps a JSON (de)serialization failure of a stored payload.
pub fn from_json(err: serde_json::Error) -> StoreError {
    StoreError::Unexpected(anyhow::Error::new(err).context("stored payload is not valid JSON"))
}
