//! Read replicas: which ones are in rotation, how far each has replayed, and the write marks
//! that keep every key's reads at least as new as this process's last write to it.
//!
//! A write on behalf of a key (a conversation, a user, a handle) records the primary's WAL
//! insert position after commit in the key's slot. A read of that key may go to a replica
//! only once the replica's replay position has passed the slot's mark; otherwise it goes to
//! the primary. Slots are a fixed array indexed by key hash: two keys sharing a slot only
//! send a few more reads to the primary, and memory never grows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

/// Number of write-mark slots per shard.
const SLOTS: usize = 4096;

/// One streaming replica of a shard's primary.
pub struct Replica {
    /// `host:port/db`, for logs and metric labels (never the password).
    pub name: String,
    pub db: DatabaseConnection,
    healthy: AtomicBool,
    replay_lsn: AtomicU64,
}

impl Replica {
    pub fn new(name: String, db: DatabaseConnection) -> Self {
        Self {
            name,
            db,
            healthy: AtomicBool::new(false),
            replay_lsn: AtomicU64::new(0),
        }
    }

    pub fn in_rotation(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Takes the replica out of rotation until the next successful check.
    pub fn set_unhealthy(&self) {
        self.healthy.store(false, Ordering::Release);
    }
}

/// The replicas of one shard and the write marks of its keys.
pub struct ReplicaSet {
    pub replicas: Vec<Arc<Replica>>,
    /// The primary's position when this process started: writes made before, by an earlier
    /// run of this process, are unknown to the marks, so every read needs at least this.
    floor: AtomicU64,
    marks: Box<[AtomicU64]>,
    next: AtomicUsize,
    max_lag_bytes: u64,
}

impl ReplicaSet {
    pub fn new(replicas: Vec<Arc<Replica>>, max_lag_bytes: u64) -> Self {
        Self {
            replicas,
            floor: AtomicU64::new(0),
            marks: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            max_lag_bytes,
        }
    }

    pub fn slot(key_hash: u64) -> usize {
        (key_hash % SLOTS as u64) as usize
    }

    /// A replica in rotation that has replayed past every write this process made to the
    /// keys in `slots`, taken round-robin; `None` means read from the primary.
    pub fn pick(&self, slots: &[usize]) -> Option<Arc<Replica>> {
        let needed = slots
            .iter()
            .map(|s| self.marks[*s].load(Ordering::Acquire))
            .fold(self.floor.load(Ordering::Acquire), u64::max);
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| &self.replicas[(start + i) % count])
            .find(|r| r.in_rotation() && r.replay_lsn.load(Ordering::Acquire) >= needed)
            .cloned()
    }

    /// Raises the floor every read needs to the primary's current position.
    pub async fn set_floor(&self, primary: &DatabaseConnection) -> Result<(), DbErr> {
        let lsn = current_lsn(primary, "pg_current_wal_insert_lsn()").await?;
        self.floor.fetch_max(lsn, Ordering::AcqRel);
        Ok(())
    }

    /// Records that the key in `slot` was written up to the primary's current position.
    pub async fn mark_written(
        &self,
        primary: &DatabaseConnection,
        slot: usize,
    ) -> Result<(), DbErr> {
        let lsn = current_lsn(primary, "pg_current_wal_insert_lsn()").await?;
        self.marks[slot].fetch_max(lsn, Ordering::AcqRel);
        Ok(())
    }

    /// [`Self::mark_written`] for several slots with one position read.
    pub async fn mark_written_all(
        &self,
        primary: &DatabaseConnection,
        slots: impl IntoIterator<Item = usize>,
    ) -> Result<(), DbErr> {
        let lsn = current_lsn(primary, "pg_current_wal_insert_lsn()").await?;
        for slot in slots {
            self.marks[slot].fetch_max(lsn, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Measures every replica against the primary and updates the rotation and metrics.
    pub async fn check(&self, primary: &DatabaseConnection) {
        let primary_lsn = current_lsn(primary, "pg_current_wal_lsn()").await.ok();
        let mut in_rotation = 0;
        for replica in &self.replicas {
            let replay = current_lsn(&replica.db, "pg_last_wal_replay_lsn()").await;
            let healthy = match (primary_lsn, replay) {
                (Some(primary_lsn), Ok(replay)) => {
                    replica.replay_lsn.fetch_max(replay, Ordering::AcqRel);
                    let lag = primary_lsn.saturating_sub(replay);
                    metrics::gauge!("duet_db_replica_lag_bytes", "replica" => replica.name.clone())
                        .set(lag as f64);
                    lag <= self.max_lag_bytes
                }
                (_, Err(error)) => {
                    tracing::debug!(replica = %replica.name, %error, "replica check failed");
                    false
                }
                (None, Ok(_)) => false,
            };
            if healthy != replica.in_rotation() {
                tracing::info!(replica = %replica.name, healthy, "replica rotation changed");
            }
            replica.healthy.store(healthy, Ordering::Release);
            in_rotation += usize::from(healthy);
        }
        metrics::gauge!("duet_db_replicas_in_rotation").set(in_rotation as f64);
    }
}

/// Runs `check` every `interval` until the task is aborted.
pub async fn watch(sets: Vec<(DatabaseConnection, Arc<ReplicaSet>)>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (primary, set) in &sets {
            set.check(primary).await;
        }
    }
}

/// A WAL position from one of PostgreSQL's LSN functions, as a number.
async fn current_lsn(db: &DatabaseConnection, function: &str) -> Result<u64, DbErr> {
    let sql = format!("SELECT ({function})::text AS lsn");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| DbErr::Custom("no LSN row".into()))?;
    let text: Option<String> = row.try_get("", "lsn")?;
    let text = text.ok_or_else(|| DbErr::Custom(format!("{function} is NULL: not a standby?")))?;
    parse_lsn(&text).ok_or_else(|| DbErr::Custom(format!("unreadable LSN {text}")))
}

/// `16/B374D848` → `0x16_B374_D848`.
fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn lsns_parse_as_their_byte_position() {
        assert_eq!(parse_lsn("0/3000000"), Some(0x300_0000));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("G/0"), None);
    }
}
