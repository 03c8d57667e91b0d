//! The sending phase: a closed loop (N senders, each as fast as its answers come back) or an
//! open loop (sends on a fixed timeline, at most N in flight, latency from the due time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::args::Limits;
use crate::client::Client;
use crate::recorder::Recorder;
use crate::schedule::{due_at, planned_sends};
use crate::setup::{Population, route};

/// Everything a send needs, shared by every sender.
pub struct Workload {
    pub client: Client,
    pub population: Population,
    /// Per user index: whether that user has a socket (so its deliveries are awaited).
    pub listening: Vec<bool>,
    pub body: String,
    pub run_id: String,
    pub recorder: Arc<Recorder>,
    /// Latest-page reads by the sender after each acknowledged send.
    pub reads_per_send: u32,
}

impl Workload {
    /// Sends message `index`; its latencies count from `origin`.
    async fn send(&self, index: u64, origin: Instant) {
        let (conversation, side) = route(index, self.population.conversations.len());
        let conversation = &self.population.conversations[conversation];
        let sender = &self.population.users[conversation.members[side]];
        let recipient = conversation.members[1 - side];
        let client_msg_id = format!("{}-{index}", self.run_id);
        self.recorder
            .started(&client_msg_id, origin, self.listening[recipient]);
        let sent = self
            .client
            .send(&sender.token, &conversation.id, &client_msg_id, &self.body)
            .await;
        match sent {
            Ok(()) => self
                .recorder
                .acknowledged(&client_msg_id, origin, Instant::now()),
            Err(kind) => return self.recorder.failed(&client_msg_id, kind),
        }
        for _ in 0..self.reads_per_send {
            let started = Instant::now();
            match self
                .client
                .latest_page(&sender.token, &conversation.id)
                .await
            {
                Ok(()) => self.recorder.history_read(started.elapsed()),
                Err(kind) => self.recorder.failed_read(kind),
            }
        }
    }
}

/// Closed loop: `workers` senders take the next message number until a limit or `stop`.
/// Returns the wall time until the last answer.
pub async fn closed_loop(
    workload: Arc<Workload>,
    workers: u32,
    limits: Limits,
    stop: CancellationToken,
) -> Duration {
    let start = Instant::now();
    let deadline = limits.duration.map(|d| start + d);
    let next = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..workers)
        .map(|_| {
            let (workload, next, stop) = (workload.clone(), next.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() && deadline.is_none_or(|d| Instant::now() < d) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if limits.count.is_some_and(|count| index >= count) {
                        break;
                    }
                    workload.send(index, Instant::now()).await;
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.await;
    }
    start.elapsed()
}

/// Open loop: send `i` is due at `i / rate`; it starts then if one of `max_in_flight` slots
/// is free, else as soon as one frees (counted as a late start), its latency still measured
/// from the due time. Returns the wall time until the last answer.
pub async fn open_loop(
    workload: Arc<Workload>,
    rate: f64,
    max_in_flight: u32,
    limits: Limits,
    stop: CancellationToken,
) -> Duration {
    let start = tokio::time::Instant::now();
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let total = planned_sends(limits, rate).unwrap_or(u64::MAX);
    for index in 0..total {
        let due = start + due_at(index, rate);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(due) => {}
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                workload.recorder.count_late_start();
                tokio::select! {
                    () = stop.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let workload = workload.clone();
        tokio::spawn(async move {
            workload.send(index, due.into_std()).await;
            drop(slot);
        });
    }
    // Every slot back means every send has been answered.
    let _ = slots.acquire_many(max_in_flight).await;
    start.elapsed()
}
