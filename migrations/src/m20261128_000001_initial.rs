use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Handle,
    DisplayName,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Handles {
    Table,
    Handle,
    UserId,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum UserFeeds {
    Table,
    UserId,
    LastCursor,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    UserLo,
    UserHi,
    LastSeq,
    LoReadSeq,
    HiReadSeq,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ConversationId,
    Seq,
    SenderId,
    ClientMsgId,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    EventId,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum InboxEntries {
    Table,
    UserId,
    ConversationId,
    PeerId,
    LastSeq,
    ReadSeq,
    PeerReadSeq,
    LastMessage,
    Version,
    Activity,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FeedEvents {
    Table,
    UserId,
    Cursor,
    ConversationId,
    Kind,
    Seq,
    Payload,
    CreatedAt,
}

fn uuid(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}

fn bigint(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

fn timestamp(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    // Not unique here: the `handles` table (on the handle's shard) is the
                    // authority, and a user row whose claim lost a race may linger.
                    .col(text(Users::Handle))
                    .col(text(Users::DisplayName))
                    .col(text(Users::PasswordHash))
                    .col(timestamp(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Handles::Table)
                    .if_not_exists()
                    .col(text(Handles::Handle).primary_key())
                    .col(uuid(Handles::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(text(Sessions::TokenHash).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(timestamp(Sessions::CreatedAt))
                    .col(timestamp(Sessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_by_user")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserFeeds::Table)
                    .if_not_exists()
                    .col(uuid(UserFeeds::UserId).primary_key())
                    .col(bigint(UserFeeds::LastCursor))
                    .col(bigint(UserFeeds::PrunedThrough))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .if_not_exists()
                    .col(uuid(Conversations::Id).primary_key())
                    .col(uuid(Conversations::UserLo))
                    .col(uuid(Conversations::UserHi))
                    .col(bigint(Conversations::LastSeq))
                    .col(bigint(Conversations::LoReadSeq))
                    .col(bigint(Conversations::HiReadSeq))
                    .col(timestamp(Conversations::CreatedAt))
                    .col(timestamp(Conversations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(uuid(Messages::Id).primary_key())
                    .col(uuid(Messages::ConversationId))
                    .col(bigint(Messages::Seq))
                    .col(uuid(Messages::SenderId))
                    .col(text(Messages::ClientMsgId))
                    .col(text(Messages::Body))
                    .col(timestamp(Messages::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // History reads by (conversation, seq); the unique index also proves seq is never
        // assigned twice.
        manager
            .create_index(
                Index::create()
                    .name("messages_by_seq")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::Seq)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The idempotency key: one message per (conversation, sender, client_msg_id).
        manager
            .create_index(
                Index::create()
                    .name("messages_by_client_id")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMsgId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Outbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid(Outbox::EventId))
                    .col(text(Outbox::Payload))
                    .col(timestamp(Outbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboxEntries::Table)
                    .if_not_exists()
                    .col(uuid(InboxEntries::UserId))
                    .col(uuid(InboxEntries::ConversationId))
                    .col(uuid(InboxEntries::PeerId))
                    .col(bigint(InboxEntries::LastSeq))
                    .col(bigint(InboxEntries::ReadSeq))
                    .col(bigint(InboxEntries::PeerReadSeq))
                    .col(ColumnDef::new(InboxEntries::LastMessage).text().null())
                    .col(bigint(InboxEntries::Version))
                    .col(bigint(InboxEntries::Activity))
                    .col(timestamp(InboxEntries::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(InboxEntries::UserId)
                            .col(InboxEntries::ConversationId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbox_by_version")
                    .table(InboxEntries::Table)
                    .col(InboxEntries::UserId)
                    .col(InboxEntries::Version)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbox_by_activity")
                    .table(InboxEntries::Table)
                    .col(InboxEntries::UserId)
                    .col(InboxEntries::Activity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FeedEvents::Table)
                    .if_not_exists()
                    .col(uuid(FeedEvents::UserId))
                    .col(bigint(FeedEvents::Cursor))
                    .col(uuid(FeedEvents::ConversationId))
                    .col(text(FeedEvents::Kind))
                    .col(bigint(FeedEvents::Seq))
                    .col(text(FeedEvents::Payload))
                    .col(timestamp(FeedEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(FeedEvents::UserId)
                            .col(FeedEvents::Cursor),
                    )
                    .to_owned(),
            )
            .await?;
        // Applying an event twice must not append it twice.
        manager
            .create_index(
                Index::create()
                    .name("feed_events_identity")
                    .table(FeedEvents::Table)
                    .col(FeedEvents::UserId)
                    .col(FeedEvents::ConversationId)
                    .col(FeedEvents::Kind)
                    .col(FeedEvents::Seq)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("feed_events_by_age")
                    .table(FeedEvents::Table)
                    .col(FeedEvents::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FeedEvents::Table.into_iden(),
            InboxEntries::Table.into_iden(),
            Outbox::Table.into_iden(),
            Messages::Table.into_iden(),
            Conversations::Table.into_iden(),
            UserFeeds::Table.into_iden(),
            Sessions::Table.into_iden(),
            Handles::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
