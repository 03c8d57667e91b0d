//! The one Redis handle every Redis port shares: pool, deadlines, key prefix, breaker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisResult};
use deadpool_redis::{Connection, Manager, Pool, PoolConfig, PoolError, Runtime, Timeouts};
use duet_domain::StoreError;

use super::breaker::{Admission, Breaker};
use super::metrics;

/// How to reach Redis and how long to wait for it. Redis is only an accelerator, so every
/// wait is short: a slow Redis is treated like a dead one.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` (or `rediss://` with TLS).
    pub url: String,
    /// Prepended to every key as `{prefix}:`, so deployments and test runs never collide.
    pub key_prefix: String,
    /// Multiplexed connections in the pool; each carries many concurrent commands.
    pub pool_size: usize,
    /// Deadline for opening a connection (and for waiting for a pool slot).
    pub connect_timeout: Duration,
    /// Deadline for one command or pipeline, round trip included.
    pub command_timeout: Duration,
    /// Consecutive failures after which Redis is skipped.
    pub failure_threshold: u32,
    /// How long Redis is skipped before one call probes it again.
    pub cool_down: Duration,
}

impl RedisOptions {
    /// Options with the defaults: prefix `duet`, 8 connections, 250 ms to connect, 100 ms
    /// per command, breaker open after 5 consecutive failures for 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "duet".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_millis(250),
            command_timeout: Duration::from_millis(100),
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// A cheap-to-clone handle on Redis shared by the Redis ports.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    prefix: String,
    command_timeout: Duration,
    breaker: Breaker,
}

impl RedisCache {
    /// Builds the pool. Connects lazily: a Redis that is down at start-up is not an error
    /// (it is optional), it only keeps the breaker open.
    ///
    /// # Errors
    /// `Unexpected` for a malformed URL.
    pub fn connect(options: &RedisOptions) -> Result<Self, StoreError> {
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout));
        let manager = Manager::new_with_config(options.url.as_str(), connection)
            .map_err(|err| StoreError::Unexpected(anyhow::anyhow!("redis url: {err}")))?;
        let mut config = PoolConfig::new(options.pool_size.max(1));
        config.timeouts = Timeouts {
            wait: Some(options.connect_timeout),
            create: Some(options.connect_timeout),
            recycle: Some(options.command_timeout),
        };
        let pool = Pool::builder(manager)
            .config(config)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| StoreError::Unexpected(anyhow::anyhow!("redis pool: {err}")))?;
        metrics::circuit_open(false);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                prefix: options.key_prefix.clone(),
                command_timeout: options.command_timeout,
                breaker: Breaker::new(options.failure_threshold, options.cool_down),
            }),
        })
    }

    /// Checks Redis answers, past the breaker (a success closes it). For readiness reports:
    /// Redis is optional, so a failure here should be shown, not fail readiness.
    ///
    /// # Errors
    /// `Unavailable` when Redis does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let result = self
            .call(
                |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
            )
            .await;
        self.report("ping", result.as_ref().err().map(|(reason, _)| *reason));
        result.map(drop).map_err(|(_, err)| err)
    }

    /// Whether Redis is in use: false while the breaker skips it.
    pub fn healthy(&self) -> bool {
        !self.inner.breaker.is_open()
    }

    /// `{prefix}:{kind}:{id}`.
    pub(crate) fn key(&self, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}:{kind}:{id}", self.inner.prefix)
    }

    /// Runs `op` on a pooled connection under the breaker and the command deadline.
    /// Failures are counted as a fallback of `cache` and logged at debug level.
    ///
    /// # Errors
    /// `Unavailable` when the breaker is open, the pool has no connection in time, the
    /// command times out or Redis answers an error.
    pub(crate) async fn run<T, F, Fut>(&self, cache: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.inner.breaker.admit() == Admission::Skip {
            metrics::fallback(cache, "circuit_open");
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "redis skipped: circuit open"
            )));
        }
        let result = self.call(op).await;
        self.report(cache, result.as_ref().err().map(|(reason, _)| *reason));
        result.map_err(|(_, err)| err)
    }

    async fn call<T, F, Fut>(&self, op: F) -> Result<T, (&'static str, StoreError)>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let unavailable = |reason, err: anyhow::Error| (reason, StoreError::Unavailable(err));
        let conn = self.inner.pool.get().await.map_err(|err| match err {
            PoolError::Timeout(_) => unavailable("timeout", anyhow::anyhow!("redis pool: {err}")),
            err => unavailable("error", anyhow::anyhow!("redis pool: {err}")),
        })?;
        match tokio::time::timeout(self.inner.command_timeout, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.is_timeout() => {
                Err(unavailable("timeout", anyhow::anyhow!("redis: {err}")))
            }
            Ok(Err(err)) => Err(unavailable("error", anyhow::anyhow!("redis: {err}"))),
            Err(_) => Err(unavailable(
                "timeout",
                anyhow::anyhow!("redis: no answer in {:?}", self.inner.command_timeout),
            )),
        }
    }

    /// Feeds a call's outcome to the breaker and the metrics.
    fn report(&self, cache: &'static str, failure: Option<&'static str>) {
        let breaker = &self.inner.breaker;
        match failure {
            None => {
                if breaker.succeeded() {
                    metrics::circuit_open(false);
                    tracing::info!("redis answers again: circuit closed");
                }
            }
            Some(reason) => {
                metrics::fallback(cache, reason);
                if breaker.failed() {
                    metrics::circuit_open(true);
                    tracing::warn!(reason, "redis failing: circuit open, caches bypassed");
                }
            }
        }
    }
}
