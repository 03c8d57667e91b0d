//! Feed rows reference the change they record instead of copying it.
//!
//! A feed row now holds only what orders and identifies it: (user, cursor) and (conversation,
//! seq, kind). Replay reads a message by (conversation, seq) from `messages`, and a read
//! receipt is whole from the row itself: `kind` says whose it is (see below) and `seq` is the
//! new read position. What goes:
//! - `payload`, a JSON copy of the event (a copy of the message body for every member);
//! - the index on `created_at`: the pruner finds old events through `user_feeds.oldest_at`
//!   and each user's primary-key range instead.
//!
//! `kind` becomes a small integer: 1 a message, 2 a read receipt of the feed's owner (from
//! another of their devices), 3 a read receipt of the peer. On SQLite the table is rebuilt
//! `WITHOUT ROWID`, so a feed row is one entry of its primary key (plus one of the identity
//! index) instead of a row, a primary-key entry and two index entries.
//!
//! Existing rows are converted in place: the kind from the payload's type and, for a read
//! receipt, from whether its reader is the feed's owner; `oldest_at` from each feed's oldest
//! row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, small_integer, uuid};
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// As every time column of the schema: with a time zone.
fn timestamp(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn timestamp_null(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[derive(DeriveIden)]
enum FeedEvents {
    Table,
    UserId,
    Cursor,
    ConversationId,
    Kind,
    Seq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserFeeds {
    Table,
    OldestAt,
}

/// The table the rows are converted into before it takes the old one's name.
const NEXT: &str = "feed_events_next";
const IDENTITY: &str = "feed_events_identity_by_conversation";
const BY_AGE: &str = "feed_events_by_age";

fn next_table(backend: DbBackend) -> TableCreateStatement {
    let mut table = Table::create();
    table
        .table(Alias::new(NEXT))
        .col(uuid(FeedEvents::UserId))
        .col(big_integer(FeedEvents::Cursor))
        .col(uuid(FeedEvents::ConversationId))
        .col(small_integer(FeedEvents::Kind))
        .col(big_integer(FeedEvents::Seq))
        .col(timestamp(FeedEvents::CreatedAt))
        .primary_key(
            Index::create()
                .col(FeedEvents::UserId)
                .col(FeedEvents::Cursor),
        );
    if backend == DbBackend::Sqlite {
        table.extra("WITHOUT ROWID");
    }
    table.to_owned()
}

/// The old rows, converted: the payload's type and reader give the kind.
fn convert(backend: DbBackend) -> String {
    let owner_reads = match backend {
        DbBackend::Postgres => "(payload::jsonb ->> 'reader_id')::uuid = user_id",
        _ => "replace(json_extract(payload, '$.reader_id'), '-', '') = lower(hex(user_id))",
    };
    format!(
        "INSERT INTO {NEXT} (user_id, \"cursor\", conversation_id, kind, seq, created_at) \
         SELECT user_id, \"cursor\", conversation_id, \
         CASE WHEN kind = 'message.created' THEN 1 WHEN {owner_reads} THEN 2 ELSE 3 END, \
         seq, created_at FROM feed_events"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        // Left by an attempt that stopped half way (SQLite runs a migration's statements
        // without a transaction around them).
        manager
            .drop_table(Table::drop().table(Alias::new(NEXT)).if_exists().to_owned())
            .await?;
        manager.create_table(next_table(backend)).await?;
        db.execute_unprepared(&convert(backend)).await?;
        manager
            .drop_table(Table::drop().table(FeedEvents::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(Alias::new(NEXT), FeedEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(IDENTITY)
                    .table(FeedEvents::Table)
                    .unique()
                    .col(FeedEvents::ConversationId)
                    .col(FeedEvents::Seq)
                    .col(FeedEvents::Kind)
                    .col(FeedEvents::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(UserFeeds::Table)
                    .add_column(timestamp_null(UserFeeds::OldestAt))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "UPDATE user_feeds SET oldest_at = (SELECT min(f.created_at) FROM feed_events f \
             WHERE f.user_id = user_feeds.user_id)",
        )
        .await?;
        Ok(())
    }

    /// Back to copied payloads is not possible without the events' bodies as they were: the
    /// feeds are emptied (clients resynchronise) and the old shape restored.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE user_feeds SET pruned_through = last_cursor, oldest_at = NULL",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(FeedEvents::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(UserFeeds::Table)
                    .drop_column(UserFeeds::OldestAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FeedEvents::Table)
                    .col(uuid(FeedEvents::UserId))
                    .col(big_integer(FeedEvents::Cursor))
                    .col(uuid(FeedEvents::ConversationId))
                    .col(ColumnDef::new(FeedEvents::Kind).text().not_null())
                    .col(big_integer(FeedEvents::Seq))
                    .col(ColumnDef::new(Alias::new("payload")).text().not_null())
                    .col(timestamp(FeedEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(FeedEvents::UserId)
                            .col(FeedEvents::Cursor),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, unique, columns) in [
            (
                IDENTITY,
                true,
                vec![
                    FeedEvents::ConversationId,
                    FeedEvents::Seq,
                    FeedEvents::Kind,
                    FeedEvents::UserId,
                ],
            ),
            (BY_AGE, false, vec![FeedEvents::CreatedAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(FeedEvents::Table);
            if unique {
                index.unique();
            }
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }
}
