use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::instrument;

use super::{DurableEvent, EventQueue, Outbox, OutboxEntry};
use crate::StoreError;

/// Failed hand-offs of one entry after which it is set aside.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Moves outbox entries to the event queue, then deletes them. A crash between the two
/// publishes them again on the next run; the queue and delivery are idempotent.
///
/// A batch is handed off whole. When that fails for a reason other than an unavailable
/// backend, its entries are handed off one by one to find the one that fails: those before
/// it go through, and it counts an attempt. An entry that has failed `max_attempts` times
/// (in this process) is set aside, so it cannot hold up the entries behind it forever.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    queue: Arc<dyn EventQueue>,
    batch: u32,
    max_attempts: u32,
    attempts: Mutex<HashMap<(usize, i64), u32>>,
}

impl Relay {
    pub fn new(outbox: Arc<dyn Outbox>, queue: Arc<dyn EventQueue>, batch: u32) -> Self {
        Self {
            outbox,
            queue,
            batch,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how many failed hand-offs set an entry aside (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Relays one batch; returns how many entries it moved (relayed or set aside).
    ///
    /// # Errors
    /// When the outbox or queue fails; nothing is deleted that was not handed off.
    #[instrument(skip(self), level = "debug")]
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let entries = self.outbox.pending(self.batch).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let events: Vec<DurableEvent> = entries.iter().map(|e| e.event.clone()).collect();
        match self.queue.publish(&events).await {
            Ok(()) => {
                self.outbox.remove(&entries).await?;
                self.forget(&entries);
                Ok(entries.len())
            }
            Err(err @ StoreError::Unavailable(_)) => {
                self.outbox.release().await;
                Err(err)
            }
            Err(_) => self.one_by_one(&entries).await,
        }
    }

    /// Hands `entries` off singly, in order, up to the first that fails and is not set
    /// aside; deletes what went through.
    async fn one_by_one(&self, entries: &[OutboxEntry]) -> Result<usize, StoreError> {
        let mut relayed = Vec::new();
        let mut set_aside = 0;
        let mut failure = None;
        for entry in entries {
            let err = match self.queue.publish(std::slice::from_ref(&entry.event)).await {
                Ok(()) => {
                    relayed.push(entry.clone());
                    continue;
                }
                Err(err) => err,
            };
            if matches!(err, StoreError::Unavailable(_))
                || self.count_attempt(entry) < self.max_attempts
            {
                failure = Some(err);
                break;
            }
            let error = format!("{err:#}");
            if let Err(move_err) = self.outbox.set_aside(entry, &error).await {
                failure = Some(move_err);
                break;
            }
            tracing::error!(entry = entry.id, event = %entry.event.id, error, "outbox entry set aside after repeated delivery failures");
            self.forget(std::slice::from_ref(entry));
            set_aside += 1;
        }
        if relayed.is_empty() && set_aside == 0 {
            self.outbox.release().await;
        } else {
            self.outbox.remove(&relayed).await?;
            self.forget(&relayed);
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(relayed.len() + set_aside),
        }
    }

    fn count_attempt(&self, entry: &OutboxEntry) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let count = attempts.entry((entry.partition, entry.id)).or_insert(0);
        *count += 1;
        *count
    }

    fn forget(&self, entries: &[OutboxEntry]) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if attempts.is_empty() {
            return;
        }
        for entry in entries {
            attempts.remove(&(entry.partition, entry.id));
        }
    }

    /// Waits until entries may be pending (this process wrote some) or `poll` passes.
    pub async fn wait_for_work(&self, poll: Duration) {
        self.outbox.wait_for_entries(poll).await;
    }
}
