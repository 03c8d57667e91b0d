use std::time::Duration;

use async_trait::async_trait;
use duet_domain::StoreError;
use duet_domain::events::{Outbox, OutboxEntry};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::SqlStorage;
use super::entities::outbox;
use super::errors::{from_db, from_json};

#[async_trait]
impl Outbox for SqlStorage {
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut entries = Vec::new();
        for shard in self.router.shards() {
            let rows = outbox::Entity::find()
                .order_by_asc(outbox::Column::Id)
                .limit(u64::from(limit))
                .all(&shard.writer)
                .await
                .map_err(from_db)?;
            for row in rows {
                entries.push(OutboxEntry {
                    partition: shard.index,
                    id: row.id,
                    event: serde_json::from_str(&row.payload).map_err(from_json)?,
                });
            }
        }
        Ok(entries)
    }

    async fn remove(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        for shard in self.router.shards() {
            let ids: Vec<i64> = entries
                .iter()
                .filter(|e| e.partition == shard.index)
                .map(|e| e.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            outbox::Entity::delete_many()
                .filter(outbox::Column::Id.is_in(ids))
                .exec(&shard.writer)
                .await
                .map_err(from_db)?;
        }
        Ok(())
    }

    async fn wait_for_entries(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.outbox_signal.notified()).await;
    }
}
