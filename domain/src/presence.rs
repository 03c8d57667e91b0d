//! Presence: who is online, told to the people they talk to and nobody else.
//!
//! A device that opens the event stream marks its user connected, beats while it stays, and
//! marks them disconnected when it goes. When that turns the user online or offline, the
//! change is announced on the droppable live lane to the peers of the user's most recent
//! conversations; a member can also ask for the status of their peer in a conversation.
//!
//! Presence is shown only to people the user talks to: a conversation discloses a user's
//! presence to their peer once the user has taken part in it (sent or read a message), so
//! opening a conversation with someone's handle reveals nothing about them.

use std::sync::Arc;

use crate::ConversationId;
use crate::accounts::Caller;
use crate::cache::{Presence, PresenceStatus};
use crate::conversations::{ConversationError, ConversationStore};
use crate::events::{Ephemeral, LiveBus, LiveEvent};
use crate::inbox::InboxStore;

/// How many of a user's most recent conversations hear about their presence changes.
pub const ANNOUNCE_TO_PEERS: u32 = 200;

/// A user's presence changed and their peers should hear it: [`PresenceService::announce`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Announcement(Caller);

pub struct PresenceService {
    presence: Arc<dyn Presence>,
    conversations: Arc<dyn ConversationStore>,
    inbox: Arc<dyn InboxStore>,
    live: Arc<dyn LiveBus>,
}

impl PresenceService {
    pub fn new(
        presence: Arc<dyn Presence>,
        conversations: Arc<dyn ConversationStore>,
        inbox: Arc<dyn InboxStore>,
        live: Arc<dyn LiveBus>,
    ) -> Self {
        Self {
            presence,
            conversations,
            inbox,
            live,
        }
    }

    /// A device of the caller connected. Returns the announcement to make when this turned
    /// them online (their first device); the caller runs it off the request path.
    pub async fn connected(&self, caller: Caller) -> Option<Announcement> {
        let was_online = self.is_online(caller).await;
        self.presence.connected(caller.user_id).await;
        (!was_online).then_some(Announcement(caller))
    }

    /// The caller's device is still connected.
    pub async fn heartbeat(&self, caller: Caller) {
        self.presence.heartbeat(caller.user_id).await;
    }

    /// A device of the caller went away. Returns the announcement to make when it was their
    /// last (they are offline now).
    pub async fn disconnected(&self, caller: Caller) -> Option<Announcement> {
        self.presence.disconnected(caller.user_id).await;
        (!self.is_online(caller).await).then_some(Announcement(caller))
    }

    async fn is_online(&self, caller: Caller) -> bool {
        self.presence
            .status(&[caller.user_id])
            .await
            .first()
            .is_some_and(|status| status.online)
    }

    /// The presence of the caller's peer in conversation `id`.
    ///
    /// # Errors
    /// `NotFound` when the conversation does not exist or the caller is not in it.
    pub async fn peer(
        &self,
        caller: Caller,
        id: ConversationId,
    ) -> Result<PresenceStatus, ConversationError> {
        let conversation = self
            .conversations
            .conversation(id, caller.user_id)
            .await?
            .ok_or(ConversationError::NotFound)?;
        let peer = conversation.peer_of(caller.user_id);
        let undisclosed = PresenceStatus {
            user_id: peer,
            online: false,
            last_seen: None,
        };
        if conversation.read_seq_of(peer) == 0 {
            // The peer has not taken part yet: their presence is theirs to keep.
            return Ok(undisclosed);
        }
        let status = self.presence.status(&[peer]).await;
        Ok(status.into_iter().next().unwrap_or(undisclosed))
    }

    /// Sends the user's current status to the peers of the conversations they took part in
    /// (most recent first). Best effort: a failure to list them costs only the announcement.
    pub async fn announce(&self, Announcement(caller): Announcement) {
        let Some(status) = self
            .presence
            .status(&[caller.user_id])
            .await
            .into_iter()
            .next()
        else {
            return;
        };
        let entries = match self
            .inbox
            .list(caller.user_id, None, ANNOUNCE_TO_PEERS)
            .await
        {
            Ok(entries) => entries,
            Err(err) => {
                tracing::debug!(error = %err, "presence not announced: the peer list failed");
                return;
            }
        };
        let event = LiveEvent::Ephemeral(Ephemeral::Presence {
            user_id: caller.user_id,
            online: status.online,
            last_seen: status.last_seen,
        });
        for entry in entries.iter().filter(|entry| entry.read_seq > 0) {
            self.live.publish(entry.peer_id, event.clone()).await;
        }
    }
}
