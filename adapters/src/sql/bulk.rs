//! Many rows in one statement: the shapes the batched write paths share.
//!
//! Statements are cut into chunks of a power of two rows (at most [`MAX_ROWS`]), so a handful
//! of statement texts cover every batch size and stay in each connection's prepared-statement
//! cache.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Most rows in one statement (at most 7 binds a row here, far below SQLite's and
/// PostgreSQL's limits).
pub(super) const MAX_ROWS: usize = 256;

/// The largest power of two ≤ `remaining`, capped at [`MAX_ROWS`].
pub(super) fn chunk_len(remaining: usize) -> usize {
    let cap = remaining.min(MAX_ROWS);
    1 << cap.ilog2()
}

/// Writes rows keyed by one column in one statement per chunk:
///
/// ```sql
/// WITH moved(key, a, b) AS (VALUES (?, ?, ?), ...)
/// UPDATE table SET a = moved.a, b = moved.b FROM moved
/// WHERE table.key = moved.key AND table.guard = moved.expected
/// ```
///
/// `columns` names each row's values, the key first; `set` are the columns written (named
/// alike in the table and the rows); `guards` are (table column, row column) pairs that must
/// match too. Returns the number of rows updated; a row whose key or guard does not match is
/// left out of that count, which is how a caller notices it.
pub(super) async fn update_by_key<C: ConnectionTrait>(
    db: &C,
    table: &str,
    columns: &[&str],
    set: &[&str],
    guards: &[(&str, &str)],
    rows: Vec<Vec<Value>>,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let key = columns[0];
    let assignments = set
        .iter()
        .map(|c| format!("{c} = moved.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut condition = format!("{table}.{key} = moved.{key}");
    for (column, expected) in guards {
        condition.push_str(&format!(" AND {table}.{column} = moved.{expected}"));
    }
    let mut updated = 0;
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        rest = tail;
        let sql = format!(
            "WITH moved({}) AS (VALUES {}) UPDATE {table} SET {assignments} FROM moved WHERE {condition}",
            columns.join(", "),
            placeholders(backend, chunk.len(), columns.len()),
        );
        let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
        updated += db
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected();
    }
    Ok(updated)
}

/// `(?1, ?2), (?3, ?4)` (SQLite) or `($1, $2), ($3, $4)` (PostgreSQL).
fn placeholders(backend: DbBackend, rows: usize, width: usize) -> String {
    let sigil = if backend == DbBackend::Postgres {
        '$'
    } else {
        '?'
    };
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=width)
                .map(|column| format!("{sigil}{}", row * width + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_a_few_power_of_two_shapes() {
        assert_eq!(chunk_len(1), 1);
        assert_eq!(chunk_len(3), 2);
        assert_eq!(chunk_len(255), 128);
        assert_eq!(chunk_len(256), 256);
        assert_eq!(chunk_len(1000), 256);
    }

    #[test]
    fn placeholders_number_every_value_once_in_the_backends_style() {
        assert_eq!(placeholders(DbBackend::Sqlite, 2, 2), "(?1, ?2), (?3, ?4)");
        assert_eq!(placeholders(DbBackend::Postgres, 1, 3), "($1, $2, $3)");
    }
}
