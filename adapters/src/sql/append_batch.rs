//! The SQL half of group commit: a batch of appends to one database in ONE transaction,
//! with every guarantee a single append has (gap-free seq per conversation, dedupe on
//! (conversation, sender, client_msg_id), the outbox row beside each message).
//!
//! Conversation rows are locked first, in id order (`FOR UPDATE` on PostgreSQL; SQLite's
//! immediate transaction holds the whole file), so the dedupe read that follows sees every
//! message another process committed before us, and two batches never wait on each other in
//! a cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use duet_domain::conversations::{Message, NewMessage};
use duet_domain::events::DurableEvent;
use duet_domain::inbox::FeedEventBody;
use duet_domain::{StoreError, UserId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use super::bulk::{chunk_len, update_by_key};
use super::conversations::{begin_write, to_message};
use super::entities::{conversations, messages, outbox};
use super::errors::{from_db, from_json};

/// What one append of the batch comes to.
#[derive(Debug)]
pub(super) enum Answer {
    Created(Message),
    Replayed(Message),
    /// The conversation does not exist, or the sender is not in it.
    Missing,
}

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

/// Appends `batch` in one transaction; the answers are in the batch's order.
pub(super) async fn append_batch(
    db: &DatabaseConnection,
    batch: &[NewMessage],
) -> Result<Vec<Answer>, BatchFailure> {
    let txn = begin_write(db).await.map_err(BatchFailure::Statement)?;
    let answers = match write(&txn, batch).await {
        Ok(answers) => answers,
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
    Ok(answers)
}

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

async fn write(txn: &DatabaseTransaction, batch: &[NewMessage]) -> Result<Vec<Answer>, StoreError> {
    let ids: BTreeSet<Uuid> = batch.iter().map(|m| m.conversation_id.0).collect();
    let mut counters: HashMap<Uuid, Counter> = conversations::Entity::find()
        .filter(conversations::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(conversations::Column::Id)
        .lock_exclusive()
        .all(txn)
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
    let mut known = stored_duplicates(txn, batch).await?;

    let mut answers = Vec::with_capacity(batch.len());
    let mut created = Vec::new();
    for new in batch {
        // A conversation the sender is not in is answered as if there were none.
        let Some(counter) = counters
            .get_mut(&new.conversation_id.0)
            .filter(|counter| counter.members.contains(&new.sender_id))
        else {
            answers.push(Answer::Missing);
            continue;
        };
        let key = client_key(new);
        if let Some(original) = known.get(&key) {
            answers.push(Answer::Replayed(original.clone()));
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
        answers.push(Answer::Created(message.clone()));
        created.push((message, event));
    }

    move_counters(txn, &counters).await?;
    insert_messages(txn, &created).await?;
    Ok(answers)
}

/// Messages already stored under a client id of the batch (sent earlier, or by another
/// process). One disjunct per (conversation, sender) with that pair's client ids: each is
/// an exact probe of the unique index, where independent IN lists per column would make
/// the database probe their whole cross product.
async fn stored_duplicates(
    txn: &DatabaseTransaction,
    batch: &[NewMessage],
) -> Result<HashMap<ClientKey, Message>, StoreError> {
    let mut groups: BTreeMap<(Uuid, Uuid), BTreeSet<&str>> = BTreeMap::new();
    for m in batch {
        groups
            .entry((m.conversation_id.0, m.sender_id.0))
            .or_default()
            .insert(m.client_msg_id.as_str());
    }
    let mut any = Condition::any();
    for ((conversation, sender), client_ids) in groups {
        any = any.add(
            Condition::all()
                .add(messages::Column::ConversationId.eq(conversation))
                .add(messages::Column::SenderId.eq(sender))
                .add(messages::Column::ClientMsgId.is_in(client_ids)),
        );
    }
    let rows = messages::Entity::find()
        .filter(any)
        .all(txn)
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

/// Writes the moved conversations' new last seq, read positions and time, in one statement
/// (per chunk). The rows are locked, so the `last_seq` guard can only fail if that
/// assumption is broken; then the batch fails rather than hand out a seq twice.
async fn move_counters(
    txn: &DatabaseTransaction,
    counters: &HashMap<Uuid, Counter>,
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Value>> = counters
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
    let expected = rows.len() as u64;
    if expected == 0 {
        return Ok(());
    }
    let moved = update_by_key(
        txn,
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
        rows,
    )
    .await
    .map_err(from_db)?;
    if moved != expected {
        return Err(StoreError::Unexpected(anyhow::anyhow!(
            "{} of {expected} conversations changed under their row locks",
            expected - moved
        )));
    }
    Ok(())
}

/// Inserts the messages and their outbox rows with multi-row INSERTs, in seq order so the
/// outbox ids follow it.
async fn insert_messages(
    txn: &DatabaseTransaction,
    created: &[(Message, DurableEvent)],
) -> Result<(), StoreError> {
    let mut rest = created;
    while !rest.is_empty() {
        let take = chunk_len(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        messages::Entity::insert_many(chunk.iter().map(|(m, _)| messages::ActiveModel {
            id: Set(m.id.0),
            conversation_id: Set(m.conversation_id.0),
            seq: Set(m.seq),
            sender_id: Set(m.sender_id.0),
            client_msg_id: Set(m.client_msg_id.clone()),
            body: Set(m.body.clone()),
            created_at: Set(m.created_at),
        }))
        .exec_without_returning(txn)
        .await
        .map_err(from_db)?;
        let mut rows = Vec::with_capacity(chunk.len());
        for (_, event) in chunk {
            rows.push(outbox::ActiveModel {
                event_id: Set(event.id),
                payload: Set(serde_json::to_string(event).map_err(from_json)?),
                created_at: Set(event.at),
                ..Default::default()
            });
        }
        outbox::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(from_db)?;
    }
    Ok(())
}
