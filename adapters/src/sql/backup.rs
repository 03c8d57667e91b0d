//! `duet backup`: a consistent copy of a live SQLite database.
//!
//! Copying the file is not enough: in WAL mode, commits live in `-wal` until a checkpoint
//! moves them into the database file, so a copy of the file alone misses the latest
//! acknowledged messages (and a copy of both files taken while the server writes can be torn).
//! `VACUUM INTO` writes one self-contained file from a single read transaction: a snapshot
//! of everything committed when it started, taken while the server keeps serving.

use std::path::Path;

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database};

use super::router::{SqliteRole, sqlite_options};

/// What a finished backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Size of the copy, in bytes.
    pub bytes: u64,
}

/// Copies the SQLite database at `source` into a new file at `destination` (its folder is
/// created), checks the copy's integrity and flushes it to disk. Safe while a server uses
/// `source`: it reads one snapshot and writes nothing there.
///
/// # Errors
/// When `source` is not an SQLite database, `destination` already exists, or the copy fails
/// its integrity check; the message names the file.
pub async fn backup_sqlite(source: &Path, destination: &Path) -> anyhow::Result<BackupSummary> {
    anyhow::ensure!(
        source.is_file(),
        "no SQLite database at {} (storage.sqlite.path)",
        source.display()
    );
    anyhow::ensure!(
        !destination.exists(),
        "{} already exists: a backup never overwrites a file",
        destination.display()
    );
    if let Some(dir) = destination.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let destination_text = destination
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", destination.display()))?;

    // The server's own connection settings (WAL, busy timeout). Not `mode=ro`: setting them
    // up is refused on a read-only connection. `VACUUM INTO` itself only reads.
    let url = format!("sqlite://{}", source.display());
    let db = Database::connect(sqlite_options(&url, 1, true, SqliteRole::Reader))
        .await
        .with_context(|| format!("cannot open {}", source.display()))?;
    let copied = db
        .execute_unprepared(&format!(
            "VACUUM INTO '{}'",
            destination_text.replace('\'', "''")
        ))
        .await
        .with_context(|| format!("copying {} to {}", source.display(), destination.display()));
    db.close().await.ok();
    copied?;

    check_integrity(destination).await?;
    let file = std::fs::File::open(destination)?;
    file.sync_all()
        .with_context(|| format!("flushing {}", destination.display()))?;
    Ok(BackupSummary {
        bytes: file.metadata()?.len(),
    })
}

/// `PRAGMA quick_check` on the copy: a backup that cannot be read back is no backup.
async fn check_integrity(path: &Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", path.display());
    let db = Database::connect(sqlite_options(&url, 1, true, SqliteRole::Reader)).await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA quick_check",
        ))
        .await;
    db.close().await.ok();
    let verdict: String = row?
        .context("PRAGMA quick_check answered nothing")?
        .try_get_by_index(0)?;
    anyhow::ensure!(
        verdict == "ok",
        "the copy at {} failed its integrity check: {verdict}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{DatabaseConnection, Statement};

    use super::*;

    async fn count(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) FROM notes",
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get_by_index(0).expect("an integer")
    }

    /// The server's situation: commits still in the WAL, the writer connection open.
    async fn live_database(path: &Path, rows: usize) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = Database::connect(sqlite_options(&url, 1, true, SqliteRole::Writer))
            .await
            .expect("open");
        db.execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .expect("create");
        for n in 0..rows {
            db.execute_unprepared(&format!("INSERT INTO notes (body) VALUES ('note {n}')"))
                .await
                .expect("insert");
        }
        db
    }

    #[tokio::test]
    async fn a_backup_holds_every_commit_still_in_the_wal_while_the_database_is_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("duet.db");
        let live = live_database(&source, 100).await;

        // What a plain copy of the database file gets: the WAL's commits are not in it.
        let plain = dir.path().join("plain.db");
        std::fs::copy(&source, &plain).expect("copy");
        let plain_url = format!("sqlite://{}?mode=rw", plain.display());
        let plain_db = Database::connect(plain_url)
            .await
            .expect("open the plain copy");
        let plain_rows = plain_db
            .query_one_raw(Statement::from_string(
                plain_db.get_database_backend(),
                "SELECT count(*) FROM sqlite_master WHERE name = 'notes'",
            ))
            .await
            .expect("query")
            .expect("a row")
            .try_get_by_index::<i64>(0)
            .expect("an integer");
        assert_eq!(plain_rows, 0, "the table itself is still only in the WAL");

        let copy = dir.path().join("backups/duet-copy.db");
        let summary = backup_sqlite(&source, &copy).await.expect("backup");
        assert!(summary.bytes > 0);
        live.execute_unprepared("INSERT INTO notes (body) VALUES ('after the backup')")
            .await
            .expect("the server keeps writing");

        let restored = Database::connect(format!("sqlite://{}?mode=ro", copy.display()))
            .await
            .expect("open the copy");
        assert_eq!(count(&restored).await, 100, "every commit up to the backup");
        assert_eq!(count(&live).await, 101);
    }

    #[tokio::test]
    async fn a_backup_refuses_to_overwrite_or_to_copy_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("duet.db");
        let missing = backup_sqlite(&source, &dir.path().join("copy.db"))
            .await
            .expect_err("no database");
        assert!(
            format!("{missing:#}").contains("no SQLite database"),
            "{missing:#}"
        );

        let _live = live_database(&source, 1).await;
        let taken = dir.path().join("taken.db");
        std::fs::write(&taken, b"precious").expect("write");
        let refused = backup_sqlite(&source, &taken).await.expect_err("exists");
        assert!(
            format!("{refused:#}").contains("already exists"),
            "{refused:#}"
        );
        assert_eq!(std::fs::read(&taken).expect("read"), b"precious");
    }
}
