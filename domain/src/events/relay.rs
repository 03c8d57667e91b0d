use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use super::{EventQueue, Outbox};
use crate::StoreError;

/// Moves outbox entries to the event queue, then deletes them. A crash between the two
/// publishes them again on the next run; the queue and delivery are idempotent.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    queue: Arc<dyn EventQueue>,
    batch: u32,
}

impl Relay {
    pub fn new(outbox: Arc<dyn Outbox>, queue: Arc<dyn EventQueue>, batch: u32) -> Self {
        Self {
            outbox,
            queue,
            batch,
        }
    }

    /// Relays one batch; returns how many entries it moved.
    ///
    /// # Errors
    /// When the outbox or queue fails; nothing is deleted that was not handed off.
    #[instrument(skip(self), level = "debug")]
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let entries = self.outbox.pending(self.batch).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let events: Vec<_> = entries.iter().map(|e| e.event.clone()).collect();
        self.queue.publish(&events).await?;
        self.outbox.remove(&entries).await?;
        Ok(entries.len())
    }

    /// Waits until entries may be pending (this process wrote some) or `poll` passes.
    pub async fn wait_for_work(&self, poll: Duration) {
        self.outbox.wait_for_entries(poll).await;
    }
}
