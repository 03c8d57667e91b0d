//! Live fan-out over core NATS: at most once, never stored.

use crate::live_stream::GuardedStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::Subscriber;
use async_nats::client::RequestErrorKind;
use async_trait::async_trait;
use duet_domain::UserId;
use duet_domain::events::{LiveBus, LiveEvent, LiveItem};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Nats;

/// Longest a live publish may wait for room in the client's outgoing queue; beyond it the
/// event is dropped (the device catches up from its feed).
const PUBLISH_WAIT: Duration = Duration::from_millis(250);

/// Publishes each user's live events to `{prefix}.live.{user}` and fans them out to this
/// process's devices of that user.
///
/// A process holds ONE NATS subscription per connected user, shared by all of that user's
/// local devices through a bounded broadcast channel, and drops it with the last device.
/// Core NATS does not keep what it could not deliver, so every reconnection tells every
/// local device it lagged: it catches up from the feed, which is the truth.
pub struct NatsLiveBus {
    nats: Nats,
    users: Arc<Users>,
    _lag_on_reconnect: DropGuard,
}

type Users = Mutex<HashMap<UserId, UserChannel>>;

/// The local fan-out of one user's subject.
struct UserChannel {
    sender: broadcast::Sender<LiveItem>,
    /// The task forwarding the NATS subscription; aborting it drops (unsubscribes) it.
    /// `None` while NATS could not take the subscription (down or unresponsive): the next
    /// device of the user, or the reconnection, subscribes then.
    forwarder: Option<AbortHandle>,
}

impl NatsLiveBus {
    pub fn new(nats: &Nats) -> Self {
        let users = Arc::new(Users::default());
        let stop = CancellationToken::new();
        tokio::spawn(lag_on_reconnect(
            nats.clone(),
            Arc::downgrade(&users),
            stop.clone(),
        ));
        Self {
            nats: nats.clone(),
            users,
            _lag_on_reconnect: stop.drop_guard(),
        }
    }

    /// Users with at least one device subscribed on this process (one NATS subscription each).
    pub fn local_users(&self) -> usize {
        lock(&self.users).len()
    }

    /// A receiver on `user`'s channel if there is one, and whether it still lacks its NATS
    /// subscription.
    fn join(&self, user: UserId) -> Option<(broadcast::Receiver<LiveItem>, bool)> {
        lock(&self.users)
            .get(&user)
            .map(|channel| (channel.sender.subscribe(), channel.forwarder.is_none()))
    }

    /// Joins the channel another caller started meanwhile, or starts one over `subscriber`.
    fn join_or_start(
        &self,
        user: UserId,
        subscriber: Option<Subscriber>,
    ) -> broadcast::Receiver<LiveItem> {
        let mut users = lock(&self.users);
        if let Some(channel) = users.get(&user) {
            let receiver = channel.sender.subscribe();
            drop(users);
            if let Some(subscriber) = subscriber {
                attach(&self.users, user, subscriber);
            }
            return receiver;
        }
        let (sender, receiver) = broadcast::channel(self.nats.options().live_buffer);
        let forwarder = subscriber
            .map(|subscriber| tokio::spawn(forward(subscriber, sender.clone())).abort_handle());
        users.insert(user, UserChannel { sender, forwarder });
        receiver
    }
}

/// Subscribes to `user`'s subject, unless NATS is down or does not take it within the
/// request timeout (its outgoing queue can be full while it reconnects): a device must
/// never wait on the broker to get its stream.
async fn try_subscribe(nats: &Nats, user: UserId) -> Option<Subscriber> {
    if !nats.is_connected() {
        return None;
    }
    let subject = nats.options().live_subject(user);
    match tokio::time::timeout(
        nats.options().request_timeout,
        nats.client().subscribe(subject),
    )
    .await
    {
        Ok(Ok(subscriber)) => Some(subscriber),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "live subscription failed");
            None
        }
        Err(_) => {
            tracing::warn!("live subscription timed out");
            None
        }
    }
}

/// Gives `user`'s channel its NATS subscription if it still has none (else `subscriber`
/// drops here and unsubscribes).
fn attach(users: &Users, user: UserId, subscriber: Subscriber) {
    let mut users = lock(users);
    if let Some(channel) = users.get_mut(&user)
        && channel.forwarder.is_none()
    {
        channel.forwarder =
            Some(tokio::spawn(forward(subscriber, channel.sender.clone())).abort_handle());
    }
}

#[async_trait]
impl LiveBus for NatsLiveBus {
    async fn publish(&self, user: UserId, event: LiveEvent) {
        if !self.nats.is_connected() {
            metrics::counter!("duet_nats_live_dropped_total").increment(1);
            return;
        }
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "live event not serializable");
                metrics::counter!("duet_nats_live_dropped_total").increment(1);
                return;
            }
        };
        let subject = self.nats.options().live_subject(user);
        match tokio::time::timeout(
            PUBLISH_WAIT,
            self.nats.client().publish(subject, payload.into()),
        )
        .await
        {
            Ok(Ok(())) => metrics::counter!("duet_nats_live_published_total").increment(1),
            Ok(Err(_)) | Err(_) => metrics::counter!("duet_nats_live_dropped_total").increment(1),
        }
    }

    async fn subscribe(&self, user: UserId) -> BoxStream<'static, LiveItem> {
        let receiver = match self.join(user) {
            Some((receiver, false)) => receiver,
            Some((receiver, true)) => {
                if let Some(subscriber) = try_subscribe(&self.nats, user).await {
                    attach(&self.users, user, subscriber);
                }
                receiver
            }
            None => {
                let subscriber = try_subscribe(&self.nats, user).await;
                self.join_or_start(user, subscriber)
            }
        };
        // The caller reads its snapshot after this returns: the server must know the
        // subscription by then, or events in between would be missed. When NATS is down,
        // the reconnect lags this subscriber instead.
        if self.nats.is_connected() {
            confirm_subscriptions(&self.nats).await;
        }
        let items = BroadcastStream::new(receiver)
            .map(|item| match item {
                Ok(item) => item,
                Err(BroadcastStreamRecvError::Lagged(_)) => LiveItem::Lagged,
            })
            .boxed();
        let unsubscribe = Unsubscribe {
            users: Arc::clone(&self.users),
            user,
        };
        GuardedStream::new(items, unsubscribe).boxed()
    }
}

/// Waits until the server has processed every subscription this connection sent so far.
///
/// `Client::flush` only says the bytes left this process; the server reads each connection
/// on its own, so another process's publish could still overtake them. The server handles a
/// connection's commands in order, though: once it answers a request sent after them (here
/// with "no responders", as nothing listens on that subject), they are in force.
async fn confirm_subscriptions(nats: &Nats) {
    let subject = format!("{}.live.confirm", nats.options().subject_prefix);
    let timeout = nats.options().request_timeout;
    let reply = tokio::time::timeout(timeout, nats.client().request(subject, Default::default()));
    let answered = match reply.await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => err.kind() == RequestErrorKind::NoResponders,
        Err(_) => false,
    };
    if !answered {
        tracing::debug!("live subscription not confirmed by NATS");
    }
}

/// Forwards one user's NATS messages to the local channel until aborted.
async fn forward(mut subscriber: Subscriber, sender: broadcast::Sender<LiveItem>) {
    while let Some(message) = subscriber.next().await {
        match serde_json::from_slice::<LiveEvent>(&message.payload) {
            // No local receiver left only means the channel is about to be removed.
            Ok(event) => drop(sender.send(LiveItem::Event(event))),
            Err(err) => {
                tracing::warn!(error = %err, subject = %message.subject, "undecodable live event dropped")
            }
        }
    }
}

/// Whenever the connection comes back: subscribes the users whose subscription NATS could
/// not take while it was away, then lags every local subscriber.
async fn lag_on_reconnect(nats: Nats, users: std::sync::Weak<Users>, stop: CancellationToken) {
    let mut connects: watch::Receiver<u64> = nats.connects();
    connects.borrow_and_update();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = connects.changed() => if changed.is_err() { return },
        }
        let Some(users) = users.upgrade() else { return };
        let unsubscribed: Vec<UserId> = lock(&users)
            .iter()
            .filter(|(_, channel)| channel.forwarder.is_none())
            .map(|(user, _)| *user)
            .collect();
        for user in unsubscribed {
            if let Some(subscriber) = try_subscribe(&nats, user).await {
                attach(&users, user, subscriber);
            }
        }
        let users = lock(&users);
        tracing::info!(
            users = users.len(),
            "NATS reconnected: live subscribers catch up"
        );
        for channel in users.values() {
            drop(channel.sender.send(LiveItem::Lagged));
        }
    }
}

fn lock(users: &Users) -> MutexGuard<'_, HashMap<UserId, UserChannel>> {
    // A poisoned lock only means another thread panicked mid-insert; the map is intact.
    users
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Dropped with a device's stream: the user's last local device takes the NATS
/// subscription with it.
struct Unsubscribe {
    users: Arc<Users>,
    user: UserId,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut users = lock(&self.users);
        // New subscribers take the lock first, so none can join between count and removal.
        if users
            .get(&self.user)
            .is_some_and(|channel| channel.sender.receiver_count() == 0)
            && let Some(channel) = users.remove(&self.user)
            && let Some(forwarder) = channel.forwarder
        {
            forwarder.abort();
        }
    }
}
