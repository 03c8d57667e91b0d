//! Presence: who is online, told to the people they talk to and nobody else.
//!
//! A device that opens the event stream marks its user connected, beats while it stays, and
//! marks them disconnected when it goes. Each change is announced on the droppable live lane
//! to the user's most recent conversation peers; any member can also ask for the status of
//! their peer in a conversation. A user's presence is never shown to someone who does not
//! share a conversation with them.

use std::sync::Arc;

use crate::ConversationId;
use crate::accounts::Caller;
use crate::cache::{Presence, PresenceStatus};
use crate::conversations::{ConversationError, ConversationStore};
use crate::events::{Ephemeral, LiveBus, LiveEvent};
use crate::inbox::InboxStore;

/// How many of a user's most recent conversations hear about their presence changes.
pub const ANNOUNCE_TO_PEERS: u32 = 200;

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

    /// A device of the caller connected: they are online, and their peers hear it.
    pub async fn connected(&self, caller: Caller) {
        self.presence.connected(caller.user_id).await;
        self.announce(caller).await;
    }

    /// The caller's device is still connected.
    pub async fn heartbeat(&self, caller: Caller) {
        self.presence.heartbeat(caller.user_id).await;
    }

    /// A device of the caller went away; if it was their last, their peers hear they are
    /// offline.
    pub async fn disconnected(&self, caller: Caller) {
        self.presence.disconnected(caller.user_id).await;
        self.announce(caller).await;
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
        let status = self.presence.status(&[peer]).await;
        Ok(status.into_iter().next().unwrap_or(PresenceStatus {
            user_id: peer,
            online: false,
            last_seen: None,
        }))
    }

    /// Sends the caller's current status to their most recent peers. Best effort: a
    /// failure to list them costs only the announcement.
    async fn announce(&self, caller: Caller) {
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
        tracing::debug!(user = %caller.user_id, online = status.online, peers = entries.len(), "announcing presence");
        for entry in entries {
            self.live.publish(entry.peer_id, event.clone()).await;
        }
    }
}
