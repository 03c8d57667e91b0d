use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::UserId;

/// Whether a user is connected anywhere, and when they last were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceStatus {
    pub user_id: UserId,
    /// At least one device of the user is connected to some process.
    pub online: bool,
    /// The last time a device of the user connected, beat or disconnected; `None` when
    /// never seen (or forgotten after the adapter's retention).
    pub last_seen: Option<DateTime<Utc>>,
}

/// Who is online. Ephemeral by nature: a crashed process's devices go offline on their own
/// after the adapter's heartbeat timeout.
#[async_trait]
pub trait Presence: Send + Sync {
    /// One more device of `user` connected to this process.
    async fn connected(&self, user: UserId);

    /// One device of `user` on this process went away.
    async fn disconnected(&self, user: UserId);

    /// `user` still has devices here: keeps them online past the heartbeat timeout. Call it
    /// more often than the timeout (e.g. every third of it).
    async fn heartbeat(&self, user: UserId);

    /// The status of each user, in the order asked. A backend failure reports them offline
    /// with no last-seen time.
    async fn status(&self, users: &[UserId]) -> Vec<PresenceStatus>;
}
