//! The SQL half of group commit: a batch of appends to one database in ONE transaction,
//! with every guarantee a single append has (gap-free seq per conversation, dedupe on
//! (conversation, sender, client_msg_id), the outbox row beside each message).
//!
//! With inline delivery, a message whose two members' inboxes live in this same database
//! gets no outbox row: both inboxes are updated in the append's own transaction instead (what
//! the relay would do a moment later, with the same code), and the feed events come back
//! with the append's outcome, for its caller to push live.
//!
//! Conversation rows are locked first, in id order (`FOR UPDATE` on PostgreSQL; SQLite's
//! immediate transaction holds the whole file), so the dedupe read that follows sees every
//! message another process committed before us, and two batches never wait on each other in
//! a cycle.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use duet_domain::conversations::{AppendOutcome, Appended, Message, NewMessage};
use duet_domain::events::{Delivered, DurableEvent};
use duet_domain::inbox::{FeedEventBody, InboxUpdate};
use duet_domain::{ConversationId, StoreError, UserId};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryTrait, Statement, Value,
};
use uuid::Uuid;

use super::bulk::{Lock, chunks, execute_all, find_by_keys, update_by_key};
use super::conversations::{begin_write, to_message};
use super::entities::{conversations, messages, outbox};
use super::errors::{from_db, from_json};
use super::fence;
use super::inbox_batch::{Origin, plan_apply};

/// Why a batch did not commit.
pub(super) enum BatchFailure {
    /// A statement failed; the transaction was rolled back and nothing was written.
    Statement(StoreError),
    /// `COMMIT` itself failed: whether it took effect is unknown.
    Commit(StoreError),
}

/// The idempotency key of a message.
type ClientKey = (Uuid, Uuid, String);

fn client_key(message: &NewMessage) -> ClientKey {
    (
        message.conversation_id.0,
        message.sender_id.0,
        message.client_msg_id.clone(),
    )
}

/// Where a batch's keys belong, as this process's shard map says.
pub(super) trait Placement: Sync {
    /// The logical shard of a conversation (fenced by the batch's transaction).
    fn logical(&self, conversation: ConversationId) -> u32;
    /// When a message between `members` may be delivered in its own transaction (both
    /// inboxes in this database, and delivery in process): the members' logical shards,
    /// which the transaction then fences too.
    fn inline(&self, members: [UserId; 2]) -> Option<[u32; 2]>;
}

/// What a committed batch comes to.
pub(super) struct Committed {
    /// One per append, in the batch's order: `None` when the conversation does not exist or
    /// the sender is not in it, or when this database refused it (see `refused`).
    pub answers: Vec<Option<AppendOutcome>>,
    /// The appends this database refused, with their logical shard: it no longer owns the
    /// conversation (this process's shard map is stale). Nothing of them was written.
    pub refused: Vec<(usize, u32)>,
    /// Whether outbox rows were written (the relay has work).
    pub outboxed: bool,
}

/// Appends `batch` in one transaction. `inline` says whether a message between these two
/// members has both inboxes in this database (and delivery is in process): those are applied
/// here instead of going through the outbox.
pub(super) async fn append_batch(
    db: &DatabaseConnection,
    batch: &[NewMessage],
    placement: &dyn Placement,
) -> Result<Committed, BatchFailure> {
    let mut phases = Phases::start();
    let txn = begin_write(db).await.map_err(BatchFailure::Statement)?;
    phases.end("begin");
    let committed = match write(&txn, batch, placement, &mut phases).await {
        Ok(committed) => committed,
        Err(err) => {
            // Dropping the transaction would roll back too; saying so frees the connection
            // (and the row locks) before the fallback starts.
            let _ = txn.rollback().await;
            return Err(BatchFailure::Statement(err));
        }
    };
    txn.commit()
        .await
        .map_err(|e| BatchFailure::Commit(from_db(e)))?;
    phases.end("commit");
    Ok(committed)
}

/// Where a batch's time goes, as `duet_group_commit_phase_seconds{phase}`: taking the
/// connection and beginning (`begin`), the reads and the plan (`read`), the writes
/// (`write`), and `COMMIT` with its fsync (`commit`). A batch that fails records the phases
/// it finished.
struct Phases {
    since: std::time::Instant,
}

impl Phases {
    fn start() -> Self {
        Self {
            since: std::time::Instant::now(),
        }
    }

    /// Records the time since the previous phase ended as `phase`.
    fn end(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!(PHASE_SECONDS, "phase" => phase)
            .record(now.duration_since(self.since).as_secs_f64());
        self.since = now;
    }
}

/// The histogram [`Phases`] records.
pub const PHASE_SECONDS: &str = "duet_group_commit_phase_seconds";

/// A conversation as the batch sees it: its members and the positions it moves.
struct Counter {
    members: [UserId; 2],
    loaded_seq: i64,
    last_seq: i64,
    /// The members' read positions (each moves to the seq of their own latest message).
    lo_read: i64,
    hi_read: i64,
    updated_at: DateTime<Utc>,
}

async fn write(
    txn: &DatabaseTransaction,
    batch: &[NewMessage],
    placement: &dyn Placement,
    phases: &mut Phases,
) -> Result<Committed, StoreError> {
    let logical: Vec<u32> = batch
        .iter()
        .map(|m| placement.logical(m.conversation_id))
        .collect();
    let ids: BTreeSet<Uuid> = batch.iter().map(|m| m.conversation_id.0).collect();
    let keys: Vec<Vec<Value>> = ids.iter().map(|id| vec![(*id).into()]).collect();
    let mut counters: HashMap<Uuid, Counter> =
        find_by_keys::<conversations::Entity, _>(txn, &["id"], Lock::ForUpdate, &keys)
            .await
            .map_err(from_db)?
            .into_iter()
            .map(|row| {
                let counter = Counter {
                    members: [UserId(row.user_lo), UserId(row.user_hi)],
                    loaded_seq: row.last_seq,
                    last_seq: row.last_seq,
                    lo_read: row.lo_read_seq,
                    hi_read: row.hi_read_seq,
                    updated_at: row.updated_at,
                };
                (row.id, counter)
            })
            .collect();
    // One ownership fence for the batch: its conversations, and the members whose inboxes
    // it may write inline. Appends to conversations this database gave away are refused (and
    // their rows left alone); the rest go ahead.
    let members: BTreeSet<u32> = counters
        .values()
        .filter_map(|counter| placement.inline(counter.members))
        .flatten()
        .collect();
    let unowned = fence::unowned(txn, logical.iter().copied().chain(members)).await?;
    let refused: Vec<(usize, u32)> = logical
        .iter()
        .enumerate()
        .filter(|(_, l)| unowned.contains(l))
        .map(|(i, l)| (i, *l))
        .collect();
    if !refused.is_empty() {
        counters.retain(|id, _| !unowned.contains(&placement.logical(ConversationId(*id))));
    }
    let mut known = stored_duplicates(txn, batch).await?;

    let mut answers: Vec<Option<AppendOutcome>> = Vec::with_capacity(batch.len());
    // Each new message, with the index of its answer.
    let mut created = Vec::new();
    for new in batch {
        // A conversation the sender is not in is answered as if there were none.
        let Some(counter) = counters
            .get_mut(&new.conversation_id.0)
            .filter(|counter| counter.members.contains(&new.sender_id))
        else {
            answers.push(None);
            continue;
        };
        let key = client_key(new);
        if let Some(original) = known.get(&key) {
            answers.push(Some(Appended::Replayed(original.clone()).into()));
            continue;
        }
        counter.last_seq += 1;
        if counter.members[0] == new.sender_id {
            counter.lo_read = counter.last_seq;
        } else {
            counter.hi_read = counter.last_seq;
        }
        counter.updated_at = new.created_at;
        let message = Message {
            id: new.id,
            conversation_id: new.conversation_id,
            seq: counter.last_seq,
            sender_id: new.sender_id,
            client_msg_id: new.client_msg_id.clone(),
            body: new.body.clone(),
            created_at: new.created_at,
        };
        let event = DurableEvent::new(
            counter.members,
            FeedEventBody::MessageCreated {
                message: message.clone(),
            },
            message.created_at,
        );
        // A second send with this client id later in the batch replays this one.
        known.insert(key, message.clone());
        created.push((answers.len(), message.clone(), event));
        answers.push(Some(Appended::Created(message).into()));
    }

    // Inline only where the members' logical shards are this database's too (fenced above).
    let (delivered_here, queued): (Vec<_>, Vec<_>) = created.iter().partition(|(_, _, event)| {
        placement
            .inline(event.members)
            .is_some_and(|members| members.iter().all(|l| !unowned.contains(l)))
    });
    // Both members' updates of each message delivered here, with the index of its answer.
    let (owners, updates): (Vec<usize>, Vec<InboxUpdate<'_>>) = delivered_here
        .iter()
        .flat_map(|(answer, _, event)| InboxUpdate::for_members(event).map(|u| (*answer, u)))
        .unzip();
    let refs: Vec<&InboxUpdate<'_>> = updates.iter().collect();
    let plan = if refs.is_empty() {
        None
    } else {
        Some(plan_apply(txn, &refs, Origin::SameTransaction).await?)
    };
    let messages: Vec<&Message> = created.iter().map(|(_, message, _)| message).collect();
    let queued: Vec<&DurableEvent> = queued.into_iter().map(|(_, _, event)| event).collect();
    let (inbox_writes, inbox_rows, applied) = match plan {
        Some(plan) => (plan.statements, plan.rows, plan.applied),
        None => (Vec::new(), 0, Vec::new()),
    };
    phases.end("read");
    write_all(txn, &counters, &messages, &queued, inbox_writes, inbox_rows).await?;
    phases.end("write");
    for ((update, applied), owner) in updates.iter().zip(applied).zip(owners) {
        if let (Some(event), Some(outcome)) = (applied, &mut answers[owner]) {
            outcome.delivered.push(Delivered {
                user: update.user,
                event,
            });
        }
    }
    Ok(Committed {
        answers,
        refused,
        outboxed: !queued.is_empty(),
    })
}

/// Messages already stored under a client id of the batch (sent earlier, or by another
/// process): one exact probe of the idempotency index per distinct key.
async fn stored_duplicates(
    txn: &DatabaseTransaction,
    batch: &[NewMessage],
) -> Result<HashMap<ClientKey, Message>, StoreError> {
    let wanted: BTreeSet<ClientKey> = batch.iter().map(client_key).collect();
    let keys: Vec<Vec<Value>> = wanted
        .into_iter()
        .map(|(conversation, sender, client_id)| {
            vec![conversation.into(), sender.into(), client_id.into()]
        })
        .collect();
    let rows = find_by_keys::<messages::Entity, _>(
        txn,
        &["conversation_id", "sender_id", "client_msg_id"],
        Lock::None,
        &keys,
    )
    .await
    .map_err(from_db)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = (
                row.conversation_id,
                row.sender_id,
                row.client_msg_id.clone(),
            );
            (key, to_message(row))
        })
        .collect())
}

/// Writes the batch with a few multi-row statements:
/// the moved conversations' new last seq, read positions and time, the messages, the
/// outbox rows of `queued` in seq order (so the outbox ids follow it), then the inline
/// deliveries' `inbox_writes` (which change `inbox_rows` rows).
///
/// The conversation rows are locked, so their `last_seq` guard can only fail if that
/// assumption is broken; then the batch fails rather than hand out a seq twice. Every other
/// statement changes exactly its rows or fails, so a total short of the rows sent means a
/// guard failed.
async fn write_all(
    txn: &DatabaseTransaction,
    counters: &HashMap<Uuid, Counter>,
    created: &[&Message],
    queued: &[&DurableEvent],
    inbox_writes: Vec<Statement>,
    inbox_rows: u64,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    let moved: Vec<Vec<Value>> = counters
        .iter()
        .filter(|(_, counter)| counter.last_seq != counter.loaded_seq)
        .map(|(id, counter)| {
            vec![
                (*id).into(),
                counter.loaded_seq.into(),
                counter.last_seq.into(),
                counter.lo_read.into(),
                counter.hi_read.into(),
                counter.updated_at.into(),
            ]
        })
        .collect();
    let mut statements = update_by_key(
        backend,
        "conversations",
        &[
            "id",
            "loaded_seq",
            "last_seq",
            "lo_read_seq",
            "hi_read_seq",
            "updated_at",
        ],
        &["last_seq", "lo_read_seq", "hi_read_seq", "updated_at"],
        &[("last_seq", "loaded_seq")],
        &moved,
    );
    for chunk in chunks(created) {
        let messages = chunk.iter().map(|m| messages::ActiveModel {
            id: Set(m.id.0),
            conversation_id: Set(m.conversation_id.0),
            seq: Set(m.seq),
            sender_id: Set(m.sender_id.0),
            client_msg_id: Set(m.client_msg_id.clone()),
            body: Set(m.body.clone()),
            created_at: Set(m.created_at),
        });
        statements.push(messages::Entity::insert_many(messages).build(backend));
    }
    for chunk in chunks(queued) {
        let mut events = Vec::with_capacity(chunk.len());
        for event in chunk {
            events.push(outbox::ActiveModel {
                event_id: Set(event.id),
                payload: Set(serde_json::to_string(event).map_err(from_json)?),
                created_at: Set(event.at),
                ..Default::default()
            });
        }
        statements.push(outbox::Entity::insert_many(events).build(backend));
    }
    statements.extend(inbox_writes);
    let expected = (moved.len() + created.len() + queued.len()) as u64 + inbox_rows;
    let written = execute_all(txn, statements).await.map_err(from_db)?;
    if written != expected {
        return Err(StoreError::Unexpected(anyhow::anyhow!(
            "conversations changed under their row locks ({written} of {expected} rows written)"
        )));
    }
    Ok(())
}
