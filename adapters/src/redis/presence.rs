//! Who is online, across processes.
//!
//! `{prefix}:presence:{user}` is a sorted set of the processes holding a device of the user,
//! each scored with the time (ms) its claim expires. A process counts its own devices per
//! user in memory and keeps one member per user: it adds it on the first connection,
//! refreshes it on heartbeats and removes it with the last disconnection. A crashed process
//! stops refreshing, so its users go offline after `timeout` by themselves.
//! `{prefix}:last_seen:{user}` keeps the last time seen (ms) for longer (`retention`).
//!
//! Times are this process's clock: keep process clocks within a small part of `timeout`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use duet_domain::UserId;
use duet_domain::cache::{Presence, PresenceStatus};

use super::RedisCache;

const CACHE: &str = "presence";

/// A [`Presence`] in Redis shared by every process.
pub struct RedisPresence {
    redis: RedisCache,
    /// This process's member in each user's set.
    instance: String,
    timeout: Duration,
    retention: Duration,
    devices: Mutex<HashMap<UserId, u32>>,
}

impl RedisPresence {
    /// A user is online while some process heart-beats their devices within `timeout`
    /// (e.g. 60 s, with heartbeats every 20 s); last-seen times are kept for `retention`
    /// (e.g. 30 days).
    pub fn new(redis: RedisCache, timeout: Duration, retention: Duration) -> Self {
        Self {
            redis,
            instance: uuid::Uuid::now_v7().to_string(),
            timeout,
            retention,
            devices: Mutex::new(HashMap::new()),
        }
    }

    fn devices(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, u32>> {
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims (or drops) this process's hold on `user` and stamps the last-seen time.
    async fn announce(&self, user: UserId, online: bool) {
        let now = Utc::now().timestamp_millis();
        let presence = self.redis.key("presence", user);
        let mut pipe = redis::pipe();
        if online {
            let timeout = millis(self.timeout);
            pipe.cmd("ZADD")
                .arg(&presence)
                .arg(now.saturating_add(i64::try_from(timeout).unwrap_or(i64::MAX)))
                .arg(&self.instance)
                .ignore();
            // Claims of crashed processes that nobody removed.
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&presence)
                .arg("-inf")
                .arg(now)
                .ignore();
            pipe.cmd("PEXPIRE").arg(&presence).arg(timeout).ignore();
        } else {
            pipe.cmd("ZREM").arg(&presence).arg(&self.instance).ignore();
        }
        pipe.cmd("SET")
            .arg(self.redis.key("last_seen", user))
            .arg(now)
            .arg("PX")
            .arg(millis(self.retention))
            .ignore();
        // Lost updates heal: a missed claim is made by the next heartbeat, a missed drop
        // expires after `timeout`.
        let _ = self
            .redis
            .run(CACHE, |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connected(&self, user: UserId) {
        *self.devices().entry(user).or_insert(0) += 1;
        self.announce(user, true).await;
    }

    async fn disconnected(&self, user: UserId) {
        let still_here = {
            let mut devices = self.devices();
            let left = devices.get(&user).map_or(0, |n| n.saturating_sub(1));
            if left == 0 {
                devices.remove(&user);
            } else {
                devices.insert(user, left);
            }
            left > 0
        };
        self.announce(user, still_here).await;
    }

    async fn heartbeat(&self, user: UserId) {
        // Only for users with devices here: a late heartbeat must not revive a user whose
        // last device just left.
        if self.devices().contains_key(&user) {
            self.announce(user, true).await;
        }
    }

    async fn status(&self, users: &[UserId]) -> Vec<PresenceStatus> {
        let now = Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("ZCOUNT")
                .arg(self.redis.key("presence", user))
                .arg(now)
                .arg("+inf");
            pipe.cmd("GET").arg(self.redis.key("last_seen", user));
        }
        let answers = if users.is_empty() {
            Ok(Vec::new())
        } else {
            self.redis
                .run(CACHE, |mut conn| async move {
                    pipe.query_async::<Vec<Option<i64>>>(&mut conn).await
                })
                .await
        };
        // Two answers per user: how many processes hold them, and the last-seen time.
        let answers = answers.unwrap_or_default();
        users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let answer = |j: usize| answers.get(2 * i + j).copied().flatten();
                PresenceStatus {
                    user_id: *user,
                    online: answer(0).is_some_and(|holders| holders > 0),
                    last_seen: answer(1).and_then(DateTime::<Utc>::from_timestamp_millis),
                }
            })
            .collect()
    }
}
