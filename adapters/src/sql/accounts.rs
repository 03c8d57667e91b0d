use std::collections::BTreeMap;

use async_trait::async_trait;
use duet_domain::accounts::{AccountStore, CreatedUser, Handle, NewUser, Session, User};
use duet_domain::{StoreError, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait, TryInsertResult,
};
use tracing::instrument;

use super::entities::{handles, sessions, user_feeds, users};
use super::errors::from_db;
use super::{SqlStorage, fence};

fn to_user(row: users::Model) -> User {
    User {
        id: UserId(row.id),
        handle: Handle::from_trusted(row.handle),
        display_name: row.display_name,
        created_at: row.created_at,
    }
}

impl SqlStorage {
    /// Writes the account row (unclaimed) and its feed on the user's shard.
    async fn insert_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let route = self.router.for_user(user.id);
        let txn = route.writer().begin().await.map_err(from_db)?;
        fence::require(&txn, [route.logical]).await?;
        users::Entity::insert(users::ActiveModel {
            id: Set(user.id.0),
            handle: Set(user.handle.as_str().to_owned()),
            display_name: Set(user.display_name.clone()),
            password_hash: Set(password_hash.to_owned()),
            created_at: Set(user.created_at),
            claimed: Set(false),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(from_db)?;
        user_feeds::Entity::insert(user_feeds::ActiveModel {
            user_id: Set(user.id.0),
            last_cursor: Set(0),
            pruned_through: Set(0),
            oldest_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(from_db)?;
        txn.commit().await.map_err(from_db)?;
        route.wrote().await;
        Ok(())
    }

    /// Claims `handle` for `user` on the handle's shard; false when another user holds it.
    async fn claim_handle(&self, handle: &Handle, user: UserId) -> Result<bool, StoreError> {
        let route = self.router.for_handle(handle);
        let txn = route.writer().begin().await.map_err(from_db)?;
        fence::require(&txn, [route.logical]).await?;
        let claimed = handles::Entity::insert(handles::ActiveModel {
            handle: Set(handle.as_str().to_owned()),
            user_id: Set(user.0),
        })
        .on_conflict_do_nothing_on([handles::Column::Handle])
        .exec(&txn)
        .await
        .map_err(from_db)?;
        txn.commit().await.map_err(from_db)?;
        let claimed = !matches!(claimed, TryInsertResult::Conflicted);
        if claimed {
            route.wrote().await;
        }
        Ok(claimed)
    }

    /// Marks `user`'s row as reachable through its handle.
    async fn set_claimed(&self, user: UserId) -> Result<(), StoreError> {
        let route = self.router.for_user(user);
        let txn = route.writer().begin().await.map_err(from_db)?;
        fence::require(&txn, [route.logical]).await?;
        users::Entity::update_many()
            .col_expr(users::Column::Claimed, Expr::value(true))
            .filter(users::Column::Id.eq(user.0))
            .exec(&txn)
            .await
            .map_err(from_db)?;
        txn.commit().await.map_err(from_db)
    }

    /// Deletes a user whose handle could not be claimed. Best effort: a row left behind is
    /// unreachable (no handle points at it) and the sweep removes it later.
    async fn forget_user(&self, id: UserId) {
        let forgotten = self
            .owned(|| async {
                let route = self.router.for_user(id);
                let txn = route.writer().begin().await.map_err(from_db)?;
                fence::require(&txn, [route.logical]).await?;
                user_feeds::Entity::delete_by_id(id.0)
                    .exec(&txn)
                    .await
                    .map_err(from_db)?;
                users::Entity::delete_by_id(id.0)
                    .exec(&txn)
                    .await
                    .map_err(from_db)?;
                txn.commit().await.map_err(from_db)
            })
            .await;
        if let Err(error) = forgotten {
            tracing::warn!(user = %id, %error, "cannot delete a user whose handle was taken");
        }
    }
}

#[async_trait]
impl AccountStore for SqlStorage {
    #[instrument(skip_all, fields(handle = new.user.handle.as_str()))]
    async fn create_user(&self, new: NewUser) -> Result<CreatedUser, StoreError> {
        let user = new.user;
        // The user row first (unclaimed), the handle claim second (on the handle's shard,
        // which decides races), then the row is marked claimed. Until the handle points at
        // the user nobody can reach the row, so a crash in between leaves an unreachable,
        // unclaimed row that the sweep removes, never a handle that points at nobody.
        self.owned(|| self.insert_user(&user, &new.password_hash))
            .await?;
        let claimed = match self
            .owned(|| self.claim_handle(&user.handle, user.id))
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                self.forget_user(user.id).await;
                return Err(err);
            }
        };
        if !claimed {
            self.forget_user(user.id).await;
            return Ok(CreatedUser::HandleTaken);
        }
        if let Err(error) = self.owned(|| self.set_claimed(user.id)).await {
            // The handle points at the row, so it is reachable: the sweep checks the claim
            // before it deletes anything.
            tracing::warn!(user = %user.id, %error, "cannot mark a registered user as claimed");
        }
        Ok(CreatedUser::Created(user))
    }

    async fn remove_unclaimed_users(
        &self,
        registered_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for shard in self.router.shards() {
            let unclaimed = users::Entity::find()
                .filter(users::Column::Claimed.eq(false))
                .filter(users::Column::CreatedAt.lt(registered_before))
                .all(&shard.writer)
                .await
                .map_err(from_db)?;
            for row in unclaimed {
                let id = UserId(row.id);
                let handle = Handle::from_trusted(row.handle);
                // A registration that stopped after its claim: the row is live.
                if self.user_id_by_handle(&handle).await? == Some(id) {
                    self.owned(|| self.set_claimed(id)).await?;
                    continue;
                }
                self.forget_user(id).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self
            .router
            .for_user(id)
            .find(|db| async move { users::Entity::find_by_id(id.0).one(&db).await })
            .await
            .map_err(from_db)?
            .map(to_user))
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let mut by_shard: BTreeMap<usize, (Vec<uuid::Uuid>, Vec<usize>)> = BTreeMap::new();
        for id in ids {
            let route = self.router.for_user(*id);
            let (ids, slots) = by_shard.entry(route.shard.index).or_default();
            ids.push(id.0);
            slots.push(route.slot);
        }
        let mut found = Vec::with_capacity(ids.len());
        for (index, (ids, slots)) in by_shard {
            let rows = self
                .router
                .shard(index)
                .read(&slots, |db| {
                    let ids = ids.clone();
                    async move {
                        users::Entity::find()
                            .filter(users::Column::Id.is_in(ids))
                            .all(&db)
                            .await
                    }
                })
                .await
                .map_err(from_db)?;
            // Ids a replica did not know yet (users registered through another process)
            // are asked again of the primary.
            let missing: Vec<_> = ids
                .iter()
                .filter(|id| !rows.iter().any(|row| row.id == **id))
                .copied()
                .collect();
            if !missing.is_empty() {
                let late = users::Entity::find()
                    .filter(users::Column::Id.is_in(missing))
                    .all(&self.router.shard(index).writer)
                    .await
                    .map_err(from_db)?;
                found.extend(late.into_iter().map(to_user));
            }
            found.extend(rows.into_iter().map(to_user));
        }
        Ok(found)
    }

    async fn user_id_by_handle(&self, handle: &Handle) -> Result<Option<UserId>, StoreError> {
        let key = handle.as_str();
        Ok(self
            .router
            .for_handle(handle)
            .find(|db| async move { handles::Entity::find_by_id(key).one(&db).await })
            .await
            .map_err(from_db)?
            .map(|row| UserId(row.user_id)))
    }

    async fn credentials(&self, handle: &Handle) -> Result<Option<(User, String)>, StoreError> {
        let Some(id) = self.user_id_by_handle(handle).await? else {
            return Ok(None);
        };
        Ok(self
            .router
            .for_user(id)
            .find(|db| async move { users::Entity::find_by_id(id.0).one(&db).await })
            .await
            .map_err(from_db)?
            .map(|row| {
                let hash = row.password_hash.clone();
                (to_user(row), hash)
            }))
    }

    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.owned(|| async {
            let route = self.router.for_user(session.user_id);
            let txn = route.writer().begin().await.map_err(from_db)?;
            fence::require(&txn, [route.logical]).await?;
            sessions::Entity::insert(sessions::ActiveModel {
                token_hash: Set(session.token_hash.clone()),
                user_id: Set(session.user_id.0),
                created_at: Set(session.created_at),
                expires_at: Set(session.expires_at),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(from_db)?;
            txn.commit().await.map_err(from_db)?;
            route.wrote().await;
            Ok(())
        })
        .await
    }

    async fn session(&self, user: UserId, token_hash: &str) -> Result<Option<Session>, StoreError> {
        // Always the primary: a revoked token must stop working at once on every process,
        // and write marks are per process, so a lagging replica could still show it.
        let route = self.router.for_user(user);
        let query = sessions::Entity::find_by_id(token_hash)
            .filter(sessions::Column::UserId.eq(user.0))
            .one(route.writer());
        Ok(route
            .shard
            .read_primary(query)
            .await
            .map_err(from_db)?
            .map(|row| Session {
                user_id: UserId(row.user_id),
                token_hash: row.token_hash,
                created_at: row.created_at,
                expires_at: row.expires_at,
            }))
    }

    async fn delete_session(&self, user: UserId, token_hash: &str) -> Result<(), StoreError> {
        self.owned(|| async {
            let route = self.router.for_user(user);
            let txn = route.writer().begin().await.map_err(from_db)?;
            fence::require(&txn, [route.logical]).await?;
            sessions::Entity::delete_many()
                .filter(sessions::Column::TokenHash.eq(token_hash))
                .filter(sessions::Column::UserId.eq(user.0))
                .exec(&txn)
                .await
                .map_err(from_db)?;
            txn.commit().await.map_err(from_db)?;
            route.wrote().await;
            Ok(())
        })
        .await
    }

    async fn delete_expired_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for shard in self.router.shards() {
            deleted += sessions::Entity::delete_many()
                .filter(sessions::Column::ExpiresAt.lt(now))
                .exec(&shard.writer)
                .await
                .map_err(from_db)?
                .rows_affected;
        }
        Ok(deleted)
    }
}
