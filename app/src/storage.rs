//! The storage section of the settings becomes the SQL adapter.

use duet_adapters::sql::{
    BackupSummary, GroupCommitOptions, PostgresShard, SqlBackend, SqlOptions, SqlStorage,
    backup_sqlite,
};

use crate::config::{PostgresSettings, Secret, SqliteSynchronous, StorageKind, StorageSettings};

/// The adapter options the settings describe.
///
/// # Errors
/// When `kind = "postgres"` has no URL (settings validation already refuses that).
pub fn sql_options(settings: &StorageSettings) -> anyhow::Result<SqlOptions> {
    let backend = match settings.kind {
        StorageKind::Sqlite => SqlBackend::Sqlite {
            path: settings.sqlite.path.clone(),
            synchronous_full: settings.sqlite.synchronous == SqliteSynchronous::Full,
            read_connections: settings.sqlite.read_connections,
        },
        StorageKind::Postgres => SqlBackend::Postgres {
            shards: postgres_shards(&settings.postgres)?,
            max_connections: settings.postgres.max_connections,
            max_replica_lag_bytes: settings.postgres.max_replica_lag_bytes,
            replica_check_interval: std::time::Duration::from_millis(
                settings.postgres.replica_check_interval_ms.max(10),
            ),
        },
    };
    Ok(SqlOptions {
        backend,
        logical_shards: settings.logical_shards,
        shard_map_refresh: std::time::Duration::from_millis(
            settings.postgres.shard_map_refresh_ms.max(10),
        ),
    })
}

/// The physical shards: `shards` in order, or the one database of `url` with `replicas`.
fn postgres_shards(settings: &PostgresSettings) -> anyhow::Result<Vec<PostgresShard>> {
    let expose = |urls: &[Secret]| urls.iter().map(|u| u.expose().to_owned()).collect();
    if !settings.shards.is_empty() {
        return Ok(settings
            .shards
            .iter()
            .map(|shard| PostgresShard {
                url: shard.url.expose().to_owned(),
                replicas: expose(&shard.replicas),
            })
            .collect());
    }
    let url = settings.url.as_ref().ok_or_else(|| {
        anyhow::anyhow!("storage.postgres.url (or storage.postgres.shards) is required")
    })?;
    Ok(vec![PostgresShard {
        url: url.expose().to_owned(),
        replicas: expose(&settings.replicas),
    }])
}

/// The group-commit options the settings describe; `inline_delivery` as for
/// [`GroupCommitOptions::inline_delivery`].
pub fn group_commit(settings: &StorageSettings, inline_delivery: bool) -> GroupCommitOptions {
    let group = &settings.group_commit;
    GroupCommitOptions {
        max_batch: group.max_batch,
        max_delay: std::time::Duration::from_micros(group.max_delay_us),
        writers: group.writers,
        inline_delivery,
    }
}

/// Connects to the configured database, applying migrations when `migrate` is true, with
/// appends delivering inline when `inline_delivery` is (see [`group_commit`]).
///
/// # Errors
/// When the database cannot be reached or a migration fails; the pools are closed then.
pub async fn connect(
    settings: &StorageSettings,
    migrate: bool,
    inline_delivery: bool,
) -> anyhow::Result<SqlStorage> {
    let options = group_commit(settings, inline_delivery);
    let storage = SqlStorage::connect_with(sql_options(settings)?, options).await?;
    let prepared = if migrate {
        storage
            .migrate()
            .await
            .map_err(|e| e.context("applying migrations"))
    } else {
        storage.prepare_shard_map().await
    };
    if let Err(err) = prepared {
        storage.close().await;
        return Err(err);
    }
    Ok(storage)
}

/// `duet migrate`: applies pending migrations, then closes the pools.
///
/// # Errors
/// As for [`connect`].
pub async fn migrate(settings: &StorageSettings) -> anyhow::Result<()> {
    let storage = connect(settings, true, false).await?;
    storage.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// `duet backup PATH`: a consistent copy of the live SQLite database at `destination`, safe
/// while a server runs on it. PostgreSQL has its own tools for this (`pg_dump`,
/// `pg_basebackup`); the operations guide says how to use them.
///
/// # Errors
/// With PostgreSQL storage, or when the copy cannot be made (see [`backup_sqlite`]).
pub async fn backup(
    settings: &StorageSettings,
    destination: &std::path::Path,
) -> anyhow::Result<BackupSummary> {
    anyhow::ensure!(
        settings.kind == StorageKind::Sqlite,
        "duet backup copies SQLite databases; back PostgreSQL up with pg_dump or \
         pg_basebackup (docs/OPERATIONS.md, \"Backups\")"
    );
    backup_sqlite(&settings.sqlite.path, destination).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Profile, Settings};

    #[tokio::test]
    async fn backup_with_postgres_storage_points_at_postgres_tools_and_writes_nothing() {
        let settings = Settings::load(
            &Profile::None,
            &[
                ("storage.kind", "postgres"),
                ("storage.postgres.url", "postgres://127.0.0.1:1/none"),
            ],
        )
        .expect("settings");
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("copy.db");
        let err = backup(&settings.storage, &destination)
            .await
            .expect_err("refused");
        assert!(format!("{err:#}").contains("pg_dump"), "{err:#}");
        assert!(!destination.exists());
    }
}
