use std::sync::Arc;

use async_trait::async_trait;
use tracing::instrument;

use super::{DurableEvent, EventHandler, LiveBus, LiveEvent};
use crate::StoreError;
use crate::inbox::{InboxStore, InboxUpdate};

/// Applies durable events to both members' inboxes, then pushes each newly applied feed
/// event to that member's connected devices.
pub struct Delivery {
    inbox: Arc<dyn InboxStore>,
    live: Arc<dyn LiveBus>,
}

impl Delivery {
    pub fn new(inbox: Arc<dyn InboxStore>, live: Arc<dyn LiveBus>) -> Self {
        Self { inbox, live }
    }
}

#[async_trait]
impl EventHandler for Delivery {
    #[instrument(skip_all, fields(event = %event.id, kind = event.body.kind()))]
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError> {
        for update in InboxUpdate::for_members(event) {
            if let Some(applied) = self
                .inbox
                .apply(update.user, update.peer, update.event, update.at)
                .await?
            {
                self.live
                    .publish(update.user, LiveEvent::Feed(applied))
                    .await;
            }
        }
        Ok(())
    }

    /// One `apply_many` for the whole batch (one transaction per user shard), then the live
    /// pushes, in order, of what was newly applied: only after it committed.
    #[instrument(skip_all, fields(events = events.len()))]
    async fn handle_batch(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        let updates: Vec<InboxUpdate<'_>> =
            events.iter().flat_map(InboxUpdate::for_members).collect();
        let applied = self.inbox.apply_many(&updates).await?;
        for (update, applied) in updates.iter().zip(applied) {
            if let Some(applied) = applied {
                self.live
                    .publish(update.user, LiveEvent::Feed(applied))
                    .await;
            }
        }
        Ok(())
    }
}
