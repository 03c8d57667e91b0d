//! Presence, in process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duet_domain::UserId;
use duet_domain::cache::{Presence, PresenceStatus};

use super::lock;

/// Users whose last-seen time the in-process presence keeps before forgetting the oldest.
const MAX_REMEMBERED_USERS: usize = 100_000;

/// Who is connected to this process, the only one in the `small` profile.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<UserId, Seen>>,
}

struct Seen {
    devices: u32,
    at: DateTime<Utc>,
}

impl MemoryPresence {
    pub fn new() -> Self {
        Self::default()
    }

    fn touch(&self, user: UserId, change: impl FnOnce(u32) -> u32) {
        let mut users = lock(&self.users);
        if users.len() >= MAX_REMEMBERED_USERS && !users.contains_key(&user) {
            // Bounded memory: forget the last-seen time of those offline longest.
            let cutoff = Utc::now() - chrono::Duration::hours(24);
            users.retain(|_, seen| seen.devices > 0 || seen.at > cutoff);
            if users.len() >= MAX_REMEMBERED_USERS {
                users.retain(|_, seen| seen.devices > 0);
            }
        }
        let seen = users.entry(user).or_insert(Seen {
            devices: 0,
            at: Utc::now(),
        });
        seen.devices = change(seen.devices);
        seen.at = Utc::now();
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connected(&self, user: UserId) {
        self.touch(user, |n| n + 1);
    }

    async fn disconnected(&self, user: UserId) {
        self.touch(user, |n| n.saturating_sub(1));
    }

    async fn heartbeat(&self, user: UserId) {
        let mut users = lock(&self.users);
        if let Some(seen) = users.get_mut(&user).filter(|seen| seen.devices > 0) {
            seen.at = Utc::now();
        }
    }

    async fn status(&self, users: &[UserId]) -> Vec<PresenceStatus> {
        let known = lock(&self.users);
        users
            .iter()
            .map(|user| {
                let seen = known.get(user);
                PresenceStatus {
                    user_id: *user,
                    online: seen.is_some_and(|s| s.devices > 0),
                    last_seen: seen.map(|s| s.at),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn presence_counts_devices_and_keeps_the_last_seen_time() {
        let presence = MemoryPresence::new();
        let (user, stranger) = (UserId::generate(), UserId::generate());
        presence.connected(user).await;
        presence.connected(user).await;
        presence.disconnected(user).await;
        let [status, unknown] = presence.status(&[user, stranger]).await[..] else {
            panic!("one status per user");
        };
        assert!(status.online, "one device is still connected");
        assert!(!unknown.online && unknown.last_seen.is_none());
        let before = Utc::now();
        presence.disconnected(user).await;
        let status = presence.status(&[user]).await[0];
        assert!(!status.online);
        assert!(status.last_seen.expect("seen") >= before);
    }
}
