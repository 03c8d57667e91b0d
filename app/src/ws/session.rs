//! One WebSocket connection: authenticate, subscribe, replay, ready, then live.
//!
//! The order is what makes the stream gap-free: the live subscription starts *before* the
//! replay reads the feed, so an event committed meanwhile is in one or the other (or both);
//! `last_sent` then drops every feed event the client already has. A lagging subscription
//! catches up from the feed the same way. The feed is the truth; live push only makes it fast.

use std::sync::Arc;

use duet_domain::ConversationId;
use duet_domain::accounts::{Caller, SessionToken};
use duet_domain::events::{Ephemeral, LiveEvent, LiveItem};
use duet_domain::inbox::Replay;
use duet_domain::presence::Announcement;
use futures::StreamExt;
use futures::stream::SplitStream;
use poem::web::websocket::{CloseCode, Message, WebSocketStream};

use super::first_frame::first_frame_auth;
use super::frames::{ClientFrame, ServerFrame, event_text};
use super::outbound::{Closed, Outbound};
use super::reorder::Reorder;
use crate::http::errors::ApiError;
use crate::state::AppState;

/// Feed events read per replay query.
const REPLAY_PAGE: u32 = 500;
/// Bounds the resync answers of one catch-up, should storage keep asking for one.
const MAX_RESYNCS: u32 = 3;

/// What the client asked for when it opened the stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Replay the feed after this cursor first; `None` replays nothing.
    pub since: Option<i64>,
    /// Also forward peers' presence changes.
    pub presence: bool,
}

/// Runs a connection to its end. `caller` is set when the upgrade request carried a valid
/// token; otherwise the first frame must authenticate.
pub async fn run(
    socket: WebSocketStream,
    state: Arc<AppState>,
    authenticated: Option<(Caller, SessionToken)>,
    options: StreamOptions,
) {
    let (sink, mut inbound) = socket.split();
    let mut out = Outbound {
        sink,
        shutdown: state.shutdown.clone(),
    };
    let (caller, token) = match authenticated {
        Some(authenticated) => authenticated,
        None => match first_frame_auth(&state, &mut inbound, &mut out).await {
            Some(authenticated) => authenticated,
            None => return,
        },
    };
    let _gauge = LiveGauge::open();
    tracing::debug!(user = %caller.user_id, ?options, "event stream opened");
    let mut session = Session {
        state,
        caller,
        token,
        typing_throttle: TypingThrottle::default(),
        out,
        last_sent: 0,
        reorder: Reorder::default(),
        wants_presence: options.presence,
    };
    if let Some(announcement) = session.state.presence.connected(caller).await {
        announce(&session.state, announcement);
    }
    let _ = session.serve(inbound, options.since).await;
    if let Some(announcement) = session.state.presence.disconnected(caller).await {
        announce(&session.state, announcement);
    }
    tracing::debug!(user = %caller.user_id, "event stream closed");
}

/// Tells the user's peers of a presence change, off the stream's path (it reads their list
/// and publishes to each).
fn announce(state: &Arc<AppState>, announcement: Announcement) {
    let state = Arc::clone(state);
    tokio::spawn(async move { state.presence.announce(announcement).await });
}

/// An authenticated connection.
struct Session {
    state: Arc<AppState>,
    caller: Caller,
    /// Checked again every `server.ws_session_check_secs`: a logout or expiry ends the stream.
    token: SessionToken,
    typing_throttle: TypingThrottle,
    out: Outbound,
    /// The newest feed cursor the client has been sent (or told to resync to).
    last_sent: i64,
    /// Whether the client opened the stream with `presence=true`.
    wants_presence: bool,
    /// Live feed events that arrived ahead of their turn.
    reorder: Reorder,
}

impl Session {
    async fn serve(
        &mut self,
        mut inbound: SplitStream<WebSocketStream>,
        since: Option<i64>,
    ) -> Result<(), Closed> {
        let mut live = self.state.live.subscribe(self.caller.user_id).await;
        match since {
            Some(since) => {
                self.last_sent = since;
                self.catch_up().await?;
            }
            None => {
                self.last_sent = match self.state.inbox.latest_cursor(self.caller).await {
                    Ok(cursor) => cursor,
                    Err(err) => return Err(self.fail(err.into()).await),
                };
            }
        }
        self.out
            .send(
                ServerFrame::Ready {
                    cursor: self.last_sent,
                }
                .to_text(),
            )
            .await?;
        let mut recheck = tokio::time::interval(std::time::Duration::from_secs(
            self.state.server.ws_session_check_secs,
        ));
        recheck.reset();
        let mut heartbeat = tokio::time::interval(self.state.presence_heartbeat);
        heartbeat.reset();
        loop {
            let gap_deadline = self.reorder.deadline();
            tokio::select! {
                _ = heartbeat.tick() => self.state.presence.heartbeat(self.caller).await,
                // A gap the live stream did not fill in time: read it from the feed.
                () = tokio::time::sleep_until(gap_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if gap_deadline.is_some() => self.catch_up_then_release().await?,
                _ = recheck.tick() => {
                    if !self.session_still_valid().await {
                        self.out.close(CloseCode::Policy, "session ended").await;
                        return Ok(());
                    }
                }
                () = self.out.shutdown.cancelled() => {
                    self.out.close(CloseCode::Away, "server shutting down").await;
                    return Ok(());
                }
                item = live.next() => match item {
                    // A hole before this cursor: the events before it are usually a moment
                    // behind (see `reorder`); hold it, or read the feed when too many wait.
                    Some(LiveItem::Event(LiveEvent::Feed(feed)))
                        if feed.cursor > self.last_sent + 1 =>
                    {
                        if self.reorder.hold(feed, tokio::time::Instant::now()) {
                            self.release().await?;
                        } else {
                            self.catch_up_then_release().await?;
                        }
                    }
                    Some(LiveItem::Event(event)) => {
                        self.forward(event).await?;
                        self.release().await?;
                    }
                    Some(LiveItem::Lagged) => self.catch_up_then_release().await?,
                    None => {
                        self.out.close(CloseCode::Again, "event stream ended").await;
                        return Ok(());
                    }
                },
                frame = inbound.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_client_frame(&text).await?,
                    Some(Ok(Message::Binary(_))) => {
                        self.send(ServerFrame::error("bad_request", "frames must be JSON text"))
                            .await?;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        // tungstenite queued the close reply; flush it so the client sees a
                        // clean close rather than a dropped connection.
                        self.out.finish().await;
                        return Ok(());
                    }
                    Some(Err(err)) => {
                        tracing::debug!(%err, "event stream read failed");
                        // tungstenite reports a frame over `server.ws_max_message_bytes` as
                        // a capacity error ("Space limit exceeded").
                        let code = if err.to_string().contains("Space limit") {
                            CloseCode::Size
                        } else {
                            CloseCode::Protocol
                        };
                        self.out.close(code, "frame refused").await;
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Whether the token is still a live session. A storage failure keeps the stream open:
    /// it will be asked again at the next check.
    async fn session_still_valid(&self) -> bool {
        match self.state.accounts.authenticate(&self.token).await {
            Ok(found) => found == Some(self.caller),
            Err(error) => {
                tracing::warn!(%error, "cannot re-check a WebSocket session");
                true
            }
        }
    }

    /// Sends every feed event after `last_sent` from the database, answering `resync` when
    /// they cannot be replayed.
    async fn catch_up(&mut self) -> Result<(), Closed> {
        let mut resyncs = 0;
        loop {
            let replay = self
                .state
                .inbox
                .replay(self.caller, self.last_sent, REPLAY_PAGE)
                .await;
            match replay {
                Err(err) => return Err(self.fail(err.into()).await),
                Ok(Replay::Events(events)) => {
                    let full_page = events.len() >= REPLAY_PAGE as usize;
                    let before = self.last_sent;
                    for event in events {
                        self.forward(LiveEvent::Feed(event)).await?;
                    }
                    if !full_page || self.last_sent == before {
                        return Ok(());
                    }
                }
                Ok(Replay::ResyncRequired { latest }) => {
                    resyncs += 1;
                    if resyncs > MAX_RESYNCS {
                        return Ok(());
                    }
                    self.send(ServerFrame::Resync { cursor: latest }).await?;
                    self.last_sent = latest;
                }
            }
        }
    }

    /// Sends the held events that are now next in line.
    async fn release(&mut self) -> Result<(), Closed> {
        while let Some(event) = self.reorder.next_after(self.last_sent) {
            self.forward(LiveEvent::Feed(event)).await?;
        }
        self.reorder.settle(tokio::time::Instant::now());
        Ok(())
    }

    async fn catch_up_then_release(&mut self) -> Result<(), Closed> {
        self.catch_up().await?;
        self.release().await
    }

    /// Sends an event unless it is a feed event the client already has.
    async fn forward(&mut self, event: LiveEvent) -> Result<(), Closed> {
        let cursor = match &event {
            LiveEvent::Feed(feed) if feed.cursor <= self.last_sent => return Ok(()),
            LiveEvent::Feed(feed) => Some(feed.cursor),
            LiveEvent::Ephemeral(Ephemeral::Presence { .. }) if !self.wants_presence => {
                return Ok(());
            }
            LiveEvent::Ephemeral(_) => None,
        };
        let text = event_text(&event).map_err(|err| {
            tracing::error!(%err, "cannot serialize a live event");
            Closed
        })?;
        self.out.send(text).await?;
        if let Some(cursor) = cursor {
            self.last_sent = cursor;
        }
        Ok(())
    }

    async fn on_client_frame(&mut self, text: &str) -> Result<(), Closed> {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Ping) => self.send(ServerFrame::Pong).await,
            Ok(ClientFrame::Typing { conversation_id }) => {
                if !self.typing_throttle.allow(conversation_id) {
                    return Ok(());
                }
                let typed = self
                    .state
                    .conversations
                    .typing(self.caller, ConversationId(conversation_id))
                    .await;
                match typed {
                    Ok(()) => Ok(()),
                    Err(err) => self.send(ServerFrame::from_api_error(&err.into())).await,
                }
            }
            Ok(ClientFrame::Auth { .. }) => {
                self.send(ServerFrame::error("bad_request", "already authenticated"))
                    .await
            }
            Err(err) => {
                self.send(ServerFrame::error(
                    "bad_request",
                    format!("malformed frame: {err}"),
                ))
                .await
            }
        }
    }

    async fn send(&mut self, frame: ServerFrame) -> Result<(), Closed> {
        self.out.send(frame.to_text()).await
    }

    /// Tells the client why the stream stops (storage trouble) and closes it.
    async fn fail(&mut self, err: ApiError) -> Closed {
        self.out.reject(ServerFrame::from_api_error(&err)).await;
        Closed
    }
}

/// Counts authenticated connections in `duet_live_connections` for as long as it lives.
struct LiveGauge;

impl LiveGauge {
    fn open() -> Self {
        metrics::gauge!("duet_live_connections").increment(1.0);
        Self
    }
}

impl Drop for LiveGauge {
    fn drop(&mut self) {
        metrics::gauge!("duet_live_connections").decrement(1.0);
    }
}

/// How often one socket may signal typing in one conversation; repeats inside it are dropped
/// (typing is droppable), so a chatty client costs one membership check and one publish per
/// conversation per interval, not one per keystroke.
const TYPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Remembers when this socket last relayed typing, per conversation (a few at most).
#[derive(Default)]
struct TypingThrottle {
    last: std::collections::HashMap<uuid::Uuid, tokio::time::Instant>,
}

impl TypingThrottle {
    fn allow(&mut self, conversation: uuid::Uuid) -> bool {
        let now = tokio::time::Instant::now();
        if self
            .last
            .get(&conversation)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return false;
        }
        self.last
            .retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        self.last.insert(conversation, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn typing_is_relayed_once_per_conversation_per_interval() {
        let mut throttle = TypingThrottle::default();
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert!(throttle.allow(a));
        assert!(!throttle.allow(a));
        assert!(throttle.allow(b));
        tokio::time::advance(TYPING_INTERVAL).await;
        assert!(throttle.allow(a));
        assert_eq!(throttle.last.len(), 1, "expired entries are forgotten");
    }
}
