//! The NATS adapters against the real server at 127.0.0.1:4222. Each test gets its own
//! stream, subject prefix and consumer name, and deletes its stream at the end.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use duet_adapters::nats::{DeliveryConsumer, Nats, NatsLiveBus, NatsOptions, NatsQueue};
use duet_domain::events::{
    DurableEvent, Ephemeral, EventHandler, EventQueue, LiveBus, LiveEvent, LiveItem,
};
use duet_domain::inbox::FeedEventBody;
use duet_domain::{ConversationId, StoreError, UserId};
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const NATS_ADDR: &str = "127.0.0.1:4222";
/// Long enough for any event in these tests to arrive; a hang fails instead of blocking.
const PATIENCE: Duration = Duration::from_secs(15);

/// Options with names no other test or concurrent run uses.
fn unique_options() -> NatsOptions {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}x{n}", std::process::id());
    NatsOptions {
        url: format!("nats://{NATS_ADDR}"),
        stream: format!("TEST_{id}"),
        subject_prefix: format!("test{id}"),
        durable_name: format!("delivery{id}"),
        ack_wait: Duration::from_secs(5),
        request_timeout: Duration::from_secs(2),
        ..NatsOptions::default()
    }
}

/// Whether NATS runs here; without it the test is skipped, except in CI.
async fn nats_reachable() -> bool {
    if tokio::net::TcpStream::connect(NATS_ADDR).await.is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "NATS not reachable at {NATS_ADDR}"
    );
    println!("SKIPPED: NATS not reachable at {NATS_ADDR}");
    false
}

/// Runs `test` with a connection on fresh names, then deletes the stream, even on failure.
async fn with_nats<F, Fut>(test: F)
where
    F: FnOnce(Nats) -> Fut,
    Fut: Future<Output = ()>,
{
    with_options(unique_options(), test).await;
}

async fn with_options<F, Fut>(options: NatsOptions, test: F)
where
    F: FnOnce(Nats) -> Fut,
    Fut: Future<Output = ()>,
{
    if !nats_reachable().await {
        return;
    }
    // `RUST_LOG=duet_adapters=debug` shows what the adapters did when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let nats = connected(options.clone()).await;
    let outcome = AssertUnwindSafe(test(nats.clone())).catch_unwind().await;
    if let Err(err) = nats.jetstream().delete_stream(&options.stream).await {
        eprintln!("could not delete stream {}: {err}", options.stream);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A second "process" on the same names.
async fn second_process(nats: &Nats) -> Nats {
    connected(nats.options().clone()).await
}

/// A connection that is up: `Nats::connect` returns while it may still be connecting (a
/// process starts with NATS down), and live publishes are dropped until it is up.
async fn connected(options: NatsOptions) -> Nats {
    let nats = Nats::connect(options).await.expect("connect to NATS");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !nats.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected to NATS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nats
}

fn event() -> DurableEvent {
    let (a, b) = (UserId::generate(), UserId::generate());
    DurableEvent::new(
        [a, b],
        FeedEventBody::ConversationRead {
            conversation_id: ConversationId::between(a, b),
            reader_id: a,
            read_seq: 1,
        },
        Utc::now(),
    )
}

/// Counts handled events per id; fails the first attempt of each event when asked to.
#[derive(Default)]
struct Recorder {
    handled: Mutex<HashMap<Uuid, u32>>,
    attempts: Mutex<HashMap<Uuid, u32>>,
    fail_first_attempt: bool,
}

impl Recorder {
    fn failing_once() -> Self {
        Self {
            fail_first_attempt: true,
            ..Self::default()
        }
    }

    fn handled(&self) -> HashMap<Uuid, u32> {
        self.handled.lock().expect("lock").clone()
    }

    fn total(&self) -> u32 {
        self.handled().values().sum()
    }

    /// Waits until `expected` handlings were recorded (or the patience runs out).
    async fn wait_for(&self, expected: u32) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.total() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError> {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let attempt = attempts.entry(event.id).or_default();
            *attempt += 1;
            *attempt
        };
        if self.fail_first_attempt && attempt == 1 {
            return Err(StoreError::Unavailable(anyhow::anyhow!("database down")));
        }
        *self
            .handled
            .lock()
            .expect("lock")
            .entry(event.id)
            .or_default() += 1;
        Ok(())
    }
}

/// Starts a process's delivery loop; cancel the token to stop it.
fn run_delivery(
    nats: &Nats,
    handler: Arc<dyn EventHandler>,
) -> (CancellationToken, JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let consumer = DeliveryConsumer::new(nats, handler);
    let token = shutdown.clone();
    (
        shutdown,
        tokio::spawn(async move { consumer.run(token).await }),
    )
}

async fn stop(delivery: (CancellationToken, JoinHandle<()>)) {
    delivery.0.cancel();
    tokio::time::timeout(PATIENCE, delivery.1)
        .await
        .expect("delivery stops promptly")
        .expect("delivery task");
}

/// The (pending, ack pending) counts summed over the partitions' durable consumers.
async fn backlog(nats: &Nats) -> (u64, usize) {
    let options = nats.options();
    let stream = nats
        .jetstream()
        .get_stream(&options.stream)
        .await
        .expect("stream");
    let mut total = (0, 0);
    for partition in 0..options.partitions {
        let info = stream
            .consumer_info(options.partition_consumer(partition))
            .await
            .expect("consumer info");
        total.0 += info.num_pending;
        total.1 += info.num_ack_pending;
    }
    total
}

#[tokio::test]
async fn an_event_published_twice_is_handled_once() {
    with_nats(|nats| async move {
        let queue = NatsQueue::new(&nats);
        let (first, second) = (event(), event());
        queue
            .publish(std::slice::from_ref(&first))
            .await
            .expect("first publish");
        // The relay crashed before deleting the outbox row and publishes it again.
        queue
            .publish(&[first.clone(), second.clone()])
            .await
            .expect("retried publish");
        let recorder = Arc::new(Recorder::default());
        let delivery = run_delivery(&nats, recorder.clone());
        recorder.wait_for(2).await;
        // Room for a wrongly kept duplicate to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(delivery).await;
        assert_eq!(
            recorder.handled(),
            HashMap::from([(first.id, 1), (second.id, 1)])
        );
    })
    .await;
}

#[tokio::test]
async fn processes_sharing_the_consumer_handle_each_event_once_between_them() {
    with_nats(|nats| async move {
        let other = second_process(&nats).await;
        let (here, there) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let deliveries = [
            run_delivery(&nats, here.clone()),
            run_delivery(&other, there.clone()),
        ];
        let events: Vec<_> = (0..400).map(|_| event()).collect();
        let queue = NatsQueue::new(&nats);
        for batch in events.chunks(50) {
            queue.publish(batch).await.expect("publish");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while here.total() + there.total() < 400 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for delivery in deliveries {
            stop(delivery).await;
        }
        let (here, there) = (here.handled(), there.handled());
        for event in &events {
            let count = here.get(&event.id).unwrap_or(&0) + there.get(&event.id).unwrap_or(&0);
            assert_eq!(count, 1, "event {} handled {count} times", event.id);
        }
        assert_eq!(here.len() + there.len(), events.len(), "no stray events");
        assert!(
            !here.is_empty() && !there.is_empty(),
            "both processes took a share: {} and {}",
            here.len(),
            there.len()
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_event_is_redelivered_and_acked_only_after_it_succeeds() {
    with_nats(|nats| async move {
        let recorder = Arc::new(Recorder::failing_once());
        let delivery = run_delivery(&nats, recorder.clone());
        let failing = event();
        NatsQueue::new(&nats)
            .publish(std::slice::from_ref(&failing))
            .await
            .expect("publish");
        // The first attempt failed: the event must still be owed to the consumer.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while recorder.attempts.lock().expect("lock").is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (pending, ack_pending) = backlog(&nats).await;
        assert_eq!(pending + ack_pending as u64, 1, "failed event kept");
        recorder.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(delivery).await;
        assert_eq!(recorder.handled(), HashMap::from([(failing.id, 1)]));
        assert_eq!(
            recorder.attempts.lock().expect("lock").get(&failing.id),
            Some(&2)
        );
        assert_eq!(backlog(&nats).await, (0, 0), "acked after success");
    })
    .await;
}

#[tokio::test]
async fn an_undecodable_event_is_dropped_without_blocking_the_rest() {
    with_nats(|nats| async move {
        let subject = nats.options().partition_subject(0);
        nats.jetstream()
            .publish(subject, "not an event".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        let good = event();
        NatsQueue::new(&nats)
            .publish(std::slice::from_ref(&good))
            .await
            .expect("publish");
        let recorder = Arc::new(Recorder::default());
        let delivery = run_delivery(&nats, recorder.clone());
        recorder.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(delivery).await;
        assert_eq!(recorder.handled(), HashMap::from([(good.id, 1)]));
        assert_eq!(backlog(&nats).await, (0, 0), "garbage terminated");
    })
    .await;
}

fn typing(user: UserId) -> LiveEvent {
    LiveEvent::Ephemeral(Ephemeral::Typing {
        conversation_id: ConversationId::between(user, UserId::generate()),
        user_id: user,
    })
}

async fn next_item(stream: &mut (impl futures::Stream<Item = LiveItem> + Unpin)) -> LiveItem {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a live item in time")
        .expect("stream open")
}

#[tokio::test]
async fn live_events_reach_every_local_device_of_their_user_across_processes() {
    with_nats(|nats| async move {
        let other = second_process(&nats).await;
        let (here, there) = (NatsLiveBus::new(&nats), NatsLiveBus::new(&other));
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let mut phone = here.subscribe(alice).await;
        let mut laptop = here.subscribe(alice).await;
        let mut bobs = here.subscribe(bob).await;
        assert_eq!(here.local_users(), 2, "one subscription per user");

        let sent = typing(alice);
        there.publish(alice, sent.clone()).await;
        assert_eq!(next_item(&mut phone).await, LiveItem::Event(sent.clone()));
        assert_eq!(next_item(&mut laptop).await, LiveItem::Event(sent));
        let to_bob = typing(bob);
        there.publish(bob, to_bob.clone()).await;
        assert_eq!(
            next_item(&mut bobs).await,
            LiveItem::Event(to_bob),
            "alice's went to alice only"
        );

        drop(phone);
        assert_eq!(here.local_users(), 2, "the laptop still listens");
        drop(laptop);
        assert_eq!(here.local_users(), 1, "alice's subscription is gone");

        // The server no longer sends alice's events to this process at all.
        tokio::time::sleep(Duration::from_millis(100)).await;
        nats.client().flush().await.expect("flush");
        let received = nats
            .client()
            .statistics()
            .in_messages
            .load(Ordering::Relaxed);
        there.publish(alice, typing(alice)).await;
        other.client().flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            nats.client()
                .statistics()
                .in_messages
                .load(Ordering::Relaxed),
            received,
            "nobody subscribed, nothing delivered"
        );
    })
    .await;
}

#[tokio::test]
async fn a_slow_live_subscriber_is_told_it_lagged() {
    let options = NatsOptions {
        live_buffer: 2,
        ..unique_options()
    };
    with_options(options, |nats| async move {
        let bus = NatsLiveBus::new(&nats);
        let user = UserId::generate();
        let mut slow = bus.subscribe(user).await;
        for _ in 0..5 {
            bus.publish(user, typing(user)).await;
        }
        nats.client().flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(next_item(&mut slow).await, LiveItem::Lagged);
    })
    .await;
}

#[tokio::test]
async fn publishing_while_nats_is_unreachable_fails_within_the_timeout() {
    // A loopback port nobody listens on: bind one, then free it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let options = NatsOptions {
        url: format!("nats://127.0.0.1:{port}"),
        request_timeout: Duration::from_millis(500),
        ..unique_options()
    };
    let started = tokio::time::Instant::now();
    let nats = tokio::time::timeout(PATIENCE, Nats::connect(options))
        .await
        .expect("connect returns while NATS is down")
        .expect("a process starts without NATS");
    assert!(!nats.is_connected());
    let published = tokio::time::timeout(
        Duration::from_secs(3),
        NatsQueue::new(&nats).publish(&[event()]),
    )
    .await
    .expect("publish does not hang");
    assert!(
        matches!(published, Err(StoreError::Unavailable(_))),
        "got {published:?}"
    );
    // Live publishing is best effort: it returns, quietly.
    tokio::time::timeout(
        Duration::from_secs(1),
        NatsLiveBus::new(&nats).publish(UserId::generate(), typing(UserId::generate())),
    )
    .await
    .expect("live publish does not block");
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn live_subscribers_are_told_they_lagged_when_the_connection_comes_back() {
    with_nats(|nats| async move {
        let bus = NatsLiveBus::new(&nats);
        let mut device = bus.subscribe(UserId::generate()).await;
        nats.client().force_reconnect().await.expect("reconnect");
        assert_eq!(next_item(&mut device).await, LiveItem::Lagged);
    })
    .await;
}

#[tokio::test]
async fn delivery_recovers_when_the_stream_is_lost() {
    with_nats(|nats| async move {
        let recorder = Arc::new(Recorder::default());
        let delivery = run_delivery(&nats, recorder.clone());
        let queue = NatsQueue::new(&nats);
        let before = event();
        queue
            .publish(std::slice::from_ref(&before))
            .await
            .expect("publish");
        recorder.wait_for(1).await;

        let stream = &nats.options().stream;
        nats.jetstream()
            .delete_stream(stream)
            .await
            .expect("delete");
        let after = event();
        // The relay retries until the stream is back; the queue sets it up again.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while queue.publish(std::slice::from_ref(&after)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stream never came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        recorder.wait_for(2).await;
        stop(delivery).await;
        assert_eq!(
            recorder.handled(),
            HashMap::from([(before.id, 1), (after.id, 1)])
        );
    })
    .await;
}

#[tokio::test]
async fn a_process_with_another_ack_wait_still_joins_the_shared_consumer() {
    with_nats(|nats| async move {
        let recorder = Arc::new(Recorder::default());
        stop(run_delivery(&nats, recorder.clone())).await;
        // A rolling deploy changes the setting while older processes still run.
        let changed = Nats::connect(NatsOptions {
            ack_wait: nats.options().ack_wait * 2,
            ..nats.options().clone()
        })
        .await
        .expect("connect");
        let delivery = run_delivery(&changed, recorder.clone());
        let sent = event();
        NatsQueue::new(&nats)
            .publish(std::slice::from_ref(&sent))
            .await
            .expect("publish");
        recorder.wait_for(1).await;
        stop(delivery).await;
        assert_eq!(recorder.handled(), HashMap::from([(sent.id, 1)]));
    })
    .await;
}

/// `count` conversations whose events land on `count` different partitions.
fn conversations_on_distinct_partitions(nats: &Nats, count: usize) -> Vec<[UserId; 2]> {
    let mut taken = HashSet::new();
    let mut pairs = Vec::new();
    while pairs.len() < count {
        let pair = [UserId::generate(), UserId::generate()];
        if taken.insert(
            nats.options()
                .partition(ConversationId::between(pair[0], pair[1])),
        ) {
            pairs.push(pair);
        }
    }
    pairs
}

/// The `n`th event of the conversation of `members`: a read position of `n`.
fn nth_event(members: [UserId; 2], n: i64) -> DurableEvent {
    DurableEvent::new(
        members,
        FeedEventBody::ConversationRead {
            conversation_id: ConversationId::between(members[0], members[1]),
            reader_id: members[0],
            read_seq: n,
        },
        Utc::now(),
    )
}

/// Logs the events it applied in the order it applied them, shared by every "process";
/// optionally fails the first attempt of some events and takes 0–3 ms per event.
#[derive(Default)]
struct OrderLog {
    applied: Mutex<Vec<DurableEvent>>,
    attempts: Mutex<HashMap<Uuid, u32>>,
    fail_first_attempt_of: HashSet<Uuid>,
    jitter: bool,
}

impl OrderLog {
    fn applied(&self) -> Vec<DurableEvent> {
        self.applied.lock().expect("lock").clone()
    }

    fn attempts(&self, event: Uuid) -> u32 {
        *self
            .attempts
            .lock()
            .expect("lock")
            .get(&event)
            .unwrap_or(&0)
    }

    async fn wait_for(&self, expected: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.applied.lock().expect("lock").len() < expected
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The read positions applied for `conversation`, in the order they were applied.
    fn order_of(&self, conversation: ConversationId) -> Vec<i64> {
        self.applied()
            .iter()
            .filter(|event| event.body.conversation_id() == conversation)
            .map(|event| event.body.seq())
            .collect()
    }
}

#[async_trait]
impl EventHandler for OrderLog {
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError> {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let attempt = attempts.entry(event.id).or_default();
            *attempt += 1;
            *attempt
        };
        if self.jitter {
            let micros = rand::random_range(0..=3_000);
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
        if attempt == 1 && self.fail_first_attempt_of.contains(&event.id) {
            return Err(StoreError::Unavailable(anyhow::anyhow!("database down")));
        }
        self.applied.lock().expect("lock").push(event.clone());
        Ok(())
    }
}

/// A handler that records which "process" applied each event.
struct Tagged {
    log: Arc<OrderLog>,
    applied_here: AtomicU32,
}

#[async_trait]
impl EventHandler for Tagged {
    async fn handle(&self, event: &DurableEvent) -> Result<(), StoreError> {
        self.log.handle(event).await?;
        self.applied_here.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test]
async fn each_conversation_is_applied_in_publish_order_across_processes() {
    with_nats(|nats| async move {
        let other = second_process(&nats).await;
        let log = Arc::new(OrderLog {
            jitter: true,
            ..OrderLog::default()
        });
        let (here, there) = (
            Arc::new(Tagged {
                log: log.clone(),
                applied_here: AtomicU32::new(0),
            }),
            Arc::new(Tagged {
                log: log.clone(),
                applied_here: AtomicU32::new(0),
            }),
        );
        let deliveries = [
            run_delivery(&nats, here.clone()),
            run_delivery(&other, there.clone()),
        ];
        let members: Vec<[UserId; 2]> = (0..5)
            .map(|_| [UserId::generate(), UserId::generate()])
            .collect();
        // Interleaved, the way senders in five conversations would produce them.
        let events: Vec<DurableEvent> = (0..200)
            .map(|i| nth_event(members[i % 5], (i / 5) as i64 + 1))
            .collect();
        let queue = NatsQueue::new(&nats);
        for batch in events.chunks(20) {
            queue.publish(batch).await.expect("publish");
        }
        log.wait_for(events.len()).await;
        // Room for a wrongly repeated event to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for delivery in deliveries {
            stop(delivery).await;
        }

        let applied = log.applied();
        let mut counts: HashMap<Uuid, u32> = HashMap::new();
        for event in &applied {
            *counts.entry(event.id).or_default() += 1;
        }
        for event in &events {
            assert_eq!(
                counts.get(&event.id),
                Some(&1),
                "event {} applied once",
                event.id
            );
        }
        assert_eq!(applied.len(), events.len(), "no stray events");
        let expected: Vec<i64> = (1..=40).collect();
        for pair in &members {
            let conversation = ConversationId::between(pair[0], pair[1]);
            assert_eq!(
                log.order_of(conversation),
                expected,
                "conversation {conversation} applied in publish order"
            );
        }
        let (here, there) = (
            here.applied_here.load(Ordering::Relaxed),
            there.applied_here.load(Ordering::Relaxed),
        );
        assert!(
            here > 0 && there > 0,
            "both processes applied events: {here} and {there}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_event_holds_back_its_conversation_but_not_the_others() {
    with_nats(|nats| async move {
        let pairs = conversations_on_distinct_partitions(&nats, 2);
        let (stuck, free) = (pairs[0], pairs[1]);
        let (first, second) = (nth_event(stuck, 1), nth_event(stuck, 2));
        let others: Vec<DurableEvent> = (1..=10).map(|n| nth_event(free, n)).collect();
        let log = Arc::new(OrderLog {
            fail_first_attempt_of: HashSet::from([first.id]),
            ..OrderLog::default()
        });
        let other = second_process(&nats).await;
        let deliveries = [
            run_delivery(&nats, log.clone()),
            run_delivery(&other, log.clone()),
        ];
        let mut events = vec![first.clone(), second.clone()];
        events.extend(others.iter().cloned());
        NatsQueue::new(&nats)
            .publish(&events)
            .await
            .expect("publish");
        log.wait_for(events.len()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for delivery in deliveries {
            stop(delivery).await;
        }

        let applied: Vec<Uuid> = log.applied().iter().map(|event| event.id).collect();
        assert_eq!(
            applied.len(),
            events.len(),
            "each applied once: {applied:?}"
        );
        let position = |id: Uuid| applied.iter().position(|applied| *applied == id);
        let (first_at, second_at) = (
            position(first.id).expect("first applied"),
            position(second.id).expect("second applied"),
        );
        assert!(first_at < second_at, "the retried event went first");
        assert_eq!(log.attempts(first.id), 2, "failed once, then applied");
        assert_eq!(log.attempts(second.id), 1, "never tried before the first");
        // The other conversation did not wait for the redelivery (a second away).
        for event in &others {
            assert!(
                position(event.id).expect("applied") < first_at,
                "other conversations proceeded meanwhile"
            );
        }
        let conversation = ConversationId::between(free[0], free[1]);
        assert_eq!(log.order_of(conversation), (1..=10).collect::<Vec<_>>());
        assert_eq!(backlog(&nats).await, (0, 0), "all acked");
    })
    .await;
}
