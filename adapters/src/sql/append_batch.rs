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
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Value,
};
use uuid::Uuid;

use super::bulk::{chunks, execute_all, update_by_key};
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

    write_all(txn, &counters, &created).await?;
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

/// Writes the batch with a few multi-row statements, sent together (see [`execute_all`]):
/// the moved conversations' new last seq, read positions and time, then the messages and
/// their outbox rows in seq order, so the outbox ids follow it.
///
/// The conversation rows are locked, so their `last_seq` guard can only fail if that
/// assumption is broken; then the batch fails rather than hand out a seq twice. Inserts
/// either add every row or fail, so a total short of the rows sent means a guard failed.
async fn write_all(
    txn: &DatabaseTransaction,
    counters: &HashMap<Uuid, Counter>,
    created: &[(Message, DurableEvent)],
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
        let messages = chunk.iter().map(|(m, _)| messages::ActiveModel {
            id: Set(m.id.0),
            conversation_id: Set(m.conversation_id.0),
            seq: Set(m.seq),
            sender_id: Set(m.sender_id.0),
            client_msg_id: Set(m.client_msg_id.clone()),
            body: Set(m.body.clone()),
            created_at: Set(m.created_at),
        });
        statements.push(messages::Entity::insert_many(messages).build(backend));
        let mut events = Vec::with_capacity(chunk.len());
        for (_, event) in chunk {
            events.push(outbox::ActiveModel {
                event_id: Set(event.id),
                payload: Set(serde_json::to_string(event).map_err(from_json)?),
                created_at: Set(event.at),
                ..Default::default()
            });
        }
        statements.push(outbox::Entity::insert_many(events).build(backend));
    }
    let expected = (moved.len() + 2 * created.len()) as u64;
    let written = execute_all(txn, statements).await.map_err(from_db)?;
    if written != expected {
        return Err(StoreError::Unexpected(anyhow::anyhow!(
            "conversations changed under their row locks ({written} of {expected} rows written)"
        )));
    }
    Ok(())
}
