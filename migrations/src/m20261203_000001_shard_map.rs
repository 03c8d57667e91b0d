//! The shard map, kept in the databases themselves, and the ownership fence.
//!
//! On every physical shard:
//! - `shard_identity`: which physical shard this database is (its place in the configured
//!   list), so a reordered configuration is refused instead of routing keys to the wrong one;
//! - `shard_owners`: the logical shards this database owns. A write checks, inside its own
//!   transaction, that its keys' logical shards are here and not fenced (on PostgreSQL through
//!   `duet_unowned`, below): a process holding an old map is refused, never served.
//!
//! On the first physical shard only (the directory):
//! - `shard_map`: the map's version and the number of logical shards;
//! - `shard_directory`: logical shard → physical shard, what every process caches;
//! - `shard_moves`: a move in progress and the step it reached, so an interrupted
//!   `duet shards move` resumes where it stopped.
//!
//! And on `users`, `claimed`: false from the moment the account row is written until its
//! handle claim (on the handle's shard) points at it; rows left unclaimed are swept.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `duet_unowned(logical[])`: takes a shared advisory lock on each logical shard (in order),
/// then returns those of them this database does not own or has fenced. A move fences a
/// logical shard under the exclusive lock, so it waits for every write that passed the check
/// to finish, and every later write sees the fence.
const UNOWNED_FUNCTION: &str = r"
CREATE OR REPLACE FUNCTION duet_unowned(wanted integer[]) RETURNS integer[]
LANGUAGE plpgsql AS $$
DECLARE
  sorted integer[] := ARRAY(SELECT DISTINCT w FROM unnest(wanted) AS w ORDER BY w);
  l integer;
  missing integer[] := '{}';
BEGIN
  FOREACH l IN ARRAY sorted LOOP
    PERFORM pg_advisory_xact_lock_shared(1685415284, l);
  END LOOP;
  -- One primary-key probe each: a set query here planned a hash join over the whole table.
  FOREACH l IN ARRAY sorted LOOP
    PERFORM 1 FROM shard_owners o WHERE o.logical = l AND NOT o.fenced;
    IF NOT FOUND THEN
      missing := array_append(missing, l);
    END IF;
  END LOOP;
  RETURN missing;
END
$$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let timestamp = match manager.get_database_backend() {
            DbBackend::Postgres => "timestamptz",
            _ => "text",
        };
        for sql in [
            "CREATE TABLE IF NOT EXISTS shard_identity (physical integer PRIMARY KEY)".to_owned(),
            "CREATE TABLE IF NOT EXISTS shard_owners (logical integer PRIMARY KEY, \
             fenced boolean NOT NULL DEFAULT false)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS shard_map (id integer PRIMARY KEY, version bigint NOT NULL, \
             logical_shards integer NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS shard_directory (logical integer PRIMARY KEY, \
             physical integer NOT NULL)"
                .to_owned(),
            format!(
                "CREATE TABLE IF NOT EXISTS shard_moves (logical integer PRIMARY KEY, \
                 source integer NOT NULL, target integer NOT NULL, step text NOT NULL, \
                 started_at {timestamp} NOT NULL, updated_at {timestamp} NOT NULL)"
            ),
            "ALTER TABLE users ADD COLUMN claimed boolean NOT NULL DEFAULT true".to_owned(),
            "CREATE INDEX IF NOT EXISTS users_unclaimed ON users (created_at) WHERE NOT claimed"
                .to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(UNOWNED_FUNCTION).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS duet_unowned(integer[])")
                .await?;
        }
        for sql in [
            "DROP INDEX IF EXISTS users_unclaimed",
            "ALTER TABLE users DROP COLUMN claimed",
            "DROP TABLE IF EXISTS shard_moves",
            "DROP TABLE IF EXISTS shard_directory",
            "DROP TABLE IF EXISTS shard_map",
            "DROP TABLE IF EXISTS shard_owners",
            "DROP TABLE IF EXISTS shard_identity",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
