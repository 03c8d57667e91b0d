//! Duet's schema as sea-orm migrations, one set valid on SQLite and PostgreSQL.
//!
//! Tables group by shard key, and no query joins across groups:
//! - by user id: `users`, `sessions`, `user_feeds`, `inbox_entries`, `feed_events`;
//! - by handle: `handles`;
//! - by conversation id: `conversations`, `messages`, `outbox`, `outbox_dead_letters`;
//! - the shard map and ownership (`shard_*`): see `m20261203_000001_shard_map`.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261201_000001_outbox_dead_letters;
mod m20261201_000002_feed_identity_by_conversation;
mod m20261203_000001_shard_map;
mod m20261203_000002_feed_references;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261201_000001_outbox_dead_letters::Migration),
            Box::new(m20261201_000002_feed_identity_by_conversation::Migration),
            Box::new(m20261203_000001_shard_map::Migration),
            Box::new(m20261203_000002_feed_references::Migration),
        ]
    }
}
