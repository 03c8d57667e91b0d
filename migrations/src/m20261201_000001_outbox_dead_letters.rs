//! Outbox entries whose delivery kept failing are moved here by the relay, so the entries
//! behind them flow again and an operator can look at (and replay) them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxDeadLetters {
    Table,
    Id,
    EventId,
    Payload,
    CreatedAt,
    FailedAt,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxDeadLetters::Table)
                    .if_not_exists()
                    // The outbox row's own id: an entry is set aside at most once.
                    .col(
                        ColumnDef::new(OutboxDeadLetters::Id)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OutboxDeadLetters::EventId).uuid().not_null())
                    .col(ColumnDef::new(OutboxDeadLetters::Payload).text().not_null())
                    .col(
                        ColumnDef::new(OutboxDeadLetters::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxDeadLetters::FailedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxDeadLetters::Error).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(OutboxDeadLetters::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
