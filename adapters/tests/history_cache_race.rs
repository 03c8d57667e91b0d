//! The history cache never changes what history answers, proved under concurrency: real
//! storage (a temporary SQLite file) and the real Redis history cache, driven through
//! `ConversationService`. Senders and readers run at once; every page a reader got, cached
//! or not, must equal the database's page ending at the same seq, and must hold every
//! message acknowledged before the read began. Without Redis at 127.0.0.1:6379 each test
//! prints `SKIPPED:` and returns, unless CI=true, where it fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis;
use duet_adapters::crypto::Argon2Credentials;
use duet_adapters::memory::MemoryLiveBus;
use duet_adapters::redis::{RedisCache, RedisHistoryCache, RedisOptions, RedisSendLimiter};
use duet_adapters::sql::{SqlOptions, SqlStorage};
use duet_domain::ConversationId;
use duet_domain::accounts::{AccountService, Caller};
use duet_domain::cache::SendQuota;
use duet_domain::conversations::{
    Appended, ConversationError, ConversationService, ConversationStore, HistoryPage, HistoryQuery,
};
use std::num::NonZeroU32;

const REDIS_ADDR: &str = "127.0.0.1:6379";
const REDIS_URL: &str = "redis://127.0.0.1:6379";
const CAPACITY: u32 = 50;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn redis_reachable() -> bool {
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
    }
    reachable
}

/// Two users in one conversation over a fresh SQLite file, with services with and without
/// the Redis history cache (the latter stands for a process whose write-through is lost).
struct World {
    dir: PathBuf,
    prefix: String,
    storage: SqlStorage,
    cache: Arc<RedisHistoryCache>,
    cached: Arc<ConversationService>,
    uncached: ConversationService,
    members: [Caller; 2],
    id: ConversationId,
}

impl World {
    async fn start() -> Option<Self> {
        if !redis_reachable().await {
            return None;
        }
        let dir = std::env::temp_dir().join(unique("duet-history-cache"));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let storage = SqlStorage::connect(SqlOptions::sqlite(&dir.join("duet.db"), false))
            .await
            .expect("SQLite opens");
        storage.migrate().await.expect("migrations apply");

        let prefix = unique("duet-test-history");
        let redis = RedisCache::connect(&RedisOptions {
            key_prefix: prefix.clone(),
            command_timeout: Duration::from_millis(500),
            ..RedisOptions::new(REDIS_URL)
        })
        .expect("a valid URL");
        let cache = Arc::new(RedisHistoryCache::new(
            redis,
            CAPACITY,
            Duration::from_secs(60),
        ));

        let store = Arc::new(storage.clone());
        let accounts = AccountService::new(
            store.clone(),
            Arc::new(Argon2Credentials::new()),
            chrono::Duration::hours(1),
        );
        let service = || {
            ConversationService::new(
                store.clone(),
                store.clone(),
                store.clone(),
                Arc::new(MemoryLiveBus::new(16)),
            )
        };
        let cached = Arc::new(service().with_history_cache(cache.clone()));
        let uncached = service();

        let tag = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut members = Vec::new();
        for name in ["ann", "bob"] {
            let handle = format!("{name}_{}_{tag}", std::process::id());
            let user = accounts
                .register(&handle, "correct horse".to_owned(), None)
                .await
                .expect("registered");
            members.push((Caller { user_id: user.id }, handle));
        }
        let (view, _) = cached
            .open(members[0].0, &members[1].1)
            .await
            .expect("opened");
        Some(Self {
            dir,
            prefix,
            storage,
            cache,
            cached,
            uncached,
            members: [members[0].0, members[1].0],
            id: view.id,
        })
    }

    async fn latest(&self, limit: u32) -> HistoryPage {
        let query = HistoryQuery {
            before_seq: None,
            after_seq: None,
            limit,
        };
        self.cached
            .history(self.members[0], self.id, query)
            .await
            .expect("history")
    }

    /// The database's page of `limit` messages ending at `newest`, read directly.
    async fn database_page(&self, newest: i64, limit: u32) -> HistoryPage {
        let query = HistoryQuery {
            before_seq: Some(newest + 1),
            after_seq: None,
            limit,
        };
        let mut items = self
            .storage
            .history(self.id, query)
            .await
            .expect("database history");
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        items.reverse();
        HistoryPage { items, has_more }
    }

    async fn stop(self) {
        self.storage.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        let client = redis::Client::open(REDIS_URL).expect("a valid URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            let () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }
}

async fn send(service: &ConversationService, caller: Caller, id: ConversationId, tag: &str) -> i64 {
    match service
        .send(caller, id, tag.to_owned(), format!("body of {tag}"))
        .await
        .expect("sent")
    {
        Appended::Created(message) => message.seq,
        Appended::Replayed(_) => panic!("{tag} was sent once"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_readers_of_the_cached_latest_page_see_exactly_the_database_pages() {
    let Some(world) = World::start().await else {
        return;
    };
    let world = Arc::new(world);
    let acknowledged = Arc::new(AtomicI64::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 30;

    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (world, acknowledged, sending) =
                (world.clone(), acknowledged.clone(), sending.clone());
            tokio::spawn(async move {
                let mut pages = Vec::new();
                let mut round = reader;
                while sending.load(Ordering::SeqCst) || pages.len() < 20 {
                    let limit = [10, 20, CAPACITY][round % 3];
                    round += 1;
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let page = world.latest(limit).await;
                    let newest = page.items.last().map_or(0, |m| m.seq);
                    assert!(
                        newest >= floor,
                        "seq {floor} was acknowledged before the read, the page ends at {newest}"
                    );
                    pages.push((limit, page));
                }
                pages
            })
        })
        .collect();
    // Sender 0 stands for a process whose write-throughs are lost: the cache then lags the
    // database, and only the `last_seq` check keeps readers from missing its messages.
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (world, acknowledged) = (world.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let service = if sender == 0 {
                    &world.uncached
                } else {
                    world.cached.as_ref()
                };
                for n in 0..PER_SENDER {
                    let caller = world.members[(sender + n) % 2];
                    let seq = send(service, caller, world.id, &format!("s{sender}-{n}")).await;
                    acknowledged.fetch_max(seq, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender finished");
    }
    sending.store(false, Ordering::SeqCst);
    let mut checked = 0;
    for reader in readers {
        for (limit, page) in reader.await.expect("a reader finished") {
            let Some(newest) = page.items.last().map(|m| m.seq) else {
                continue; // read before the first message was committed
            };
            assert_eq!(page, world.database_page(newest, limit).await);
            checked += 1;
        }
    }

    let total = (SENDERS * PER_SENDER) as i64;
    let last = world.latest(CAPACITY).await;
    assert_eq!(last.items.last().map(|m| m.seq), Some(total));
    assert_eq!(last, world.database_page(total, CAPACITY).await);
    let counts = world.cache.stats();
    assert!(checked >= 80, "only {checked} pages were read");
    assert!(
        counts.hits >= 20 && counts.errors == 0,
        "the cache must serve reads: {counts:?}"
    );
    println!("history cache during the race: {counts:?}");
    Arc::into_inner(world).expect("tasks are done").stop().await;
}

#[tokio::test]
async fn a_message_sent_after_the_cache_is_filled_is_in_the_next_read() {
    let Some(world) = World::start().await else {
        return;
    };
    let [ann, bob] = world.members;
    for n in 0..3 {
        send(&world.cached, ann, world.id, &format!("early-{n}")).await;
    }
    let first = world.latest(20).await;
    assert_eq!(first.items.len(), 3);
    let before = world.cache.stats();

    let seq = send(&world.cached, bob, world.id, "written-through").await;
    let next = world.latest(20).await;
    assert_eq!(
        next.items.last().map(|m| (m.seq, m.client_msg_id.as_str())),
        Some((seq, "written-through"))
    );
    assert_eq!(next, world.database_page(seq, 20).await);
    let after = world.cache.stats();
    assert_eq!(after.hits, before.hits + 1, "served by the write-through");

    // A message whose write-through was lost (another process, Redis away from it) is not
    // missed: the cached page falls short of `last_seq`, so the read goes to the database.
    let lost = send(&world.uncached, ann, world.id, "not-written-through").await;
    let next = world.latest(20).await;
    assert_eq!(next.items.last().map(|m| m.seq), Some(lost));
    assert_eq!(next, world.database_page(lost, 20).await);
    assert_eq!(world.cache.stats().misses, after.misses + 1);
    // That read refilled the cache: the one after is a hit again.
    assert_eq!(world.latest(20).await, next);
    assert_eq!(world.cache.stats().hits, after.hits + 1);
    world.stop().await;
}

#[tokio::test]
async fn a_send_over_the_shared_quota_is_refused_with_a_retry_after_and_not_stored() {
    let Some(world) = World::start().await else {
        return;
    };
    let redis = RedisCache::connect(&RedisOptions {
        key_prefix: world.prefix.clone(),
        ..RedisOptions::new(REDIS_URL)
    })
    .expect("a valid URL");
    let quota = SendQuota {
        per_second: NonZeroU32::new(1).expect("non-zero"),
        burst: NonZeroU32::new(2).expect("non-zero"),
    };
    let store = Arc::new(world.storage.clone());
    let limited = ConversationService::new(
        store.clone(),
        store.clone(),
        store,
        Arc::new(MemoryLiveBus::new(16)),
    )
    .with_send_limit(Arc::new(RedisSendLimiter::new(redis, quota)));
    let [ann, _] = world.members;
    send(&limited, ann, world.id, "one").await;
    send(&limited, ann, world.id, "two").await;
    let refused = limited
        .send(ann, world.id, "three".to_owned(), "too fast".to_owned())
        .await;
    let Err(ConversationError::RateLimited { retry_after }) = refused else {
        panic!("the third send within a second is over the quota: {refused:?}");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    assert_eq!(world.latest(20).await.items.len(), 2, "nothing stored");
    world.stop().await;
}
