use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::stream::{BoxStream, StreamExt};
use uuid::Uuid;

use super::{Journal, Step, lock};
use crate::events::{DurableEvent, EventQueue, LiveBus, LiveEvent, LiveItem, Outbox, OutboxEntry};
use crate::{StoreError, UserId};

/// One shard's outbox in a list. Claims are not modelled (one relay runs at a time); what
/// is removed, set aside and released is recorded.
#[derive(Default)]
pub struct MemoryOutbox {
    state: Mutex<OutboxState>,
    releases: AtomicUsize,
}

#[derive(Default)]
struct OutboxState {
    next_id: i64,
    pending: Vec<OutboxEntry>,
    set_aside: Vec<(OutboxEntry, String)>,
}

impl MemoryOutbox {
    /// Adds `event` as the newest entry, as a committed write would.
    pub fn push(&self, event: DurableEvent) {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let entry = OutboxEntry {
            partition: 0,
            id: state.next_id,
            event,
        };
        state.pending.push(entry);
    }

    /// The ids of the events still waiting, oldest first.
    pub fn pending_events(&self) -> Vec<Uuid> {
        lock(&self.state)
            .pending
            .iter()
            .map(|e| e.event.id)
            .collect()
    }

    /// The ids of the events set aside, with the error each was set aside for.
    pub fn set_aside_events(&self) -> Vec<(Uuid, String)> {
        lock(&self.state)
            .set_aside
            .iter()
            .map(|(e, error)| (e.event.id, error.clone()))
            .collect()
    }

    /// How many times a claim was ended without removing anything.
    pub fn releases(&self) -> usize {
        self.releases.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let state = lock(&self.state);
        Ok(state.pending.iter().take(limit as usize).cloned().collect())
    }

    async fn remove(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let gone: HashSet<i64> = entries.iter().map(|e| e.id).collect();
        lock(&self.state).pending.retain(|e| !gone.contains(&e.id));
        Ok(())
    }

    async fn release(&self) {
        self.releases.fetch_add(1, Ordering::SeqCst);
    }

    async fn set_aside(&self, entry: &OutboxEntry, error: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.pending.retain(|e| e.id != entry.id);
        state.set_aside.push((entry.clone(), error.to_owned()));
        Ok(())
    }

    async fn wait_for_entries(&self, _timeout: Duration) {}
}

/// An event queue that keeps what it is handed. It can be made unavailable, or made to
/// refuse any batch holding a "poisoned" event (a hand-off is all or nothing).
#[derive(Default)]
pub struct RecordingQueue {
    published: Mutex<Vec<DurableEvent>>,
    unavailable: AtomicBool,
    poisoned: Mutex<HashSet<Uuid>>,
}

impl RecordingQueue {
    /// The ids of every event handed off, in order.
    pub fn published(&self) -> Vec<Uuid> {
        lock(&self.published).iter().map(|e| e.id).collect()
    }

    /// Makes every hand-off fail with `Unavailable` (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Makes every hand-off that includes this event fail with `Unexpected`.
    pub fn poison(&self, event: Uuid) {
        lock(&self.poisoned).insert(event);
    }
}

#[async_trait]
impl EventQueue for RecordingQueue {
    async fn publish(&self, events: &[DurableEvent]) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            let cause = anyhow::anyhow!("the queue is down");
            return Err(StoreError::Unavailable(cause));
        }
        let poisoned = lock(&self.poisoned);
        if let Some(bad) = events.iter().find(|e| poisoned.contains(&e.id)) {
            let cause = anyhow::anyhow!("event {} cannot be handed off", bad.id);
            return Err(StoreError::Unexpected(cause));
        }
        lock(&self.published).extend_from_slice(events);
        Ok(())
    }
}

/// A live bus that records every publication in its journal and forwards it to the user's
/// subscribers.
#[derive(Default)]
pub struct RecordingLiveBus {
    journal: Journal,
    subscribers: Mutex<Vec<(UserId, mpsc::UnboundedSender<LiveItem>)>>,
}

impl RecordingLiveBus {
    /// A bus recording into `journal`, which other fakes may share.
    pub fn recording_into(journal: Journal) -> Self {
        Self {
            journal,
            subscribers: Mutex::default(),
        }
    }

    /// Every `(user, event)` published, in order.
    pub fn published(&self) -> Vec<(UserId, LiveEvent)> {
        let steps = self.journal.steps().into_iter();
        steps
            .filter_map(|step| match step {
                Step::Publish(user, event) => Some((user, event)),
                Step::Append(_) => None,
            })
            .collect()
    }
}

#[async_trait]
impl LiveBus for RecordingLiveBus {
    async fn publish(&self, user: UserId, event: LiveEvent) {
        lock(&self.subscribers).retain(|(subscriber, sender)| {
            *subscriber != user
                || sender
                    .unbounded_send(LiveItem::Event(event.clone()))
                    .is_ok()
        });
        self.journal.record(Step::Publish(user, event));
    }

    async fn subscribe(&self, user: UserId) -> BoxStream<'static, LiveItem> {
        let (sender, receiver) = mpsc::unbounded();
        lock(&self.subscribers).push((user, sender));
        receiver.boxed()
    }
}
