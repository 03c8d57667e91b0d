use std::sync::Arc;

use async_trait::async_trait;
use tracing::instrument;

use super::{DurableEvent, EventHandler, LiveBus, LiveEvent};
use crate::StoreError;
use crate::inbox::InboxStore;

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
        let [a, b] = event.members;
        for (user, peer) in [(a, b), (b, a)] {
            if let Some(applied) = self.inbox.apply(user, peer, &event.body, event.at).await? {
                self.live.publish(user, LiveEvent::Feed(applied)).await;
            }
        }
        Ok(())
    }
}
