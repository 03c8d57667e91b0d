//! What senders and sockets record while the run goes on.
//!
//! Each send is registered under its `client_msg_id` *before* its POST leaves, because the
//! recipient's `message.created` can arrive before the sender's 2xx. A message counts as
//! delivered once both have happened; a delivery for an id nobody is waiting for (a repeat,
//! or a send that failed after committing) is counted apart, never as a second delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{Latency, new_histogram};

/// A send whose delivery is awaited.
struct Pending {
    /// Due time (open loop) or start (closed loop): where latency counts from.
    origin: Instant,
    acked: bool,
    delivered: bool,
}

/// Shared by every sender and socket of one run.
pub struct Recorder {
    send: Mutex<Histogram<u64>>,
    delivery: Mutex<Histogram<u64>>,
    history: Mutex<Histogram<u64>>,
    pending: Mutex<HashMap<String, Pending>>,
    errors: Mutex<BTreeMap<String, u64>>,
    pub attempted: AtomicU64,
    pub acknowledged: AtomicU64,
    pub late_starts: AtomicU64,
    pub expected: AtomicU64,
    pub delivered: AtomicU64,
    pub unmatched: AtomicU64,
    pub history_reads: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder leaves plain counters behind; they are still worth reporting.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            send: Mutex::new(new_histogram()),
            delivery: Mutex::new(new_histogram()),
            history: Mutex::new(new_histogram()),
            pending: Mutex::new(HashMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            attempted: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            late_starts: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            history_reads: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// A send is about to leave; `awaits_delivery` when its recipient has a socket.
    pub fn started(&self, client_msg_id: &str, origin: Instant, awaits_delivery: bool) {
        self.attempted.fetch_add(1, Ordering::Relaxed);
        if awaits_delivery {
            lock(&self.pending).insert(
                client_msg_id.to_owned(),
                Pending {
                    origin,
                    acked: false,
                    delivered: false,
                },
            );
        }
    }

    /// The server answered 2xx at `at`.
    pub fn acknowledged(&self, client_msg_id: &str, origin: Instant, at: Instant) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        lock(&self.send).saturating_record(micros(at.saturating_duration_since(origin)));
        let mut pending = lock(&self.pending);
        if let Some(entry) = pending.get_mut(client_msg_id) {
            self.expected.fetch_add(1, Ordering::Relaxed);
            if entry.delivered {
                pending.remove(client_msg_id);
                self.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                entry.acked = true;
            }
        }
    }

    /// The send failed; `kind` is how (`http 503`, `timeout`, …).
    pub fn failed(&self, client_msg_id: &str, kind: String) {
        *lock(&self.errors).entry(kind).or_default() += 1;
        lock(&self.pending).remove(client_msg_id);
    }

    /// A latest-page read answered 2xx after `took`.
    pub fn history_read(&self, took: Duration) {
        self.history_reads.fetch_add(1, Ordering::Relaxed);
        lock(&self.history).saturating_record(micros(took));
    }

    /// A latest-page read failed; counted with the errors as `read: <kind>`.
    pub fn failed_read(&self, kind: String) {
        *lock(&self.errors)
            .entry(format!("read: {kind}"))
            .or_default() += 1;
    }

    /// The recipient's socket got `message.created` for `client_msg_id` at `at`.
    pub fn delivery(&self, client_msg_id: &str, at: Instant) {
        let mut pending = lock(&self.pending);
        let Some(entry) = pending.get_mut(client_msg_id).filter(|e| !e.delivered) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let latency = micros(at.saturating_duration_since(entry.origin));
        if entry.acked {
            pending.remove(client_msg_id);
            self.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            entry.delivered = true;
        }
        drop(pending);
        lock(&self.delivery).saturating_record(latency);
    }

    /// Acknowledged messages still waiting for their delivery.
    pub fn missing(&self) -> u64 {
        lock(&self.pending)
            .values()
            .filter(|e| e.acked && !e.delivered)
            .count() as u64
    }

    pub fn count_late_start(&self) {
        self.late_starts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn send_latency(&self) -> Latency {
        Latency::from_histogram(&lock(&self.send))
    }

    pub fn history_read_latency(&self) -> Latency {
        Latency::from_histogram(&lock(&self.history))
    }

    pub fn delivery_latency(&self) -> Latency {
        Latency::from_histogram(&lock(&self.delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_before_the_ack_still_counts_once_the_ack_arrives() {
        let recorder = Recorder::default();
        let origin = Instant::now();
        recorder.started("m1", origin, true);
        recorder.delivery("m1", origin + Duration::from_millis(3));
        assert_eq!(recorder.delivered.load(Ordering::Relaxed), 0);
        recorder.acknowledged("m1", origin, origin + Duration::from_millis(4));
        assert_eq!(recorder.delivered.load(Ordering::Relaxed), 1);
        assert_eq!(recorder.expected.load(Ordering::Relaxed), 1);
        assert_eq!(recorder.missing(), 0);
        // Three significant digits: 3 ms is kept within 0.1%.
        let p50 = recorder.delivery_latency().p50_us;
        assert!((2997..=3003).contains(&p50), "{p50}");
    }

    #[test]
    fn an_acknowledged_message_never_delivered_is_missing() {
        let recorder = Recorder::default();
        let origin = Instant::now();
        recorder.started("m1", origin, true);
        recorder.acknowledged("m1", origin, origin);
        assert_eq!(recorder.missing(), 1);
        recorder.delivery("m1", Instant::now());
        assert_eq!(recorder.missing(), 0);
    }

    #[test]
    fn repeats_and_failed_sends_are_unmatched_not_delivered() {
        let recorder = Recorder::default();
        let origin = Instant::now();
        recorder.started("m1", origin, true);
        recorder.acknowledged("m1", origin, origin);
        recorder.delivery("m1", origin);
        recorder.delivery("m1", origin);
        recorder.started("m2", origin, true);
        recorder.failed("m2", "timeout".into());
        recorder.delivery("m2", origin);
        assert_eq!(recorder.delivered.load(Ordering::Relaxed), 1);
        assert_eq!(recorder.unmatched.load(Ordering::Relaxed), 2);
        assert_eq!(recorder.errors().get("timeout"), Some(&1));
        assert_eq!(recorder.missing(), 0);
    }

    #[test]
    fn a_send_nobody_listens_for_is_acknowledged_but_not_expected() {
        let recorder = Recorder::default();
        let origin = Instant::now();
        recorder.started("m1", origin, false);
        recorder.acknowledged("m1", origin, origin + Duration::from_micros(1500));
        assert_eq!(recorder.expected.load(Ordering::Relaxed), 0);
        assert_eq!(recorder.send_latency().p50_us, 1500);
    }
}
