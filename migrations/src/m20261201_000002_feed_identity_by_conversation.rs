//! The feed's identity index leads with the conversation instead of the user.
//!
//! A message adds one feed row for each of its two members. Keyed by user first, those two
//! rows (and every other message of the conversation in the same commit) land on leaf pages
//! of their own; keyed by conversation and seq first, they share one. Lookups match all
//! four columns, so the order changes what a write touches, not what a read finds.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeedEvents {
    Table,
    UserId,
    ConversationId,
    Kind,
    Seq,
}

const BY_USER: &str = "feed_events_identity";
const BY_CONVERSATION: &str = "feed_events_identity_by_conversation";

fn identity(name: &str, columns: [FeedEvents; 4]) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(FeedEvents::Table)
        .unique()
        .if_not_exists();
    for column in columns {
        index.col(column);
    }
    index.to_owned()
}

async fn replace(
    manager: &SchemaManager<'_>,
    old: &str,
    new: IndexCreateStatement,
) -> Result<(), DbErr> {
    // Create first: applying an event twice must never find the table without the index.
    manager.create_index(new).await?;
    manager
        .drop_index(
            Index::drop()
                .name(old)
                .table(FeedEvents::Table)
                .if_exists()
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use FeedEvents::{ConversationId, Kind, Seq, UserId};
        replace(
            manager,
            BY_USER,
            identity(BY_CONVERSATION, [ConversationId, Seq, Kind, UserId]),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use FeedEvents::{ConversationId, Kind, Seq, UserId};
        replace(
            manager,
            BY_CONVERSATION,
            identity(BY_USER, [UserId, ConversationId, Kind, Seq]),
        )
        .await
    }
}
