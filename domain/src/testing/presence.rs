use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::UserId;
use crate::cache::{Presence, PresenceStatus};
use crate::clock::Clock;

/// Connected devices counted per user, last seen stamped from a clock. No heartbeat
/// timeout: a device stays until it disconnects.
pub struct MemoryPresence {
    clock: Arc<dyn Clock>,
    users: Mutex<HashMap<UserId, Seen>>,
}

#[derive(Default)]
struct Seen {
    devices: u32,
    at: Option<DateTime<Utc>>,
}

impl MemoryPresence {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn touch(&self, user: UserId, change: impl FnOnce(&mut u32)) {
        let mut users = lock(&self.users);
        let seen = users.entry(user).or_default();
        change(&mut seen.devices);
        seen.at = Some(self.clock.now());
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connected(&self, user: UserId) {
        self.touch(user, |devices| *devices += 1);
    }

    async fn disconnected(&self, user: UserId) {
        self.touch(user, |devices| *devices = devices.saturating_sub(1));
    }

    async fn heartbeat(&self, user: UserId) {
        self.touch(user, |_| {});
    }

    async fn status(&self, users: &[UserId]) -> Vec<PresenceStatus> {
        let seen = lock(&self.users);
        users
            .iter()
            .map(|user| PresenceStatus {
                user_id: *user,
                online: seen.get(user).is_some_and(|s| s.devices > 0),
                last_seen: seen.get(user).and_then(|s| s.at),
            })
            .collect()
    }
}
