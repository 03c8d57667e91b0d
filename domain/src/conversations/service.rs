use std::sync::Arc;

use tracing::instrument;

use super::{
    AppendOutcome, Appended, ClientMsgId, Conversation, ConversationStore, HistoryPage,
    HistoryQuery, MarkedRead, MessageBody, NewMessage,
};
use crate::accounts::{AccountStore, Caller, Handle, InvalidInput};
use crate::cache::{HistoryCache, SendDecision, SendLimiter, latest_page};
use crate::clock::{Clock, SystemClock};
use crate::events::{Delivered, DeliveryPressure, Ephemeral, LiveBus, LiveEvent};
use crate::inbox::{ConversationView, FeedEventBody, InboxStore};
use crate::{ConversationId, MessageId, StoreError};

/// The most messages or conversations one page may hold.
pub const MAX_PAGE_SIZE: u32 = 200;

/// What can go wrong in a conversation use case.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The conversation does not exist *or the caller is not in it*: the two are never told
    /// apart, so nobody learns of a conversation they are not in.
    #[error("no such conversation")]
    NotFound,
    #[error("no user has this handle")]
    PeerNotFound,
    /// The caller sent faster than their quota allows; nothing was stored.
    #[error("too many messages; retry in {retry_after:?}")]
    RateLimited { retry_after: std::time::Duration },
    /// Delivery is too far behind to take more sends; nothing was stored.
    #[error("delivery is behind; retry in {retry_after:?}")]
    Overloaded { retry_after: std::time::Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opening conversations, sending, reading history and read receipts.
pub struct ConversationService {
    accounts: Arc<dyn AccountStore>,
    conversations: Arc<dyn ConversationStore>,
    inbox: Arc<dyn InboxStore>,
    live: Arc<dyn LiveBus>,
    /// Serves "latest page" reads when set; validated against the conversation's `last_seq`.
    history_cache: Option<Arc<dyn HistoryCache>>,
    /// Caps each user's send rate when set.
    send_limit: Option<Arc<dyn SendLimiter>>,
    /// Refuses sends while delivery lags, when set.
    pressure: Option<Arc<dyn DeliveryPressure>>,
    clock: Arc<dyn Clock>,
}

impl ConversationService {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        conversations: Arc<dyn ConversationStore>,
        inbox: Arc<dyn InboxStore>,
        live: Arc<dyn LiveBus>,
    ) -> Self {
        Self {
            accounts,
            conversations,
            inbox,
            live,
            history_cache: None,
            send_limit: None,
            pressure: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reads the newest page of a conversation from `cache` when it provably is the newest,
    /// and writes each new message through to it.
    #[must_use]
    pub fn with_history_cache(mut self, cache: Arc<dyn HistoryCache>) -> Self {
        self.history_cache = Some(cache);
        self
    }

    /// Refuses sends beyond each user's quota with [`ConversationError::RateLimited`].
    #[must_use]
    pub fn with_send_limit(mut self, limiter: Arc<dyn SendLimiter>) -> Self {
        self.send_limit = Some(limiter);
        self
    }

    /// Refuses sends with [`ConversationError::Overloaded`] while `pressure` says delivery is
    /// too far behind.
    #[must_use]
    pub fn with_delivery_pressure(mut self, pressure: Arc<dyn DeliveryPressure>) -> Self {
        self.pressure = Some(pressure);
        self
    }

    /// Opens (or finds) the conversation with the user holding `peer_handle`. Returns the
    /// conversation and whether this call created it.
    ///
    /// # Errors
    /// `PeerNotFound` for an unknown handle; `Invalid` for a conversation with oneself.
    #[instrument(skip(self))]
    pub async fn open(
        &self,
        caller: Caller,
        peer_handle: &str,
    ) -> Result<(ConversationView, bool), ConversationError> {
        let handle = Handle::parse(peer_handle).map_err(|_| ConversationError::PeerNotFound)?;
        let peer = self
            .accounts
            .user_id_by_handle(&handle)
            .await?
            .ok_or(ConversationError::PeerNotFound)?;
        if peer == caller.user_id {
            return Err(InvalidInput::new(
                "peer_handle",
                "cannot open a conversation with yourself",
            )
            .into());
        }
        let now = self.clock.now();
        let (conversation, created) = self
            .conversations
            .open(Conversation::new_between(caller.user_id, peer, now))
            .await?;
        self.inbox
            .open_entry(caller.user_id, conversation.id, peer, now)
            .await?;
        Ok((self.view(caller, conversation).await?, created))
    }

    /// The conversation as the caller sees it, read from its authoritative record.
    ///
    /// # Errors
    /// `NotFound` when it does not exist or the caller is not in it.
    pub async fn get(
        &self,
        caller: Caller,
        id: ConversationId,
    ) -> Result<ConversationView, ConversationError> {
        let conversation = self.membership(caller, id).await?;
        self.view(caller, conversation).await
    }

    /// Sends a message, or returns the original when `client_msg_id` was already used by the
    /// caller in this conversation. When the store delivered the message inline (see
    /// [`ConversationStore::append`]), pushes its feed events to both members' devices
    /// before returning; otherwise the relay's delivery does.
    ///
    /// Run it to the end once started: dropped after the commit, the inline push is lost
    /// (the feed still has the message; devices get it on their next catch-up).
    ///
    /// # Errors
    /// `Invalid` for a bad body or client id; `NotFound` as for [`Self::get`];
    /// `RateLimited` when the caller is over their send quota, `Overloaded` while delivery is
    /// too far behind (both checked before the database is touched, so a flood costs it
    /// nothing).
    #[instrument(skip(self, body))]
    pub async fn send(
        &self,
        caller: Caller,
        id: ConversationId,
        client_msg_id: String,
        body: String,
    ) -> Result<Appended, ConversationError> {
        let client_msg_id = ClientMsgId::parse(client_msg_id)?;
        let body = MessageBody::parse(body)?;
        // Before the quota, which would count a send that is refused anyway.
        if let Some(retry_after) = self.pressure.as_ref().and_then(|p| p.refuse_for()) {
            return Err(ConversationError::Overloaded { retry_after });
        }
        if let Some(limiter) = &self.send_limit
            && let SendDecision::Limited { retry_after } = limiter.check(caller.user_id).await
        {
            return Err(ConversationError::RateLimited { retry_after });
        }
        // The store checks membership inside the append (`None` for a stranger's
        // conversation), so a send costs no read before its write.
        let message = NewMessage {
            id: MessageId::generate(),
            conversation_id: id,
            sender_id: caller.user_id,
            client_msg_id: client_msg_id.into_inner(),
            body: body.into_inner(),
            created_at: self.clock.now(),
        };
        let AppendOutcome {
            appended,
            delivered,
        } = self
            .conversations
            .append(message)
            .await?
            .ok_or(ConversationError::NotFound)?;
        // Delivered inline: the inboxes were written with the message, so no relay will push
        // it; this send does, now that it is committed, before anything else can wait.
        for Delivered { user, event } in delivered {
            self.live.publish(user, LiveEvent::Feed(event)).await;
        }
        // A replay was written through (or read back) the first time; only new ones go in.
        if let (Some(cache), Appended::Created(message)) = (&self.history_cache, &appended) {
            cache.remember(id, std::slice::from_ref(message)).await;
        }
        Ok(appended)
    }

    /// A page of history in ascending seq. With a history cache, a "latest" read (no
    /// `before_seq`/`after_seq`, `limit` within the cache's capacity) is answered from the
    /// cache when the cached page provably holds the newest messages as of the
    /// conversation's `last_seq`; the answer is the same either way.
    ///
    /// # Errors
    /// `Invalid` for a bad limit or negative seq; `NotFound` as for [`Self::get`].
    pub async fn history(
        &self,
        caller: Caller,
        id: ConversationId,
        query: HistoryQuery,
    ) -> Result<HistoryPage, ConversationError> {
        check_page_size(query.limit)?;
        if query.before_seq.is_some_and(|s| s < 0) || query.after_seq.is_some_and(|s| s < 0) {
            return Err(InvalidInput::new("seq", "must not be negative").into());
        }
        let conversation = self.membership(caller, id).await?;
        let latest = query.before_seq.is_none() && query.after_seq.is_none();
        let cache = self
            .history_cache
            .as_ref()
            .filter(|cache| latest && query.limit <= cache.capacity());
        if let Some(cache) = cache
            && let Some(page) = cache.latest(id, query.limit, conversation.last_seq).await
        {
            // The adapter validated it already; checking again keeps a faulty adapter from
            // ever changing an answer, at the cost of one pass over the page.
            match latest_page(&page.items, query.limit, conversation.last_seq) {
                Some(page) => return Ok(page),
                None => {
                    tracing::warn!(conversation = %id, "history cache answered an invalid page")
                }
            }
        }
        // On a cache miss, read a whole cache page (the query's own rows plus older ones),
        // so the next reader finds it.
        let read = match cache {
            Some(cache) => HistoryQuery {
                limit: query.limit.max(cache.capacity()),
                ..query
            },
            None => query,
        };
        let mut items = self.conversations.history(id, read).await?;
        if let Some(cache) = cache {
            cache.remember(id, &items).await;
        }
        let has_more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        if query.after_seq.is_none() {
            items.reverse();
        }
        Ok(HistoryPage { items, has_more })
    }

    /// Moves the caller's read position forward to `seq`; a lower `seq` changes nothing.
    ///
    /// When the position moved, the caller's own inbox learns it before the answer is built,
    /// so the answer's `version` is the one a following read of the conversation shows; the
    /// peer's inbox learns it through delivery, like every other change.
    ///
    /// # Errors
    /// `Invalid` when `seq` is negative or past the newest message; `NotFound` as for
    /// [`Self::get`].
    #[instrument(skip(self))]
    pub async fn mark_read(
        &self,
        caller: Caller,
        id: ConversationId,
        seq: i64,
    ) -> Result<ConversationView, ConversationError> {
        if seq < 0 {
            return Err(InvalidInput::new("seq", "must not be negative").into());
        }
        self.membership(caller, id).await?;
        match self
            .conversations
            .mark_read(id, caller.user_id, seq)
            .await?
            .ok_or(ConversationError::NotFound)?
        {
            MarkedRead::Done {
                conversation,
                moved,
            } => {
                // Only the event this call wrote, for exactly `seq`: a position found already
                // past it (say, moved by the caller's own send) wrote none, and applying one
                // anyway would take the feed slot of a real read receipt of that seq.
                if moved {
                    self.apply_own_read(caller, &conversation, seq).await?;
                }
                self.view(caller, conversation).await
            }
            MarkedRead::BeyondLast(_) => {
                Err(InvalidInput::new("seq", "is past the newest message").into())
            }
        }
    }

    /// Folds the caller's new read position into their own inbox now, and pushes the feed
    /// event to their devices, instead of leaving both to delivery. Delivery still carries
    /// the outbox event to both inboxes: applying it again to this one is a no-op (a feed
    /// holds each (conversation, kind, seq) once), so it is neither counted nor pushed twice.
    async fn apply_own_read(
        &self,
        caller: Caller,
        conversation: &Conversation,
        read_seq: i64,
    ) -> Result<(), StoreError> {
        let me = caller.user_id;
        let event = FeedEventBody::ConversationRead {
            conversation_id: conversation.id,
            reader_id: me,
            read_seq,
        };
        let peer = conversation.peer_of(me);
        if let Some(applied) = self.inbox.apply(me, peer, &event, self.clock.now()).await? {
            self.live.publish(me, LiveEvent::Feed(applied)).await;
        }
        Ok(())
    }

    /// Tells the peer's devices that the caller is typing. Never stored.
    ///
    /// # Errors
    /// `NotFound` as for [`Self::get`].
    pub async fn typing(
        &self,
        caller: Caller,
        id: ConversationId,
    ) -> Result<(), ConversationError> {
        let conversation = self.membership(caller, id).await?;
        let event = Ephemeral::Typing {
            conversation_id: id,
            user_id: caller.user_id,
        };
        self.live
            .publish(
                conversation.peer_of(caller.user_id),
                LiveEvent::Ephemeral(event),
            )
            .await;
        Ok(())
    }

    /// The conversation, if the caller is in it.
    async fn membership(
        &self,
        caller: Caller,
        id: ConversationId,
    ) -> Result<Conversation, ConversationError> {
        self.conversations
            .conversation(id, caller.user_id)
            .await?
            .ok_or(ConversationError::NotFound)
    }

    async fn view(
        &self,
        caller: Caller,
        conversation: Conversation,
    ) -> Result<ConversationView, ConversationError> {
        let me = caller.user_id;
        let peer_id = conversation.peer_of(me);
        let peer =
            self.accounts.user(peer_id).await?.ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("peer {peer_id} is missing"))
            })?;
        let last_message = match conversation.last_seq {
            0 => None,
            seq => self.conversations.message(conversation.id, seq).await?,
        };
        let version = self
            .inbox
            .entry(me, conversation.id)
            .await?
            .map_or(0, |e| e.version);
        Ok(ConversationView {
            id: conversation.id,
            peer,
            last_message,
            last_seq: conversation.last_seq,
            read_seq: conversation.read_seq_of(me),
            peer_read_seq: conversation.read_seq_of(peer_id),
            updated_at: conversation.updated_at,
            version,
        })
    }
}

/// Checks a requested page size against `1..=MAX_PAGE_SIZE`.
///
/// # Errors
/// Returns [`InvalidInput`] for `limit` outside the bounds.
pub fn check_page_size(limit: u32) -> Result<(), InvalidInput> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "limit",
            format!("must be 1–{MAX_PAGE_SIZE}"),
        ))
    }
}
