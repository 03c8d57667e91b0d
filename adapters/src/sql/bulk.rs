//! Many rows in one statement: the shapes the batched write paths share.
//!
//! Statements are cut into chunks of a power of two rows (at most [`MAX_ROWS`]), so a handful
//! of statement texts cover every batch size and stay in each connection's prepared-statement
//! cache.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement, Value};

/// Most rows in one statement (at most 7 binds a row here, far below SQLite's and
/// PostgreSQL's limits).
const MAX_ROWS: usize = 256;

/// The largest power of two ≤ `remaining`, capped at [`MAX_ROWS`].
fn chunk_len(remaining: usize) -> usize {
    let cap = remaining.min(MAX_ROWS);
    1 << cap.ilog2()
}

/// `rows` cut into chunks of [`chunk_len`] rows, in order.
pub(super) fn chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

/// The statements that write rows keyed by one column, one per chunk:
///
/// ```sql
/// WITH moved(key, a, b) AS (VALUES (?, ?, ?), ...)
/// UPDATE table SET a = moved.a, b = moved.b FROM moved
/// WHERE table.key = moved.key AND table.guard = moved.expected
/// ```
///
/// `columns` names each row's values, the key first; `set` are the columns written (named
/// alike in the table and the rows); `guards` are (table column, row column) pairs that must
/// match too. A row whose key or guard does not match is left out of the statements' row
/// count, which is how a caller notices it.
pub fn update_by_key(
    backend: DbBackend,
    table: &str,
    columns: &[&str],
    set: &[&str],
    guards: &[(&str, &str)],
    rows: &[Vec<Value>],
) -> Vec<Statement> {
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
    with_values(
        backend,
        "moved",
        columns,
        rows,
        &format!("UPDATE {table} SET {assignments} FROM moved WHERE {condition}"),
    )
}

/// Whether [`find_by_keys`] locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    /// A plain read.
    None,
    /// `FOR UPDATE`, in key order (PostgreSQL; SQLite's write transaction holds the whole
    /// file already).
    ForUpdate,
}

/// The rows of `E` whose `keys` columns equal one of `rows` (each row the keys' values, in
/// order), read with one statement per chunk:
///
/// ```sql
/// WITH wanted(k1, k2) AS (VALUES (?, ?), ...)
/// SELECT t.* FROM wanted CROSS JOIN table AS t ON t.k1 = wanted.k1 AND t.k2 = wanted.k2
/// ```
///
/// Each wanted row is one exact probe of the index on `keys` (SQLite's `CROSS JOIN` keeps
/// `wanted` as the outer loop), and power-of-two chunks keep the statement texts few, so they
/// stay prepared — where an `OR` of probes or an `IN` list of every length is a new text,
/// prepared and planned again, almost every batch. With [`Lock::ForUpdate`] the rows are
/// locked in the order of the first key; give `rows` sorted by it, so that chunks lock in
/// that order too.
pub(super) async fn find_by_keys<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    keys: &[&str],
    lock: Lock,
    rows: &[Vec<Value>],
) -> Result<Vec<E::Model>, DbErr> {
    let backend = db.get_database_backend();
    let table = E::default().table_name().to_owned();
    let on = keys
        .iter()
        .map(|k| format!("t.{k} = wanted.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let (join, suffix) = match (backend, lock) {
        (DbBackend::Postgres, Lock::ForUpdate) => {
            ("JOIN", format!(" ORDER BY t.{} FOR UPDATE OF t", keys[0]))
        }
        (DbBackend::Postgres, Lock::None) => ("JOIN", String::new()),
        _ => ("CROSS JOIN", String::new()),
    };
    let select = format!("SELECT t.* FROM wanted {join} {table} AS t ON {on}{suffix}");
    let mut found = Vec::new();
    for statement in with_values(backend, "wanted", keys, rows, &select) {
        found.extend(E::find().from_raw_sql(statement).all(db).await?);
    }
    Ok(found)
}

/// Runs write statements in order on `db` (a transaction) and returns how many rows they
/// changed in all.
///
/// One call per statement, on purpose: sending them to SQLite as one multi-statement call
/// saved nothing measurable in `duet-bench run` (the round trips it saves come back as statement
/// preparation, since each combination of chunk sizes is a new text) and cached statements
/// of every combination took 120 MiB more memory.
pub(super) async fn execute_all<C: ConnectionTrait>(
    db: &C,
    statements: Vec<Statement>,
) -> Result<u64, DbErr> {
    let mut changed = 0;
    for statement in statements {
        changed += db.execute_raw(statement).await?.rows_affected();
    }
    Ok(changed)
}

/// One statement per chunk of `rows`: `WITH name(columns) AS (VALUES …) body`, the chunk's
/// values bound in order.
fn with_values(
    backend: DbBackend,
    name: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    body: &str,
) -> Vec<Statement> {
    chunks(rows)
        .map(|chunk| {
            let sql = format!(
                "WITH {name}({}) AS (VALUES {}) {body}",
                columns.join(", "),
                placeholders(backend, chunk.len(), columns.len()),
            );
            let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
            Statement::from_sql_and_values(backend, sql, values)
        })
        .collect()
}

/// `(?, ?), (?, ?)` (SQLite) or `($1, $2), ($3, $4)` (PostgreSQL).
fn placeholders(backend: DbBackend, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=width)
                .map(|column| match backend {
                    DbBackend::Postgres => format!("${}", row * width + column),
                    _ => "?".to_owned(),
                })
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
        let sizes: Vec<usize> = chunks(&[0; 300]).map(<[i32]>::len).collect();
        assert_eq!(sizes, vec![256, 32, 8, 4]);
    }

    #[test]
    fn placeholders_are_positional_on_sqlite_and_numbered_on_postgres() {
        assert_eq!(placeholders(DbBackend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(placeholders(DbBackend::Postgres, 1, 3), "($1, $2, $3)");
    }
}
