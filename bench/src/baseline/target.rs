//! Where the baseline writes, from `--database-url`, and how it connects: the way the server
//! does, so the raw limit is the same database's.

use duet_adapters::sql::server_connect_options;
use sea_orm::ConnectOptions;

/// Where the baseline writes, parsed from a database URL or a SQLite path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineTarget {
    /// An existing SQLite file (the server's); never created by the baseline.
    Sqlite {
        path: std::path::PathBuf,
        /// `synchronous=FULL` when true, `NORMAL` otherwise: match the server's setting.
        synchronous_full: bool,
    },
    /// A PostgreSQL URL.
    Postgres { url: String },
}

impl BaselineTarget {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://PATH[?…]`, `sqlite:PATH` or
    /// a bare path is SQLite.
    ///
    /// # Errors
    /// An empty value or a URL scheme that is neither.
    pub fn parse(database_url: &str, synchronous_full: bool) -> Result<Self, String> {
        let value = database_url.trim();
        if value.is_empty() {
            return Err("the database URL is empty".into());
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: value.to_owned(),
            });
        }
        let path = if let Some(rest) = value.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            rest.split_once('?').map_or(rest, |(path, _)| path)
        } else if value.contains("://") {
            return Err(format!(
                "unsupported database URL {value:?}: expected postgres://…, sqlite://PATH or a file path"
            ));
        } else {
            value
        };
        if path.is_empty() {
            return Err(format!("no file path in {value:?}"));
        }
        Ok(Self::Sqlite {
            path: path.into(),
            synchronous_full,
        })
    }

    /// What the report calls this database.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite {
                synchronous_full, ..
            } => format!(
                "sqlite (WAL, synchronous={})",
                if *synchronous_full { "FULL" } else { "NORMAL" }
            ),
            Self::Postgres { .. } => "postgres".into(),
        }
    }

    /// As the server connects: SQLite as its one writer connection (concurrent writers would
    /// only queue on the file lock), PostgreSQL as its pool, with one connection per
    /// concurrent writer.
    pub fn connect_options(&self, writers: u32) -> ConnectOptions {
        match self {
            Self::Postgres { url } => server_connect_options(url, writers.max(1), false),
            Self::Sqlite {
                path,
                synchronous_full,
            } => {
                // `mode=rw`: the server's file must exist; a typo should fail, not create one.
                let url = format!("sqlite://{}?mode=rw", path.display());
                server_connect_options(&url, 1, *synchronous_full)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_pick_the_backend() {
        assert_eq!(
            BaselineTarget::parse("postgres://u@h:5432/db", true),
            Ok(BaselineTarget::Postgres {
                url: "postgres://u@h:5432/db".into()
            })
        );
        for value in [
            "/tmp/x.db",
            "sqlite:///tmp/x.db",
            "sqlite:///tmp/x.db?mode=rwc",
        ] {
            assert_eq!(
                BaselineTarget::parse(value, false),
                Ok(BaselineTarget::Sqlite {
                    path: "/tmp/x.db".into(),
                    synchronous_full: false
                }),
                "{value}"
            );
        }
        assert!(BaselineTarget::parse("mysql://h/db", true).is_err());
        assert!(BaselineTarget::parse("  ", true).is_err());
        assert!(BaselineTarget::parse("sqlite://", true).is_err());
    }
}
