//! The baseline's tables: scratch copies of the five tables a send writes, with the same
//! columns, keys and indexes, copied from the server's own schema so they cannot drift from
//! it, named `bench_baseline_<table>_<tag>`. Duet's data is never touched and two runs on one
//! database never meet.

use sea_orm::sea_query::{Alias, Table};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use super::target::BaselineTarget;

/// The tables a send writes, each copied (columns, keys, indexes) into a scratch table.
const TABLES: [&str; 5] = [
    "conversations",
    "messages",
    "user_feeds",
    "feed_events",
    "inbox_entries",
];

/// Scratch copies of Duet's tables on the database under test. Cheap to clone.
#[derive(Clone)]
pub struct Baseline {
    pub(super) db: DatabaseConnection,
    tag: String,
}

impl Baseline {
    /// Connects to `target` with room for `writers` concurrent transactions and copies the
    /// tables a send writes (the server must have created them: run it once first) into
    /// scratch tables named after `tag` (1–24 of `[a-z0-9_]`).
    ///
    /// # Errors
    /// A bad tag, a database that cannot be reached or opened, one without Duet's tables, or a
    /// failed `CREATE`.
    pub async fn create(target: &BaselineTarget, writers: u32, tag: &str) -> anyhow::Result<Self> {
        let valid_tag = !tag.is_empty()
            && tag.len() <= 24
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_tag {
            anyhow::bail!("baseline tag {tag:?} must be 1-24 of [a-z0-9_]");
        }
        let db = Database::connect(target.connect_options(writers)).await?;
        let baseline = Self {
            db,
            tag: tag.to_owned(),
        };
        for table in TABLES {
            baseline.copy_table(table).await?;
        }
        Ok(baseline)
    }

    /// The name of `table`'s scratch copy.
    pub(super) fn scratch(&self, table: &str) -> String {
        format!("bench_baseline_{table}_{}", self.tag)
    }

    /// Creates the scratch copy of `table`: on PostgreSQL with `LIKE … INCLUDING ALL`, on
    /// SQLite by replaying the table's and its indexes' `CREATE` statements under new names.
    async fn copy_table(&self, table: &str) -> anyhow::Result<()> {
        let scratch = self.scratch(table);
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS \"{scratch}\" (LIKE \"{table}\" INCLUDING ALL)"
            );
            self.db.execute_unprepared(&sql).await?;
            return Ok(());
        }
        let schema = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type DESC",
                [table.into()],
            ))
            .await
            ?;
        if schema.is_empty() {
            anyhow::bail!(
                "no table {table:?} in the baseline database: start the server on it once first"
            );
        }
        for row in schema {
            let kind: String = row.try_get("", "type")?;
            let name: String = row.try_get("", "name")?;
            let sql: String = row.try_get("", "sql")?;
            let copied = if kind == "table" {
                rename(&sql, &format!("\"{table}\""), &format!("\"{scratch}\""))
                    .map(|sql| sql.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE"))
            } else {
                rename(
                    &sql,
                    &format!("\"{name}\""),
                    &format!("\"{scratch}_{name}\""),
                )
                .and_then(|sql| {
                    rename(
                        &sql,
                        &format!("ON \"{table}\""),
                        &format!("ON \"{scratch}\""),
                    )
                })
            };
            let sql = copied
                .ok_or_else(|| anyhow::anyhow!("cannot copy the schema of {table:?}: {sql}"))?;
            self.db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    /// Message rows stored so far (what the run really committed).
    ///
    /// # Errors
    /// When the database is unreachable or busy past its timeout.
    pub async fn count(&self) -> anyhow::Result<u64> {
        let sql = format!("SELECT COUNT(*) AS n FROM {}", self.scratch("messages"));
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Drops the scratch tables (and their indexes) and closes the pool.
    ///
    /// # Errors
    /// When a `DROP` fails; the pool is closed either way.
    pub async fn drop_tables(self) -> anyhow::Result<()> {
        let mut result = Ok(());
        for table in TABLES {
            let dropped = self
                .db
                .execute(
                    Table::drop()
                        .table(Alias::new(self.scratch(table)))
                        .if_exists(),
                )
                .await;
            if let Err(err) = dropped {
                result = Err(err.into());
            }
        }
        let _ = self.db.close().await;
        result
    }
}

/// `sql` with the first `from` replaced by `to`, or `None` if it has no `from`.
fn rename(sql: &str, from: &str, to: &str) -> Option<String> {
    sql.contains(from).then(|| sql.replacen(from, to, 1))
}
