//! Conversations and their messages in SQL. Appends go through the group-commit writer
//! ([`super::group_commit`]); opening, reading and read positions are plain statements.

use async_trait::async_trait;
use duet_domain::conversations::{
    AppendOutcome, Conversation, ConversationStore, HistoryQuery, MarkedRead, Message, NewMessage,
};
use duet_domain::events::DurableEvent;
use duet_domain::inbox::FeedEventBody;
use duet_domain::{ConversationId, MessageId, StoreError, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tracing::instrument;

use super::entities::{conversations, messages, outbox};
use super::errors::{from_db, from_json};
use super::{SqlStorage, fence};

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`IMMEDIATE`): a deferred transaction that reads first and then writes fails at once
/// with `SQLITE_BUSY` when another process wrote in between, whatever the busy timeout.
pub(super) async fn begin_write(
    db: &DatabaseConnection,
) -> Result<DatabaseTransaction, StoreError> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
    .map_err(from_db)
}

pub(super) fn to_message(row: messages::Model) -> Message {
    Message {
        id: MessageId(row.id),
        conversation_id: ConversationId(row.conversation_id),
        seq: row.seq,
        sender_id: UserId(row.sender_id),
        client_msg_id: row.client_msg_id,
        body: row.body,
        created_at: row.created_at,
    }
}

fn to_conversation(row: conversations::Model) -> Conversation {
    Conversation {
        id: ConversationId(row.id),
        members: [UserId(row.user_lo), UserId(row.user_hi)],
        last_seq: row.last_seq,
        read_seqs: [row.lo_read_seq, row.hi_read_seq],
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The column holding `user`'s read position in a conversation row.
fn read_column(conversation: &Conversation, user: UserId) -> conversations::Column {
    if conversation.members[0] == user {
        conversations::Column::LoReadSeq
    } else {
        conversations::Column::HiReadSeq
    }
}

async fn write_outbox(txn: &DatabaseTransaction, event: &DurableEvent) -> Result<(), StoreError> {
    let payload = serde_json::to_string(event).map_err(from_json)?;
    outbox::Entity::insert(outbox::ActiveModel {
        event_id: Set(event.id),
        payload: Set(payload),
        created_at: Set(event.at),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await
    .map_err(from_db)?;
    Ok(())
}

impl SqlStorage {
    /// See [`ConversationStore::open`].
    async fn open_once(
        &self,
        conversation: &Conversation,
    ) -> Result<(Conversation, bool), StoreError> {
        let route = self.router.for_conversation(conversation.id);
        let txn = begin_write(route.writer()).await?;
        fence::require(&txn, [route.logical]).await?;
        let inserted = conversations::Entity::insert(conversations::ActiveModel {
            id: Set(conversation.id.0),
            user_lo: Set(conversation.members[0].0),
            user_hi: Set(conversation.members[1].0),
            last_seq: Set(0),
            lo_read_seq: Set(0),
            hi_read_seq: Set(0),
            created_at: Set(conversation.created_at),
            updated_at: Set(conversation.updated_at),
        })
        .on_conflict_do_nothing_on([conversations::Column::Id])
        .exec_without_returning(&txn)
        .await
        .map_err(from_db)?;
        let created = matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0);
        let stored = conversations::Entity::find_by_id(conversation.id.0)
            .one(&txn)
            .await
            .map_err(from_db)?
            .map(to_conversation)
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("conversation vanished")))?;
        txn.commit().await.map_err(from_db)?;
        if created {
            route.wrote().await;
        }
        Ok((stored, created))
    }

    /// See [`ConversationStore::mark_read`].
    async fn mark_read_once(
        &self,
        id: ConversationId,
        reader: UserId,
        seq: i64,
    ) -> Result<Option<MarkedRead>, StoreError> {
        let route = self.router.for_conversation(id);
        let txn = begin_write(route.writer()).await?;
        if let Err(err) = fence::require(&txn, [route.logical]).await {
            let _ = txn.rollback().await;
            return Err(err);
        }
        let row = conversations::Entity::find_by_id(id.0)
            .one(&txn)
            .await
            .map_err(from_db)?;
        let conversation = row.map(to_conversation);
        let Some(conversation) = conversation.filter(|c| c.has_member(reader)) else {
            // Say so now: the transaction holds SQLite's write lock until it ends.
            txn.rollback().await.map_err(from_db)?;
            return Ok(None);
        };
        if seq > conversation.last_seq {
            txn.rollback().await.map_err(from_db)?;
            return Ok(Some(MarkedRead::BeyondLast(conversation)));
        }
        let column = read_column(&conversation, reader);
        // Forward only, even against a concurrent reader on another process.
        let moved = conversations::Entity::update_many()
            .col_expr(column, Expr::value(seq))
            .filter(conversations::Column::Id.eq(id.0))
            .filter(column.lt(seq))
            .exec(&txn)
            .await
            .map_err(from_db)?
            .rows_affected
            > 0;
        if moved {
            let event = DurableEvent::new(
                conversation.members,
                FeedEventBody::ConversationRead {
                    conversation_id: id,
                    reader_id: reader,
                    read_seq: seq,
                },
                duet_domain::clock::now(),
            );
            write_outbox(&txn, &event).await?;
        }
        let current = conversations::Entity::find_by_id(id.0)
            .one(&txn)
            .await
            .map_err(from_db)?
            .map(to_conversation)
            .unwrap_or(conversation);
        txn.commit().await.map_err(from_db)?;
        if moved {
            route.wrote().await;
            self.outbox_signal.notify_one();
        }
        Ok(Some(MarkedRead::Done {
            conversation: current,
            moved,
        }))
    }
}

#[async_trait]
impl ConversationStore for SqlStorage {
    async fn open(&self, conversation: Conversation) -> Result<(Conversation, bool), StoreError> {
        self.owned(|| self.open_once(&conversation)).await
    }

    async fn conversation(
        &self,
        id: ConversationId,
        member: UserId,
    ) -> Result<Option<Conversation>, StoreError> {
        Ok(self
            .router
            .for_conversation(id)
            .find(|db| async move {
                conversations::Entity::find_by_id(id.0)
                    .filter(
                        Condition::any()
                            .add(conversations::Column::UserLo.eq(member.0))
                            .add(conversations::Column::UserHi.eq(member.0)),
                    )
                    .one(&db)
                    .await
            })
            .await
            .map_err(from_db)?
            .map(to_conversation))
    }

    /// Through the conversation's database's group-commit writer: see [`super::group_commit`].
    #[instrument(skip_all, fields(conversation = %new.conversation_id))]
    async fn append(&self, new: NewMessage) -> Result<Option<AppendOutcome>, StoreError> {
        self.owned(|| async {
            let shard = self
                .router
                .for_conversation(new.conversation_id)
                .shard
                .index;
            self.group_commit[shard].append(new.clone()).await
        })
        .await
    }

    #[instrument(skip(self))]
    async fn mark_read(
        &self,
        id: ConversationId,
        reader: UserId,
        seq: i64,
    ) -> Result<Option<MarkedRead>, StoreError> {
        self.owned(|| self.mark_read_once(id, reader, seq)).await
    }

    async fn history(
        &self,
        id: ConversationId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        let mut select = messages::Entity::find().filter(messages::Column::ConversationId.eq(id.0));
        if let Some(before) = query.before_seq {
            select = select.filter(messages::Column::Seq.lt(before));
        }
        select = match query.after_seq {
            Some(after) => select
                .filter(messages::Column::Seq.gt(after))
                .order_by_asc(messages::Column::Seq),
            None => select.order_by_desc(messages::Column::Seq),
        };
        let select = select.limit(u64::from(query.limit) + 1);
        Ok(self
            .router
            .for_conversation(id)
            .read(|db| {
                let select = select.clone();
                async move { select.all(&db).await }
            })
            .await
            .map_err(from_db)?
            .into_iter()
            .map(to_message)
            .collect())
    }

    async fn message(&self, id: ConversationId, seq: i64) -> Result<Option<Message>, StoreError> {
        Ok(self
            .router
            .for_conversation(id)
            .find(|db| async move {
                messages::Entity::find()
                    .filter(messages::Column::ConversationId.eq(id.0))
                    .filter(messages::Column::Seq.eq(seq))
                    .one(&db)
                    .await
            })
            .await
            .map_err(from_db)?
            .map(to_message))
    }
}
