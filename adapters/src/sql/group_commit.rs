//! Group commit: one writer task per physical database gathers concurrent appends and
//! commits them in one transaction, so a burst of N sends costs one commit (one fsync)
//! instead of N. Each caller is answered only after that commit, so "acknowledged" still
//! means durable. Every append goes this way; a lone send is a batch of one.
//!
//! The task takes the first waiting append and whatever else is already waiting. When the
//! previous batch had company (more than one append), it keeps gathering until the batch holds
//! `max_batch` appends or `max_delay` has passed since the first arrived; a lone sender's
//! append does not wait for company that is not coming. While a batch commits, the next one
//! fills, so under load batches grow by themselves.
//!
//! On PostgreSQL a database has several writer tasks (`writers`), each with its own queue: a
//! conversation's appends always go to the same one (by a hash of its id), so one writer's
//! batch commits while another's gathers and their round trips and fsyncs overlap, without
//! two of this process's batches ever waiting for each other's conversation row locks.
//! Batches lock conversation rows in id order, so batches of several processes never
//! deadlock; touching the same conversation, they take turns. SQLite has one writer
//! connection, so one task; so does a process delivering inline, whose batches also lock
//! both members' feed rows, which no routing by conversation keeps apart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use duet_domain::conversations::{AppendOutcome, Appended, NewMessage};
use duet_domain::{ConversationId, StoreError, UserId};
use sea_orm::DbBackend;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::append_batch::{BatchFailure, Committed, Placement, append_batch};
use super::fence;
use super::router::ShardRouter;

/// How appends are gathered into transactions, and what an append delivers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Most appends in one transaction.
    pub max_batch: usize,
    /// Longest an append waits for others to join its batch. Tokio's timer has millisecond
    /// resolution, so values below 1 ms round up to it; zero takes only what is already
    /// waiting.
    pub max_delay: Duration,
    /// Writer tasks per PostgreSQL database (at least 1); SQLite, and a process delivering
    /// inline, always have one.
    pub writers: usize,
    /// Deliver a message in its own transaction when both members' inboxes live in the
    /// conversation's database: both inboxes are written instead of an outbox row, and the
    /// feed events come back in [`AppendOutcome::delivered`] for the caller to push live.
    /// Only for a process that delivers in process (nothing else learns of these events);
    /// everything else still goes through the outbox.
    pub inline_delivery: bool,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_delay: Duration::from_micros(1000),
            writers: 4,
            inline_delivery: false,
        }
    }
}

/// What a caller is answered with.
pub(super) type Reply = Result<Option<AppendOutcome>, StoreError>;

struct Request {
    message: NewMessage,
    reply: oneshot::Sender<Reply>,
    /// When the caller queued it: `max_delay` counts from here.
    queued: Instant,
}

/// The sending side of one database's writer tasks, one queue per task. Dropping every clone
/// stops them.
#[derive(Clone)]
pub(super) struct GroupCommitter {
    queues: Arc<[mpsc::Sender<Request>]>,
}

/// What a batch needs besides its connection: the router (for write marks) and the signal
/// that wakes the relay.
struct Writer {
    queue: mpsc::Receiver<Request>,
    router: Arc<ShardRouter>,
    shard: usize,
    outbox_signal: Arc<Notify>,
    options: GroupCommitOptions,
}

impl GroupCommitter {
    /// Starts the writer tasks of shard `shard` on the current runtime.
    pub(super) fn start(
        router: Arc<ShardRouter>,
        shard: usize,
        outbox_signal: Arc<Notify>,
        options: GroupCommitOptions,
    ) -> Self {
        let max_batch = options.max_batch.max(1);
        // Delivering inline, a batch also locks both members' feed rows, which routing by
        // conversation cannot keep apart: several writers would mostly wait for each other's
        // row locks (measured on PostgreSQL, 64 senders: 4 writers 78 % of the raw
        // one-transaction rate, 1 writer 101 %).
        let postgres = router.shard(shard).writer.get_database_backend() == DbBackend::Postgres;
        let writers = if postgres && !options.inline_delivery {
            options.writers.max(1)
        } else {
            1
        };
        let mut queues = Vec::with_capacity(writers);
        for _ in 0..writers {
            // Bounded: when the database falls behind, senders wait here instead of piling up.
            let (requests, queue) = mpsc::channel(max_batch * 4);
            queues.push(requests);
            let writer = Writer {
                queue,
                router: router.clone(),
                shard,
                outbox_signal: outbox_signal.clone(),
                options: GroupCommitOptions {
                    max_batch,
                    ..options
                },
            };
            if postgres {
                tokio::spawn(writer.run());
            } else {
                spawn_writer(writer);
            }
        }
        Self {
            queues: queues.into(),
        }
    }

    /// Appends `message` with the next batch; resolves once that batch committed (or failed).
    pub(super) async fn append(&self, message: NewMessage) -> Reply {
        let (reply, answer) = oneshot::channel();
        // The conversation's own writer: its appends never wait on another writer's locks.
        let hash = message
            .conversation_id
            .0
            .as_u64_pair()
            .0
            .wrapping_add(message.conversation_id.0.as_u64_pair().1);
        let writer = usize::try_from(hash % self.queues.len() as u64).unwrap_or(0);
        self.queues[writer]
            .send(Request {
                message,
                reply,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Runs SQLite's writer task on a thread of its own (a single-threaded runtime), so that its
/// chain of round trips to the connection's thread is not queued behind request handling on
/// the shared workers: under load every hop of a batch (begin, reads, writes, commit) would otherwise
/// wait for a worker to come free. Where no such runtime can be built, on the current one.
/// A thread the system refuses leaves the shard without a writer: its appends are answered
/// as unavailable (503), and the failure is logged. (PostgreSQL's writers stay on the shared
/// runtime: a connection's socket belongs to the runtime that opened it.)
fn spawn_writer(writer: Writer) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::warn!(error = %err, "group commit runs on the shared runtime");
            tokio::spawn(writer.run());
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("duet-group-commit".into())
        .spawn(move || runtime.block_on(writer.run()));
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the group commit thread");
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the group commit writer has stopped"))
}

impl Writer {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.options.max_batch);
        let mut had_company = false;
        loop {
            let Some(first) = self.queue.recv().await else {
                break;
            };
            batch.push(first);
            self.gather(&mut batch, had_company).await;
            had_company = batch.len() > 1;
            metrics::histogram!("duet_group_commit_batch_size").record(batch.len() as f64);
            self.commit(std::mem::take(&mut batch)).await;
        }
        tracing::debug!(shard = self.shard, "group commit writer stopped");
    }

    /// Fills `batch` up to `max_batch`: first with what is already waiting, then, when the
    /// previous batch `had_company`, with what arrives before `max_delay` has passed since the
    /// first append was queued. Under load the first one queued while the previous batch
    /// committed, so its wait is already over and the batch goes as it is, instead of waiting
    /// `max_delay` more each round. A lone sender's batches are batches of one: waiting would
    /// only add `max_delay` to each of its sends.
    async fn gather(&mut self, batch: &mut Vec<Request>, had_company: bool) {
        let receiver = &mut self.queue;
        let deadline = batch[0].queued + self.options.max_delay;
        while batch.len() < self.options.max_batch {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(mpsc::error::TryRecvError::Disconnected) => return,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.options.max_delay.is_zero() || (!had_company && batch.len() == 1) {
                        return;
                    }
                    match tokio::time::timeout_at(deadline, receiver.recv()).await {
                        Ok(Some(request)) => batch.push(request),
                        Ok(None) | Err(_) => return,
                    }
                }
            }
        }
    }

    async fn commit(&self, batch: Vec<Request>) {
        let (messages, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.message, r.reply)).unzip();
        match self.write(&messages).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller that gave up (its request was cancelled) no longer listens;
                    // what it would have pushed live waits in the feed for a catch-up.
                    let _ = reply.send(answer);
                }
            }
            Err(BatchFailure::Statement(err))
                if messages.len() > 1 && !matches!(err, StoreError::Unavailable(_)) =>
            {
                // One bad message fails the whole transaction: give each append a batch of
                // its own, so only a bad one fails.
                tracing::warn!(
                    error = format!("{err:#}"),
                    size = messages.len(),
                    "group commit batch failed; retrying its appends one by one"
                );
                metrics::counter!("duet_group_commit_fallbacks_total").increment(1);
                for (message, reply) in messages.iter().zip(replies) {
                    let answer = match self.write(std::slice::from_ref(message)).await {
                        Ok(mut answers) => answers.pop().unwrap_or(Ok(None)),
                        Err(failure) => Err(failed(failure, 1)),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(failure) => {
                let err = failed(failure, messages.len());
                for reply in replies {
                    let _ = reply.send(Err(copy(&err)));
                }
            }
        }
    }

    /// Appends `messages` in one transaction; after it commits, leaves the marks and the
    /// relay wake-up it calls for. One answer per message: those the database refused (it no
    /// longer owns their conversation) are [`fence::not_owner`] errors, for the caller to
    /// route again.
    async fn write(&self, messages: &[NewMessage]) -> Result<Vec<Reply>, BatchFailure> {
        let shard = self.router.shard(self.shard);
        let committed = append_batch(&shard.writer, messages, self).await?;
        self.after_commit(messages, &committed).await;
        let mut answers: Vec<Reply> = committed.answers.into_iter().map(Ok).collect();
        for (index, logical) in committed.refused {
            answers[index] = Err(fence::not_owner(vec![logical]));
        }
        Ok(answers)
    }

    /// Write marks for read-your-writes on replicas (conversations, and the inboxes
    /// delivered inline), and a wake-up for the relay when it has work.
    async fn after_commit(&self, messages: &[NewMessage], committed: &Committed) {
        let created = messages
            .iter()
            .zip(&committed.answers)
            .filter_map(|(message, answer)| Some((message, answer.as_ref()?)))
            .filter(|(_, outcome)| matches!(outcome.appended, Appended::Created(_)));
        let mut slots = BTreeSet::new();
        for (message, outcome) in created {
            slots.insert(self.router.for_conversation(message.conversation_id).slot);
            for delivered in &outcome.delivered {
                slots.insert(self.router.for_user(delivered.user).slot);
            }
        }
        if !slots.is_empty() {
            self.router.shard(self.shard).wrote_all(slots).await;
        }
        if committed.outboxed {
            self.outbox_signal.notify_one();
        }
    }
}

impl Placement for Writer {
    fn logical(&self, conversation: ConversationId) -> u32 {
        self.router.for_conversation(conversation).logical
    }

    /// Both inboxes in this database too: delivered in the append itself.
    fn inline(&self, members: [UserId; 2]) -> Option<[u32; 2]> {
        if !self.options.inline_delivery {
            return None;
        }
        let [a, b] = members.map(|member| self.router.for_user(member));
        (a.shard.index == self.shard && b.shard.index == self.shard)
            .then_some([a.logical, b.logical])
    }
}

/// Logs why a batch of `size` appends failed; the error its callers are answered with.
fn failed(failure: BatchFailure, size: usize) -> StoreError {
    match failure {
        BatchFailure::Statement(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                size,
                "group commit batch failed"
            );
            err
        }
        BatchFailure::Commit(err) => {
            // Unknown whether it took effect: nobody is told it did.
            tracing::error!(error = format!("{err:#}"), size, "group commit failed");
            err
        }
    }
}

/// The same failure for another caller of the batch (`StoreError` holds an `anyhow::Error`,
/// which cannot be cloned).
fn copy(err: &StoreError) -> StoreError {
    let text = anyhow::anyhow!("{err:#}");
    match err {
        StoreError::Unavailable(_) => StoreError::Unavailable(text),
        StoreError::Unexpected(_) => StoreError::Unexpected(text),
    }
}
