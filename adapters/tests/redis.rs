//! The Redis ports against the real Redis at 127.0.0.1:6379: session cache, presence, the
//! shared send limiter, and what happens when Redis is unreachable or goes away and comes
//! back; and `AccountService` answering tokens from the cache. Each test uses its own key prefix and deletes its keys after. Without Redis, each
//! test prints `SKIPPED:` and returns, unless CI=true, where it fails.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_redis::redis;
use duet_adapters::crypto::Argon2Credentials;
use duet_adapters::redis::{
    RedisCache, RedisHistoryCache, RedisOptions, RedisPresence, RedisSendLimiter, RedisSessionCache,
};
use duet_adapters::sql::{SqlOptions, SqlStorage};
use duet_domain::accounts::{
    AccountService, AccountStore, Caller, CreatedUser, Handle, NewUser, Session, User,
};
use duet_domain::cache::{
    CachedSession, HistoryCache, Presence, SendDecision, SendLimiter, SendQuota, SessionCache,
};
use duet_domain::{ConversationId, StoreError, UserId};

const REDIS_ADDR: &str = "127.0.0.1:6379";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Redis for one test: options with a unique key prefix; deletes its keys when dropped
/// through [`TestRedis::clean`].
struct TestRedis {
    prefix: String,
}

impl TestRedis {
    /// `None` (after printing why) when Redis is not reachable and CI is not set.
    async fn start(test: &str) -> Option<Self> {
        let reachable = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(REDIS_ADDR),
        )
        .await
        .is_ok_and(|connected| connected.is_ok());
        if !reachable {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis not reachable at {REDIS_ADDR}"
            );
            println!("SKIPPED: Redis not reachable at {REDIS_ADDR}");
            return None;
        }
        let prefix = format!(
            "duet-test-{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Some(Self { prefix })
    }

    fn options(&self, url: &str) -> RedisOptions {
        RedisOptions {
            key_prefix: self.prefix.clone(),
            // Generous for a loaded test machine; the defaults are tighter.
            command_timeout: Duration::from_millis(500),
            failure_threshold: 3,
            cool_down: Duration::from_millis(300),
            ..RedisOptions::new(url)
        }
    }

    fn cache(&self) -> RedisCache {
        RedisCache::connect(&self.options(REDIS_URL)).expect("a valid URL")
    }

    async fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(REDIS_URL).expect("a valid URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS")
    }

    async fn clean(self) {
        let keys = self.keys().await;
        if keys.is_empty() {
            return;
        }
        let client = redis::Client::open(REDIS_URL).expect("a valid URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

fn session_expiring_in(duration: chrono::Duration) -> CachedSession {
    CachedSession {
        user_id: UserId::generate(),
        expires_at: duet_domain::clock::now() + duration,
    }
}

#[tokio::test]
async fn a_cached_session_is_answered_until_it_is_invalidated_and_never_revived() {
    let Some(test) = TestRedis::start("session").await else {
        return;
    };
    let cache = RedisSessionCache::new(test.cache(), Duration::from_secs(60));
    let session = session_expiring_in(chrono::Duration::hours(1));
    assert_eq!(cache.get("hash-1").await, None);
    cache.put("hash-1", session).await;
    assert_eq!(cache.get("hash-1").await, Some(session));
    assert_eq!(cache.get("hash-2").await, None, "keyed by token hash");

    cache.invalidate("hash-1").await;
    assert_eq!(cache.get("hash-1").await, None);
    // A fill that read the session before it was deleted lands late: it must not count.
    cache.put("hash-1", session).await;
    assert_eq!(cache.get("hash-1").await, None);
    let counts = cache.stats();
    assert_eq!((counts.hits, counts.misses, counts.errors), (1, 4, 0));

    // The token itself never reaches Redis: only its hash names the key.
    assert!(
        test.keys()
            .await
            .iter()
            .all(|k| k.ends_with(":session:hash-1"))
    );
    test.clean().await;
}

#[tokio::test]
async fn a_cached_session_expires_with_the_cache_ttl_or_the_session_whichever_is_first() {
    let Some(test) = TestRedis::start("session-ttl").await else {
        return;
    };
    let cache = RedisSessionCache::new(test.cache(), Duration::from_millis(400));
    let long = session_expiring_in(chrono::Duration::hours(1));
    let short = session_expiring_in(chrono::Duration::milliseconds(200));
    cache.put("long", long).await;
    cache.put("short", short).await;
    assert_eq!(cache.get("long").await, Some(long));
    assert_eq!(cache.get("short").await, Some(short));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get("short").await, None, "the session's own expiry");
    assert_eq!(cache.get("long").await, Some(long));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get("long").await, None, "the cache ttl");
    test.clean().await;
}

#[tokio::test]
async fn presence_follows_devices_across_processes_and_keeps_last_seen() {
    let Some(test) = TestRedis::start("presence").await else {
        return;
    };
    let minute = Duration::from_secs(60);
    let day = Duration::from_secs(86_400);
    let here = RedisPresence::new(test.cache(), minute, day);
    let there = RedisPresence::new(test.cache(), minute, day);
    let (user, stranger) = (UserId::generate(), UserId::generate());

    let before = Utc::now() - chrono::Duration::milliseconds(1);
    here.connected(user).await;
    here.connected(user).await;
    here.disconnected(user).await;
    let status = there.status(&[user, stranger]).await;
    assert!(status[0].online, "one of two devices is still connected");
    assert!(status[0].last_seen.expect("seen") >= before);
    assert!(!status[1].online && status[1].last_seen.is_none());

    there.connected(user).await;
    here.disconnected(user).await;
    assert!(
        here.status(&[user]).await[0].online,
        "held by the other process"
    );

    let before_leaving = Utc::now() - chrono::Duration::milliseconds(1);
    there.disconnected(user).await;
    let status = here.status(&[user]).await[0];
    assert!(!status.online);
    assert!(status.last_seen.expect("seen") >= before_leaving);
    test.clean().await;
}

#[tokio::test]
async fn a_process_that_stops_heart_beating_leaves_its_users_offline_after_the_timeout() {
    let Some(test) = TestRedis::start("presence-ttl").await else {
        return;
    };
    let timeout = Duration::from_millis(400);
    let presence = RedisPresence::new(test.cache(), timeout, Duration::from_secs(60));
    let (beating, crashed) = (UserId::generate(), UserId::generate());
    presence.connected(beating).await;
    presence.connected(crashed).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        presence.heartbeat(beating).await;
    }
    let status = presence.status(&[beating, crashed]).await;
    assert!(status[0].online, "heartbeats keep it online");
    assert!(!status[1].online, "no heartbeat for 600 ms > 400 ms");
    assert!(status[1].last_seen.is_some(), "last seen outlives presence");
    // A heartbeat for a user with no device here does not bring them back.
    presence.disconnected(beating).await;
    presence.heartbeat(beating).await;
    assert!(!presence.status(&[beating]).await[0].online);
    test.clean().await;
}

#[tokio::test]
async fn two_processes_share_one_send_quota_per_user() {
    let Some(test) = TestRedis::start("limit").await else {
        return;
    };
    let quota = SendQuota {
        per_second: NonZeroU32::new(2).expect("non-zero"),
        burst: NonZeroU32::new(3).expect("non-zero"),
    };
    // Two pools, as two processes would have.
    let one = RedisSendLimiter::new(test.cache(), quota);
    let two = RedisSendLimiter::new(test.cache(), quota);
    let (user, other) = (UserId::generate(), UserId::generate());
    assert_eq!(one.check(user).await, SendDecision::Allowed);
    assert_eq!(two.check(user).await, SendDecision::Allowed);
    assert_eq!(one.check(user).await, SendDecision::Allowed);
    let SendDecision::Limited { retry_after } = two.check(user).await else {
        panic!("the burst of 3 is shared by both processes");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500));
    assert!(matches!(
        one.check(user).await,
        SendDecision::Limited { .. }
    ));
    assert_eq!(two.check(other).await, SendDecision::Allowed, "per user");
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(one.check(user).await, SendDecision::Allowed);
    test.clean().await;
}

/// A port nothing listens on: connections are refused at once.
async fn unused_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    listener.local_addr().expect("bound").port()
}

#[tokio::test]
async fn with_redis_unreachable_every_call_is_a_quick_miss_and_the_breaker_opens() {
    let Some(test) = TestRedis::start("down").await else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", unused_port().await);
    let redis = RedisCache::connect(&test.options(&url)).expect("a valid URL");
    let sessions = RedisSessionCache::new(redis.clone(), Duration::from_secs(60));
    let history = RedisHistoryCache::new(redis.clone(), 50, Duration::from_secs(60));
    let limiter = RedisSendLimiter::new(redis.clone(), SendQuota::DEFAULT);
    let presence = RedisPresence::new(redis.clone(), Duration::from_secs(60), Duration::ZERO);
    let user = UserId::generate();
    let session = session_expiring_in(chrono::Duration::hours(1));

    assert!(redis.healthy(), "healthy until something fails");
    let started = Instant::now();
    for _ in 0..3 {
        sessions.put("hash", session).await;
        sessions.invalidate("hash").await;
        assert_eq!(sessions.get("hash").await, None);
        let conversation = ConversationId(uuid::Uuid::now_v7());
        assert!(history.latest(conversation, 20, 1).await.is_none());
        assert_eq!(limiter.check(user).await, SendDecision::Allowed);
        presence.connected(user).await;
        assert!(!presence.status(&[user]).await[0].online);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "calls fail fast: {:?}",
        started.elapsed()
    );
    assert!(!redis.healthy(), "the breaker opened");
    assert!(redis.ping().await.is_err());
    assert_eq!(sessions.pending_revocations(), 1, "kept for a retry");
    assert!(sessions.stats().errors >= 3);

    // After the cool-down one call probes Redis; it is still down, so the breaker stays open.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(limiter.check(user).await, SendDecision::Allowed);
    assert!(!redis.healthy());
    test.clean().await;
}

/// A TCP proxy in front of Redis that can be cut (refusing and dropping connections) and
/// restored: Redis going away and coming back, without touching the shared server.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection close
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(REDIS_ADDR).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections
                        .lock()
                        .expect("not poisoned")
                        .push(task.abort_handle());
                }
            }
        });
        Self {
            port,
            up,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn when_redis_comes_back_one_probe_closes_the_breaker_and_the_cache_serves_again() {
    let Some(test) = TestRedis::start("recover").await else {
        return;
    };
    let proxy = Proxy::start().await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let redis = RedisCache::connect(&test.options(&url)).expect("a valid URL");
    let sessions = RedisSessionCache::new(redis.clone(), Duration::from_secs(60));
    let session = session_expiring_in(chrono::Duration::hours(1));
    sessions.put("kept", session).await;
    sessions.put("revoked", session).await;
    assert_eq!(sessions.get("kept").await, Some(session));

    proxy.cut();
    sessions.invalidate("revoked").await;
    assert_eq!(sessions.pending_revocations(), 1);
    for _ in 0..3 {
        assert_eq!(
            sessions.get("kept").await,
            None,
            "a miss while Redis is away"
        );
    }
    assert!(!redis.healthy());

    proxy.restore();
    assert_eq!(
        sessions.get("kept").await,
        None,
        "skipped during the cool-down"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    // The probe is the flush of the pending revocation; it succeeds and closes the breaker.
    assert_eq!(sessions.get("kept").await, Some(session));
    assert!(redis.healthy());
    assert_eq!(sessions.pending_revocations(), 0);
    assert_eq!(
        sessions.get("revoked").await,
        None,
        "revoked while Redis was away"
    );
    assert!(redis.ping().await.is_ok());
    drop(proxy);
    test.clean().await;
}

/// An account store that counts session reads, over a temporary SQLite file.
struct CountingStore {
    inner: duet_adapters::sql::SqlStorage,
    session_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl AccountStore for CountingStore {
    async fn create_user(&self, user: NewUser) -> Result<CreatedUser, StoreError> {
        self.inner.create_user(user).await
    }
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.user(id).await
    }
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.inner.users(ids).await
    }
    async fn user_id_by_handle(&self, handle: &Handle) -> Result<Option<UserId>, StoreError> {
        self.inner.user_id_by_handle(handle).await
    }
    async fn credentials(&self, handle: &Handle) -> Result<Option<(User, String)>, StoreError> {
        self.inner.credentials(handle).await
    }
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.inner.create_session(session).await
    }
    async fn session(&self, user: UserId, hash: &str) -> Result<Option<Session>, StoreError> {
        self.session_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.session(user, hash).await
    }
    async fn delete_session(&self, user: UserId, hash: &str) -> Result<(), StoreError> {
        self.inner.delete_session(user, hash).await
    }
    async fn delete_expired_sessions(&self, now: chrono::DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.delete_expired_sessions(now).await
    }
}

#[tokio::test]
async fn authenticated_requests_skip_the_database_until_log_out_revokes_the_token() {
    let Some(test) = TestRedis::start("auth").await else {
        return;
    };
    let dir = std::env::temp_dir().join(&test.prefix);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let storage = SqlStorage::connect(SqlOptions::sqlite(&dir.join("duet.db"), false))
        .await
        .expect("SQLite opens");
    storage.migrate().await.expect("migrations apply");
    let store = Arc::new(CountingStore {
        inner: storage.clone(),
        session_reads: AtomicUsize::new(0),
    });
    let cache = Arc::new(RedisSessionCache::new(
        test.cache(),
        Duration::from_secs(60),
    ));
    let accounts = AccountService::new(
        store.clone(),
        Arc::new(Argon2Credentials::new()),
        chrono::Duration::hours(1),
    )
    .with_session_cache(cache.clone());
    let handle = format!("amy_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let user = accounts
        .register(&handle, "correct horse".to_owned(), None)
        .await
        .expect("registered");
    let token = accounts
        .log_in(&handle, "correct horse")
        .await
        .expect("logged in")
        .token;
    let me = Some(Caller { user_id: user.id });

    for _ in 0..3 {
        assert_eq!(accounts.authenticate(&token).await.expect("checked"), me);
    }
    assert_eq!(
        store.session_reads.load(Ordering::SeqCst),
        1,
        "one fill, then hits"
    );
    assert!(
        test.keys()
            .await
            .iter()
            .all(|key| !key.contains(token.expose())),
        "the token never reaches Redis"
    );

    accounts.log_out(&token).await.expect("logged out");
    assert_eq!(accounts.authenticate(&token).await.expect("checked"), None);
    assert_eq!(accounts.authenticate(&token).await.expect("checked"), None);
    assert_eq!(cache.stats().hits, 2);
    storage.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    test.clean().await;
}
