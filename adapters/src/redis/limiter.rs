//! A per-user send rate shared by every process: the generic cell rate algorithm (GCRA) in
//! one Lua script, so read-modify-write is atomic and all processes share Redis's clock.
//! `{prefix}:send_limit:{user}` holds the user's theoretical arrival time in µs, and expires
//! when it falls behind the clock (an idle user costs no memory).

use async_trait::async_trait;
use deadpool_redis::redis;
use duet_domain::UserId;
use duet_domain::cache::{SendDecision, SendLimiter, SendQuota};

use super::RedisCache;

const CACHE: &str = "send_limit";

/// Returns 0 when allowed, else the µs to wait. Numbers are formatted with `%.0f`: Lua's
/// default conversion would print a µs timestamp as `1.7e+15` and lose precision.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local allow_at = new_tat - tonumber(ARGV[2])
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return 0
";

/// A [`SendLimiter`] in Redis: one quota per user across all processes. Fails open.
pub struct RedisSendLimiter {
    redis: RedisCache,
    quota: SendQuota,
}

impl RedisSendLimiter {
    pub fn new(redis: RedisCache, quota: SendQuota) -> Self {
        Self { redis, quota }
    }
}

#[async_trait]
impl SendLimiter for RedisSendLimiter {
    async fn check(&self, user: UserId) -> SendDecision {
        let key = self.redis.key(CACHE, user);
        let interval = self.quota.emission_interval().as_micros();
        let tolerance = self.quota.tolerance().as_micros();
        let waited = self
            .redis
            .run(CACHE, |mut conn| async move {
                redis::cmd("EVAL")
                    .arg(GCRA)
                    .arg(1)
                    .arg(key)
                    .arg(u64::try_from(interval).unwrap_or(u64::MAX))
                    .arg(u64::try_from(tolerance).unwrap_or(u64::MAX))
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await;
        match waited {
            // Fail open: the fallback is counted by `run`.
            Err(_) | Ok(0) => SendDecision::Allowed,
            Ok(micros) => SendDecision::Limited {
                retry_after: std::time::Duration::from_micros(micros),
            },
        }
    }
}
