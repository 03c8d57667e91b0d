//! Moving a logical shard from one physical shard to another while both keep serving, and
//! what `duet shards status` shows.
//!
//! A move goes through steps recorded in `shard_moves` on the directory (the first physical
//! shard), so running it again after an interruption resumes at the step it reached:
//!
//! 1. `copying`: the logical shard's rows are copied to the target while the source keeps
//!    taking writes (append-only tables from where the target's copy ends, the rest upserted).
//! 2. `fenced`: the source fences the logical shard (under the exclusive advisory lock every
//!    write of it share-locks, so writes in flight finish first and later ones are refused
//!    and retried), its outbox events written before the fence are handed off (so delivery
//!    order holds across the switch), and the rows changed since the copy are copied again.
//! 3. `switched`: the target owns the logical shard, the directory names it with a new map
//!    version (in one transaction with the step), the source forgets it. Processes learn of
//!    it when their map refreshes or when the source refuses them.
//! 4. After a grace period (every process has refreshed its map by then), the source's copy
//!    is deleted and the move record with it.
//!
//! Writes to other logical shards never wait; writes to the moving one wait (retrying) only
//! between the fence and the switch. `abort` rolls a move back while it has not switched.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, Value,
};
use uuid::Uuid;

use super::SqlStorage;
use super::entities::{
    conversations, feed_events, handles, inbox_entries, messages, sessions, user_feeds, users,
};
use super::inbox_batch::upsert_entry;
use super::router::{Shard, ShardMap, logical_shard};
use super::shard_map::{insert_owned, placeholder, scalar, statement};

/// Rows read or written per statement while copying.
const COPY_ROWS: u64 = 1000;

/// Keys per `IN` list.
const KEYS_PER_QUERY: usize = 500;

/// Longest wait for the source's relay to hand off the events written before the fence.
const OUTBOX_DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A step of a move, as `shard_moves.step` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MoveStep {
    Copying,
    Fenced,
    Switched,
}

impl MoveStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Copying => "copying",
            Self::Fenced => "fenced",
            Self::Switched => "switched",
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "copying" => Self::Copying,
            "fenced" => Self::Fenced,
            "switched" => Self::Switched,
            other => anyhow::bail!("unknown move step {other:?}"),
        })
    }
}

/// How a move runs.
#[derive(Debug, Clone, Default)]
pub struct MoveOptions {
    /// How long to wait after the switch before the source's copy is deleted; the default
    /// ([`SqlStorage::move_grace`]) is a few shard-map refreshes.
    pub grace: Option<Duration>,
    /// Stop, as if the process were killed, once this step is recorded (for tests of
    /// resuming; the move is left in progress).
    pub stop_after: Option<MoveStep>,
}

/// What a finished move did.
#[derive(Debug, Clone)]
pub struct MoveReport {
    pub logical: u32,
    pub source: usize,
    pub target: usize,
    /// The map version that made the target the owner.
    pub version: i64,
    /// Rows copied (first pass, then after the fence), per table.
    pub copied: BTreeMap<&'static str, u64>,
    /// Rows deleted from the source.
    pub removed: u64,
    /// From the fence to the switch: how long writes to this logical shard waited at most.
    pub fenced_for: Duration,
    /// The whole move, grace period included.
    pub took: Duration,
    /// Whether it resumed a move an earlier run left in progress.
    pub resumed: bool,
}

/// One physical shard in `duet shards status`.
#[derive(Debug, Clone)]
pub struct PhysicalStatus {
    pub index: usize,
    pub name: String,
    /// Logical shards the directory gives it.
    pub logical: Vec<u32>,
    /// Rows per table.
    pub rows: BTreeMap<String, i64>,
    /// Bytes on disk (tables and indexes).
    pub bytes: i64,
}

/// `duet shards status`.
#[derive(Debug, Clone)]
pub struct ShardStatus {
    pub version: i64,
    pub logical_shards: u32,
    pub physical: Vec<PhysicalStatus>,
    /// Moves in progress: (logical, source, target, step).
    pub moves: Vec<(u32, usize, usize, String)>,
}

/// Tables with rows keyed for a shard, for the status counts.
const TABLES: [&str; 9] = [
    "users",
    "handles",
    "sessions",
    "user_feeds",
    "inbox_entries",
    "feed_events",
    "conversations",
    "messages",
    "outbox",
];

/// The keys of one logical shard on a database.
#[derive(Debug, Default)]
struct Keys {
    conversations: Vec<Uuid>,
    users: Vec<Uuid>,
    handles: Vec<String>,
}

impl SqlStorage {
    /// The map, and per physical shard its logical shards, rows and bytes.
    ///
    /// # Errors
    /// When a database cannot be read.
    pub async fn shard_status(&self) -> anyhow::Result<ShardStatus> {
        let map = self.reload_shard_map().await?;
        let mut physical = Vec::new();
        for shard in self.router.shards() {
            let db = &shard.writer;
            let mut rows = BTreeMap::new();
            for table in TABLES {
                let count = scalar(
                    db,
                    &format!("SELECT CAST(count(*) AS bigint) AS value FROM {table}"),
                    [],
                )
                .await?
                .unwrap_or(0);
                rows.insert(table.to_owned(), count);
            }
            let bytes = match db.get_database_backend() {
                DbBackend::Postgres => {
                    scalar(
                        db,
                        "SELECT CAST(pg_database_size(current_database()) AS bigint) AS value",
                        [],
                    )
                    .await?
                }
                _ => {
                    scalar(
                        db,
                        "SELECT page_count * page_size AS value FROM pragma_page_count(), \
                         pragma_page_size()",
                        [],
                    )
                    .await?
                }
            }
            .unwrap_or(0);
            physical.push(PhysicalStatus {
                index: shard.index,
                name: shard.name.clone(),
                logical: map
                    .owners()
                    .filter(|(_, owner)| *owner == shard.index)
                    .map(|(logical, _)| logical)
                    .collect(),
                rows,
                bytes,
            });
        }
        let moves = self
            .moves_in_progress()
            .await?
            .into_iter()
            .map(|m| (m.logical, m.source, m.target, m.step.as_str().to_owned()))
            .collect();
        Ok(ShardStatus {
            version: map.version,
            logical_shards: self.router.logical_shards(),
            physical,
            moves,
        })
    }

    /// How long a move waits after its switch before deleting the source's copy: every
    /// process checks the map's version this often, twice over, plus a second.
    pub fn move_grace(&self) -> Duration {
        self.map_refresh * 2 + Duration::from_secs(1)
    }

    /// Moves logical shard `logical` to physical shard `target`, or resumes the move of it an
    /// earlier run left in progress (which must have the same target).
    ///
    /// # Errors
    /// On SQLite, for a logical or physical shard that does not exist, a target that already
    /// owns it, another move of it in progress, or a database failure (the move then stays
    /// in progress: run it again, or [`SqlStorage::abort_move`] it).
    pub async fn move_shard(
        &self,
        logical: u32,
        target: usize,
        options: &MoveOptions,
    ) -> anyhow::Result<MoveReport> {
        let started = std::time::Instant::now();
        self.check_movable(logical, target)?;
        let map = self.reload_shard_map().await?;
        let recorded = self.recorded_move(logical).await?;
        let (source, mut step, resumed) = match recorded {
            Some(m) => {
                anyhow::ensure!(
                    m.target == target,
                    "logical shard {logical} is being moved to physical shard {}: run that \
                     move again to finish it, or abort it first",
                    m.target
                );
                (m.source, m.step, true)
            }
            None => {
                let source = map.owner(logical);
                anyhow::ensure!(
                    source != target,
                    "physical shard {target} already owns logical shard {logical}"
                );
                self.record_move(logical, source, target, MoveStep::Copying)
                    .await?;
                (source, MoveStep::Copying, false)
            }
        };
        if options.stop_after == Some(MoveStep::Copying) && !resumed {
            anyhow::bail!("stopped after recording the move (as asked)");
        }
        let from = self.router.shard(source);
        let to = self.router.shard(target);
        let mut copied = BTreeMap::new();
        let mut fenced_at = None;
        if step == MoveStep::Copying {
            copy_logical(self, logical, from, to, &mut copied).await?;
            let fence_started = std::time::Instant::now();
            fence(&from.writer, logical).await?;
            self.set_step(logical, MoveStep::Fenced).await?;
            step = MoveStep::Fenced;
            fenced_at = Some(fence_started);
            if options.stop_after == Some(MoveStep::Fenced) {
                anyhow::bail!("stopped after fencing (as asked)");
            }
        }
        let mut version = map.version;
        if step == MoveStep::Fenced {
            let fence_started = fenced_at.unwrap_or_else(std::time::Instant::now);
            wait_for_outbox(&from.writer).await?;
            copy_logical(self, logical, from, to, &mut copied).await?;
            version = self.switch(logical, from, to).await?;
            fenced_at = Some(fence_started);
            if options.stop_after == Some(MoveStep::Switched) {
                anyhow::bail!("stopped after switching (as asked)");
            }
        }
        let fenced_for = fenced_at.map_or(Duration::ZERO, |at| at.elapsed());
        tokio::time::sleep(options.grace.unwrap_or_else(|| self.move_grace())).await;
        let removed = remove_logical(self, logical, from).await?;
        self.forget_move(logical).await?;
        let version = version.max(self.reload_shard_map().await?.version);
        Ok(MoveReport {
            logical,
            source,
            target,
            version,
            copied,
            removed,
            fenced_for,
            took: started.elapsed(),
            resumed,
        })
    }

    /// Rolls back the move of `logical` while it has not switched: the target's copy is
    /// deleted and the source takes writes again. A switched move cannot be rolled back;
    /// run it again to finish it.
    ///
    /// # Errors
    /// When no move of it is in progress, it has switched, or a database fails.
    pub async fn abort_move(&self, logical: u32) -> anyhow::Result<()> {
        let recorded = self
            .recorded_move(logical)
            .await?
            .with_context(|| format!("no move of logical shard {logical} is in progress"))?;
        anyhow::ensure!(
            recorded.step != MoveStep::Switched,
            "the move of logical shard {logical} has switched owners: run it again to finish it"
        );
        let from = self.router.shard(recorded.source);
        let to = self.router.shard(recorded.target);
        remove_logical(self, logical, to).await?;
        from.writer
            .execute_raw(statement(
                &from.writer,
                &format!(
                    "UPDATE shard_owners SET fenced = false WHERE logical = {}",
                    placeholder(DbBackend::Postgres, 1)
                ),
                [i32::try_from(logical)?.into()],
            ))
            .await?;
        self.forget_move(logical).await
    }

    /// Moves that would even out the number of logical shards per physical shard: see
    /// [`plan_even`].
    ///
    /// # Errors
    /// When the map cannot be read.
    pub async fn plan_rebalance(&self) -> anyhow::Result<Vec<(u32, usize, usize)>> {
        let map = self.reload_shard_map().await?;
        Ok(plan_even(&map, self.router.shards().len()))
    }

    fn check_movable(&self, logical: u32, target: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.router.shard(0).writer.get_database_backend() == DbBackend::Postgres,
            "moving logical shards needs PostgreSQL (SQLite is one database)"
        );
        anyhow::ensure!(
            logical < self.router.logical_shards(),
            "there are {} logical shards (0 to {})",
            self.router.logical_shards(),
            self.router.logical_shards() - 1
        );
        anyhow::ensure!(
            target < self.router.shards().len(),
            "physical shard {target} is not configured ({} are: 0 to {})",
            self.router.shards().len(),
            self.router.shards().len() - 1
        );
        Ok(())
    }

    async fn moves_in_progress(&self) -> anyhow::Result<Vec<RecordedMove>> {
        let rows = self
            .router
            .shard(0)
            .writer
            .query_all_raw(sea_orm::Statement::from_string(
                self.router.shard(0).writer.get_database_backend(),
                "SELECT CAST(logical AS bigint) AS logical, CAST(source AS bigint) AS source, \
                 CAST(target AS bigint) AS target, step FROM shard_moves ORDER BY logical",
            ))
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RecordedMove {
                    logical: u32::try_from(row.try_get::<i64>("", "logical")?)?,
                    source: usize::try_from(row.try_get::<i64>("", "source")?)?,
                    target: usize::try_from(row.try_get::<i64>("", "target")?)?,
                    step: MoveStep::parse(&row.try_get::<String>("", "step")?)?,
                })
            })
            .collect()
    }

    async fn recorded_move(&self, logical: u32) -> anyhow::Result<Option<RecordedMove>> {
        Ok(self
            .moves_in_progress()
            .await?
            .into_iter()
            .find(|m| m.logical == logical))
    }

    async fn record_move(
        &self,
        logical: u32,
        source: usize,
        target: usize,
        step: MoveStep,
    ) -> anyhow::Result<()> {
        let db = &self.router.shard(0).writer;
        let now = duet_domain::clock::now();
        let inserted = db
            .execute_raw(statement(
                db,
                "INSERT INTO shard_moves (logical, source, target, step, started_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (logical) DO NOTHING",
                [
                    i32::try_from(logical)?.into(),
                    i32::try_from(source)?.into(),
                    i32::try_from(target)?.into(),
                    step.as_str().into(),
                    now.into(),
                ],
            ))
            .await?;
        anyhow::ensure!(
            inserted.rows_affected() == 1,
            "another move of logical shard {logical} started at the same time"
        );
        Ok(())
    }

    async fn set_step(&self, logical: u32, step: MoveStep) -> anyhow::Result<()> {
        let db = &self.router.shard(0).writer;
        db.execute_raw(statement(
            db,
            "UPDATE shard_moves SET step = $1, updated_at = $2 WHERE logical = $3",
            [
                step.as_str().into(),
                duet_domain::clock::now().into(),
                i32::try_from(logical)?.into(),
            ],
        ))
        .await?;
        Ok(())
    }

    async fn forget_move(&self, logical: u32) -> anyhow::Result<()> {
        let db = &self.router.shard(0).writer;
        db.execute_raw(statement(
            db,
            "DELETE FROM shard_moves WHERE logical = $1",
            [i32::try_from(logical)?.into()],
        ))
        .await?;
        Ok(())
    }

    /// The target owns `logical`; the directory says so with a new version (and the move's
    /// step, in the same transaction); the source forgets it. Each part is idempotent, so a
    /// run that stopped in between repeats them.
    async fn switch(&self, logical: u32, from: &Shard, to: &Shard) -> anyhow::Result<i64> {
        insert_owned(&to.writer, &[logical]).await?;
        let directory = self.router.shard(0).writer.begin().await?;
        let l = i32::try_from(logical)?;
        directory
            .execute_raw(statement(
                &directory,
                "UPDATE shard_directory SET physical = $1 WHERE logical = $2",
                [i32::try_from(to.index)?.into(), l.into()],
            ))
            .await?;
        let version = scalar(
            &directory,
            "UPDATE shard_map SET version = version + 1 WHERE id = 1 RETURNING version AS value",
            [],
        )
        .await?
        .context("the shard map is missing")?;
        directory
            .execute_raw(statement(
                &directory,
                "UPDATE shard_moves SET step = $1, updated_at = $2 WHERE logical = $3",
                [
                    MoveStep::Switched.as_str().into(),
                    duet_domain::clock::now().into(),
                    l.into(),
                ],
            ))
            .await?;
        directory.commit().await?;
        from.writer
            .execute_raw(statement(
                &from.writer,
                "DELETE FROM shard_owners WHERE logical = $1",
                [l.into()],
            ))
            .await?;
        self.reload_shard_map().await?;
        tracing::info!(
            logical,
            from = from.index,
            to = to.index,
            version,
            "logical shard switched"
        );
        Ok(version)
    }
}

/// Moves (logical, from, to) that leave every one of `physical` shards owning as many logical
/// shards as the others, give or take one: from the fullest to the emptiest, one at a time.
pub fn plan_even(map: &ShardMap, physical: usize) -> Vec<(u32, usize, usize)> {
    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); physical.max(1)];
    for (logical, owner) in map.owners() {
        if let Some(list) = owned.get_mut(owner) {
            list.push(logical);
        }
    }
    let mut plan = Vec::new();
    loop {
        let by_load = |(i, list): (usize, &Vec<u32>)| (list.len(), i);
        let Some((most, fullest)) = owned.iter().enumerate().map(by_load).max() else {
            break;
        };
        let Some((least, emptiest)) = owned.iter().enumerate().map(by_load).min() else {
            break;
        };
        if most <= least + 1 {
            break;
        }
        let Some(logical) = owned[fullest].pop() else {
            break;
        };
        owned[emptiest].push(logical);
        plan.push((logical, fullest, emptiest));
    }
    plan
}

struct RecordedMove {
    logical: u32,
    source: usize,
    target: usize,
    step: MoveStep,
}

/// Fences `logical` on `db`: waits for the writes of it in flight (they hold the shared
/// advisory lock), then marks it so that later ones are refused.
async fn fence(db: &DatabaseConnection, logical: u32) -> anyhow::Result<()> {
    let txn = db.begin().await?;
    let l = i32::try_from(logical)?;
    txn.execute_raw(statement(
        &txn,
        "SELECT pg_advisory_xact_lock(1685415284, $1)",
        [l.into()],
    ))
    .await?;
    let fenced = txn
        .execute_raw(statement(
            &txn,
            "UPDATE shard_owners SET fenced = true WHERE logical = $1",
            [l.into()],
        ))
        .await?;
    anyhow::ensure!(
        fenced.rows_affected() == 1,
        "the source does not own logical shard {logical}: the directory and the owner tables \
         disagree"
    );
    txn.commit().await?;
    Ok(())
}

/// Waits until every outbox row that existed when this was called has been handed off.
async fn wait_for_outbox(db: &DatabaseConnection) -> anyhow::Result<()> {
    let Some(last) = scalar(db, "SELECT max(id) AS value FROM outbox", []).await? else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + OUTBOX_DRAIN_LIMIT;
    loop {
        let left = scalar(
            db,
            "SELECT CAST(count(*) AS bigint) AS value FROM outbox WHERE id <= $1",
            [last.into()],
        )
        .await?
        .unwrap_or(0);
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{left} outbox events written before the fence were not handed off within \
             {OUTBOX_DRAIN_LIMIT:?}: is a server (its relay) running? The move stays fenced; \
             run it again once delivery flows, or abort it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The keys of logical shard `logical` stored on `db`.
async fn keys_of(
    storage: &SqlStorage,
    db: &DatabaseConnection,
    logical: u32,
) -> anyhow::Result<Keys> {
    let count = storage.router.logical_shards();
    let mine = |bytes: &[u8]| logical_shard(bytes, count) == logical;
    let conversations: Vec<Uuid> = conversations::Entity::find()
        .select_only()
        .column(conversations::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let users: Vec<Uuid> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let handles: Vec<String> = handles::Entity::find()
        .select_only()
        .column(handles::Column::Handle)
        .into_tuple()
        .all(db)
        .await?;
    Ok(Keys {
        conversations: conversations
            .into_iter()
            .filter(|id| mine(id.as_bytes()))
            .collect(),
        users: users.into_iter().filter(|id| mine(id.as_bytes())).collect(),
        handles: handles.into_iter().filter(|h| mine(h.as_bytes())).collect(),
    })
}

fn uuids(keys: &[Uuid]) -> Vec<Value> {
    keys.iter().map(|k| (*k).into()).collect()
}

/// Upserts rows of `E` whose `column` is one of `keys` from `from` into `to`.
async fn upsert_by<E>(
    from: &DatabaseConnection,
    to: &DatabaseConnection,
    column: E::Column,
    keys: Vec<Value>,
    conflict: OnConflict,
) -> anyhow::Result<u64>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let mut copied = 0;
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let rows = E::find()
            .filter(column.is_in(chunk.to_vec()))
            .all(from)
            .await?;
        copied += insert_rows::<E>(to, rows, conflict.clone()).await?;
    }
    Ok(copied)
}

async fn insert_rows<E>(
    to: &DatabaseConnection,
    rows: Vec<E::Model>,
    conflict: OnConflict,
) -> anyhow::Result<u64>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let count = rows.len() as u64;
    let mut rows = rows
        .into_iter()
        .map(IntoActiveModel::into_active_model)
        .peekable();
    while rows.peek().is_some() {
        let chunk: Vec<E::ActiveModel> = rows.by_ref().take(256).collect();
        E::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec_without_returning(to)
            .await?;
    }
    Ok(count)
}

/// Copies (or brings up to date) the rows of `logical` from `from` to `to`: mutable rows
/// upserted, a user's sessions replaced, messages and feed events from where the target's
/// copy ends.
async fn copy_logical(
    storage: &SqlStorage,
    logical: u32,
    from: &Shard,
    to: &Shard,
    copied: &mut BTreeMap<&'static str, u64>,
) -> anyhow::Result<()> {
    let (src, dst) = (&from.writer, &to.writer);
    let keys = keys_of(storage, src, logical).await?;
    let mut add = |table: &'static str, n: u64| *copied.entry(table).or_default() += n;

    let conflict = OnConflict::column(users::Column::Id)
        .update_columns([
            users::Column::DisplayName,
            users::Column::PasswordHash,
            users::Column::Claimed,
        ])
        .to_owned();
    add(
        "users",
        upsert_by::<users::Entity>(src, dst, users::Column::Id, uuids(&keys.users), conflict)
            .await?,
    );
    let conflict = OnConflict::column(user_feeds::Column::UserId)
        .update_columns([
            user_feeds::Column::LastCursor,
            user_feeds::Column::PrunedThrough,
        ])
        .to_owned();
    add(
        "user_feeds",
        upsert_by::<user_feeds::Entity>(
            src,
            dst,
            user_feeds::Column::UserId,
            uuids(&keys.users),
            conflict,
        )
        .await?,
    );
    // Sessions: replaced, so a logout during the copy is not undone.
    for chunk in keys.users.chunks(KEYS_PER_QUERY) {
        sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.is_in(chunk.to_vec()))
            .exec(dst)
            .await?;
    }
    let conflict = OnConflict::column(sessions::Column::TokenHash)
        .do_nothing()
        .to_owned();
    add(
        "sessions",
        upsert_by::<sessions::Entity>(
            src,
            dst,
            sessions::Column::UserId,
            uuids(&keys.users),
            conflict,
        )
        .await?,
    );
    // The same upsert delivery writes entries with.
    let conflict = upsert_entry();
    add(
        "inbox_entries",
        upsert_by::<inbox_entries::Entity>(
            src,
            dst,
            inbox_entries::Column::UserId,
            uuids(&keys.users),
            conflict,
        )
        .await?,
    );
    for user in &keys.users {
        let after = scalar(
            dst,
            "SELECT max(cursor) AS value FROM feed_events WHERE user_id = $1",
            [(*user).into()],
        )
        .await?
        .unwrap_or(i64::MIN);
        add(
            "feed_events",
            copy_tail::<feed_events::Entity>(
                src,
                dst,
                feed_events::Column::UserId,
                *user,
                feed_events::Column::Cursor,
                after,
            )
            .await?,
        );
    }
    let conflict = OnConflict::column(handles::Column::Handle)
        .do_nothing()
        .to_owned();
    let handle_keys: Vec<Value> = keys.handles.iter().map(|h| h.clone().into()).collect();
    add(
        "handles",
        upsert_by::<handles::Entity>(src, dst, handles::Column::Handle, handle_keys, conflict)
            .await?,
    );
    let conflict = OnConflict::column(conversations::Column::Id)
        .update_columns([
            conversations::Column::LastSeq,
            conversations::Column::LoReadSeq,
            conversations::Column::HiReadSeq,
            conversations::Column::UpdatedAt,
        ])
        .to_owned();
    add(
        "conversations",
        upsert_by::<conversations::Entity>(
            src,
            dst,
            conversations::Column::Id,
            uuids(&keys.conversations),
            conflict,
        )
        .await?,
    );
    for conversation in &keys.conversations {
        let after = scalar(
            dst,
            "SELECT max(seq) AS value FROM messages WHERE conversation_id = $1",
            [(*conversation).into()],
        )
        .await?
        .unwrap_or(i64::MIN);
        add(
            "messages",
            copy_tail::<messages::Entity>(
                src,
                dst,
                messages::Column::ConversationId,
                *conversation,
                messages::Column::Seq,
                after,
            )
            .await?,
        );
    }
    Ok(())
}

/// Copies the rows of `E` with `key` whose `order` column is above `after`, in pages.
async fn copy_tail<E>(
    src: &DatabaseConnection,
    dst: &DatabaseConnection,
    key_column: E::Column,
    key: Uuid,
    order: E::Column,
    after: i64,
) -> anyhow::Result<u64>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let mut after = after;
    let mut copied = 0;
    loop {
        let rows = E::find()
            .filter(key_column.eq(key))
            .filter(order.gt(after))
            .order_by_asc(order)
            .limit(COPY_ROWS)
            .all(src)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(copied);
        };
        let next = match last.clone().into_active_model().get(order) {
            sea_orm::ActiveValue::Set(Value::BigInt(Some(v)))
            | sea_orm::ActiveValue::Unchanged(Value::BigInt(Some(v))) => v,
            _ => anyhow::bail!("the copy's order column is not a bigint"),
        };
        let full = rows.len() as u64 == COPY_ROWS;
        // Immutable rows: one already there (an earlier, interrupted copy) stays.
        let conflict = OnConflict::new().do_nothing().to_owned();
        copied += insert_rows::<E>(dst, rows, conflict).await?;
        if !full {
            return Ok(copied);
        }
        after = next;
    }
}

/// Deletes the rows of `logical` from `shard` (which must not own it); returns how many.
async fn remove_logical(storage: &SqlStorage, logical: u32, shard: &Shard) -> anyhow::Result<u64> {
    let db = &shard.writer;
    let owned = scalar(
        db,
        "SELECT CAST(count(*) AS bigint) AS value FROM shard_owners WHERE logical = $1",
        [i32::try_from(logical)?.into()],
    )
    .await?
    .unwrap_or(0);
    anyhow::ensure!(
        owned == 0,
        "physical shard {} still owns logical shard {logical}: not deleting its rows",
        shard.index
    );
    let keys = keys_of(storage, db, logical).await?;
    let mut removed = 0;
    for chunk in keys.conversations.chunks(KEYS_PER_QUERY) {
        let ids = chunk.to_vec();
        removed += messages::Entity::delete_many()
            .filter(messages::Column::ConversationId.is_in(ids.clone()))
            .exec(db)
            .await?
            .rows_affected;
        removed += conversations::Entity::delete_many()
            .filter(conversations::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
    }
    for chunk in keys.users.chunks(KEYS_PER_QUERY) {
        let ids = chunk.to_vec();
        removed += feed_events::Entity::delete_many()
            .filter(feed_events::Column::UserId.is_in(ids.clone()))
            .exec(db)
            .await?
            .rows_affected;
        removed += inbox_entries::Entity::delete_many()
            .filter(inbox_entries::Column::UserId.is_in(ids.clone()))
            .exec(db)
            .await?
            .rows_affected;
        removed += sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.is_in(ids.clone()))
            .exec(db)
            .await?
            .rows_affected;
        removed += user_feeds::Entity::delete_many()
            .filter(user_feeds::Column::UserId.is_in(ids.clone()))
            .exec(db)
            .await?
            .rows_affected;
        removed += users::Entity::delete_many()
            .filter(users::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
    }
    for chunk in keys.handles.chunks(KEYS_PER_QUERY) {
        removed += handles::Entity::delete_many()
            .filter(handles::Column::Handle.is_in(chunk.to_vec()))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::{MoveStep, ShardMap, plan_even};

    #[test]
    fn rebalancing_onto_new_shards_moves_a_fair_share_to_each() {
        // A one-shard cluster that grew to four.
        let map = ShardMap::contiguous(1024, 1);
        let plan = plan_even(&map, 4);
        assert_eq!(plan.len(), 768);
        let mut owned = [0usize; 4];
        owned[0] = 1024;
        for (_, from, to) in &plan {
            owned[*from] -= 1;
            owned[*to] += 1;
        }
        assert_eq!(owned, [256; 4]);
        assert!(plan.iter().all(|(_, from, _)| *from == 0));
        // An even map needs nothing.
        assert!(plan_even(&ShardMap::contiguous(1024, 4), 4).is_empty());
        assert!(plan_even(&ShardMap::contiguous(1023, 4), 4).is_empty());
    }

    #[test]
    fn move_steps_read_back_as_written() {
        for step in [MoveStep::Copying, MoveStep::Fenced, MoveStep::Switched] {
            assert_eq!(MoveStep::parse(step.as_str()).expect("known"), step);
        }
        assert!(MoveStep::parse("done").is_err());
    }
}
