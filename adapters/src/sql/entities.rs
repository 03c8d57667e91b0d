//! sea-orm entities, one module per table. Rows convert to domain types in the modules that
//! use them; nothing outside `sql` sees these types.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod users {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub handle: String,
        pub display_name: String,
        pub password_hash: String,
        pub created_at: DateTimeUtc,
        /// False until the handle claim points at this row; see `AccountStore::create_user`.
        pub claimed: bool,
    }
    no_relations!();
}

pub mod handles {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "handles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub handle: String,
        pub user_id: Uuid,
    }
    no_relations!();
}

pub mod sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub user_id: Uuid,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod user_feeds {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_feeds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub last_cursor: i64,
        pub pruned_through: i64,
        /// When the oldest event still in the feed was added (`None` when it is empty): the
        /// pruner visits only feeds holding something older than the retention.
        pub oldest_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod conversations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_lo: Uuid,
        pub user_hi: Uuid,
        pub last_seq: i64,
        pub lo_read_seq: i64,
        pub hi_read_seq: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub conversation_id: Uuid,
        pub seq: i64,
        pub sender_id: Uuid,
        pub client_msg_id: String,
        pub body: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub event_id: Uuid,
        pub payload: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod inbox_entries {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inbox_entries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        pub peer_id: Uuid,
        pub last_seq: i64,
        pub read_seq: i64,
        pub peer_read_seq: i64,
        pub last_message: Option<String>,
        pub version: i64,
        pub activity: i64,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod feed_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "feed_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub cursor: i64,
        pub conversation_id: Uuid,
        /// See `super::super::feed::FeedKind`.
        pub kind: i16,
        pub seq: i64,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}
