//! What one baseline writer does: open its own conversation, then commit messages into it,
//! writing exactly the rows Duet's send writes with inline delivery.

use chrono::Utc;
use duet_adapters::sql::{FeedKind, update_by_key};
use duet_domain::conversations::Message;
use duet_domain::{ConversationId, MessageId, UserId};
use sea_orm::sea_query::{Alias, OnConflict, Query};
use sea_orm::{ConnectionTrait, TransactionTrait, Value};
use uuid::Uuid;

use super::scratch::Baseline;

/// One writer's conversation and the positions it has handed out, so that a send needs no
/// read: the baseline measures writes only.
#[derive(Debug)]
pub struct BaselinePair {
    conversation: Uuid,
    /// The two members, lower id first (as Duet stores them); the first one sends.
    members: [Uuid; 2],
    pub(super) last_seq: i64,
    cursors: [i64; 2],
    versions: [i64; 2],
}

impl Baseline {
    /// A writer's own conversation between two new users, stored as Duet stores one (the
    /// conversation row and the two users' feed rows), so that sends can start.
    ///
    /// # Errors
    /// When the database is unreachable or busy past its timeout, or refuses the rows.
    pub async fn open_pair(&self) -> anyhow::Result<BaselinePair> {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let members = if a < b { [a, b] } else { [b, a] };
        let pair = BaselinePair {
            conversation: Uuid::now_v7(),
            members,
            last_seq: 0,
            cursors: [0, 0],
            versions: [0, 0],
        };
        let now = Utc::now();
        let mut conversation = Query::insert();
        conversation
            .into_table(Alias::new(self.scratch("conversations")))
            .columns(
                [
                    "id",
                    "user_lo",
                    "user_hi",
                    "last_seq",
                    "lo_read_seq",
                    "hi_read_seq",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values([
                pair.conversation.into(),
                members[0].into(),
                members[1].into(),
                0i64.into(),
                0i64.into(),
                0i64.into(),
                now.into(),
                now.into(),
            ])?;
        let mut feeds = Query::insert();
        feeds
            .into_table(Alias::new(self.scratch("user_feeds")))
            .columns(["user_id", "last_cursor", "pruned_through"].map(Alias::new));
        for member in members {
            feeds.values([member.into(), 0i64.into(), 0i64.into()])?;
        }
        let txn = self.db.begin().await?;
        txn.execute(&conversation).await?;
        txn.execute(&feeds).await?;
        txn.commit().await?;
        Ok(pair)
    }

    /// Commits `count` messages from the pair's first member in one transaction, writing the
    /// rows Duet's send writes for them with inline delivery: the message rows, the
    /// conversation's new last seq and read position, both members' feed events and feed
    /// cursors, and both inbox entries (upserted). Positions come from `pair`, not from reads;
    /// like Duet's batches, a row written several times in one transaction is written once,
    /// with its final value.
    ///
    /// # Errors
    /// When the database is unreachable or busy past its timeout, refuses a row (a repeated
    /// seq breaks a unique index) or changes another number of rows than due; the pair's
    /// positions have moved either way.
    pub async fn send(
        &self,
        pair: &mut BaselinePair,
        count: usize,
        body: &str,
    ) -> anyhow::Result<()> {
        if count == 0 {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let now = Utc::now();
        let sender = pair.members[0];
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            pair.last_seq += 1;
            messages.push(Message {
                id: MessageId(Uuid::now_v7()),
                conversation_id: ConversationId(pair.conversation),
                seq: pair.last_seq,
                sender_id: UserId(sender),
                client_msg_id: format!("baseline-{}", pair.last_seq),
                body: body.to_owned(),
                created_at: now,
            });
        }
        let mut statements = update_by_key(
            backend,
            &self.scratch("conversations"),
            &["id", "last_seq", "lo_read_seq", "updated_at"],
            &["last_seq", "lo_read_seq", "updated_at"],
            &[],
            &[vec![
                pair.conversation.into(),
                pair.last_seq.into(),
                pair.last_seq.into(),
                now.into(),
            ]],
        );
        let mut inserted = Query::insert();
        inserted
            .into_table(Alias::new(self.scratch("messages")))
            .columns(
                [
                    "id",
                    "conversation_id",
                    "seq",
                    "sender_id",
                    "client_msg_id",
                    "body",
                    "created_at",
                ]
                .map(Alias::new),
            );
        let mut events = Query::insert();
        events
            .into_table(Alias::new(self.scratch("feed_events")))
            .columns(
                [
                    "user_id",
                    "cursor",
                    "conversation_id",
                    "kind",
                    "seq",
                    "created_at",
                ]
                .map(Alias::new),
            );
        for message in &messages {
            inserted.values([
                message.id.0.into(),
                pair.conversation.into(),
                message.seq.into(),
                sender.into(),
                message.client_msg_id.clone().into(),
                message.body.clone().into(),
                now.into(),
            ])?;
            for (member, cursor) in pair.members.iter().zip(&mut pair.cursors) {
                *cursor += 1;
                events.values([
                    (*member).into(),
                    (*cursor).into(),
                    pair.conversation.into(),
                    FeedKind::Message.code().into(),
                    message.seq.into(),
                    now.into(),
                ])?;
            }
        }
        let cursors: Vec<Vec<Value>> = pair
            .members
            .iter()
            .zip(pair.cursors)
            .map(|(member, cursor)| vec![(*member).into(), cursor.into(), now.into()])
            .collect();
        statements.extend(update_by_key(
            backend,
            &self.scratch("user_feeds"),
            &["user_id", "last_cursor", "oldest_at"],
            &["last_cursor", "oldest_at"],
            &[],
            &cursors,
        ));
        let last = messages.last().map(serde_json::to_string).transpose()?;
        let entry_columns = [
            "user_id",
            "conversation_id",
            "peer_id",
            "last_seq",
            "read_seq",
            "peer_read_seq",
            "last_message",
            "version",
            "activity",
            "updated_at",
        ];
        let mut entries = Query::insert();
        entries
            .into_table(Alias::new(self.scratch("inbox_entries")))
            .columns(entry_columns.map(Alias::new))
            .on_conflict(
                OnConflict::columns(["user_id", "conversation_id"].map(Alias::new))
                    .update_columns(entry_columns[3..].iter().map(|c| Alias::new(*c)))
                    .to_owned(),
            );
        for (i, version) in pair.versions.iter_mut().enumerate() {
            *version += 1;
            // The sender has read its own message; the peer sees it as read by the sender.
            let (read, peer_read) = if i == 0 {
                (pair.last_seq, 0)
            } else {
                (0, pair.last_seq)
            };
            entries.values([
                pair.members[i].into(),
                pair.conversation.into(),
                pair.members[1 - i].into(),
                pair.last_seq.into(),
                read.into(),
                peer_read.into(),
                last.clone().into(),
                (*version).into(),
                (*version).into(),
                now.into(),
            ])?;
        }
        let txn = self.db.begin().await?;
        let mut written = 0;
        for statement in statements {
            written += txn.execute_raw(statement).await?.rows_affected();
        }
        for insert in [&inserted, &events, &entries] {
            written += txn.execute(insert).await?.rows_affected();
        }
        // Conversation, messages, two cursors, two feed rows per message, two entries.
        let expected = (1 + count + 2 + 2 * count + 2) as u64;
        if written != expected {
            anyhow::bail!("the baseline wrote {written} rows where {expected} were due");
        }
        Ok(txn.commit().await?)
    }
}
