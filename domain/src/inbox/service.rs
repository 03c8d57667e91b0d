use std::collections::HashMap;
use std::sync::Arc;

use super::{ConversationView, InboxEntry, InboxPage, InboxStore, Replay, SyncPage};
use crate::StoreError;
use crate::accounts::{AccountStore, Caller, InvalidInput};
use crate::conversations::check_page_size;

/// Reading a user's inbox: the conversation list, sync and event replay.
pub struct InboxService {
    accounts: Arc<dyn AccountStore>,
    inbox: Arc<dyn InboxStore>,
}

/// What can go wrong reading an inbox.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InboxService {
    pub fn new(accounts: Arc<dyn AccountStore>, inbox: Arc<dyn InboxStore>) -> Self {
        Self { accounts, inbox }
    }

    /// The caller's conversations, newest activity first, starting below `cursor`.
    ///
    /// # Errors
    /// `Invalid` for a bad limit or cursor.
    pub async fn list(
        &self,
        caller: Caller,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<InboxPage, InboxError> {
        check_page_size(limit)?;
        if cursor.is_some_and(|c| c < 0) {
            return Err(InvalidInput::new("cursor", "is not a valid cursor").into());
        }
        let mut entries = self.inbox.list(caller.user_id, cursor, limit + 1).await?;
        let has_more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next_cursor = has_more
            .then(|| entries.last().map(|e| e.activity))
            .flatten();
        Ok(InboxPage {
            items: self.views(entries).await?,
            next_cursor,
        })
    }

    /// Conversations changed since `since`, oldest change first.
    ///
    /// # Errors
    /// `Invalid` for a bad limit or cursor.
    pub async fn sync(
        &self,
        caller: Caller,
        since: i64,
        limit: u32,
    ) -> Result<SyncPage, InboxError> {
        check_page_size(limit)?;
        if since < 0 {
            return Err(InvalidInput::new("since", "is not a valid cursor").into());
        }
        let mut entries = self
            .inbox
            .changed_since(caller.user_id, since, limit + 1)
            .await?;
        let has_more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let cursor = entries.last().map_or(since, |e| e.version);
        Ok(SyncPage {
            changes: self.views(entries).await?,
            cursor,
            has_more,
        })
    }

    /// Feed events after `since`, or a resync answer.
    ///
    /// # Errors
    /// `Invalid` for a negative cursor.
    pub async fn replay(
        &self,
        caller: Caller,
        since: i64,
        limit: u32,
    ) -> Result<Replay, InboxError> {
        if since < 0 {
            return Err(InvalidInput::new("since", "is not a valid cursor").into());
        }
        Ok(self.inbox.replay(caller.user_id, since, limit).await?)
    }

    /// The newest cursor in the caller's feed.
    pub async fn latest_cursor(&self, caller: Caller) -> Result<i64, StoreError> {
        self.inbox.latest_cursor(caller.user_id).await
    }

    async fn views(&self, entries: Vec<InboxEntry>) -> Result<Vec<ConversationView>, StoreError> {
        let peer_ids: Vec<_> = entries.iter().map(|e| e.peer_id).collect();
        let peers: HashMap<_, _> = self
            .accounts
            .users(&peer_ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                // A peer that cannot be found must not take the whole page down with it.
                let Some(peer) = peers.get(&e.peer_id).cloned() else {
                    tracing::warn!(peer = %e.peer_id, conversation = %e.conversation_id, "inbox entry without its peer");
                    return None;
                };
                Some(ConversationView {
                    id: e.conversation_id,
                    peer,
                    last_message: e.last_message,
                    last_seq: e.last_seq,
                    read_seq: e.read_seq,
                    peer_read_seq: e.peer_read_seq,
                    updated_at: e.updated_at,
                    version: e.version,
                })
            })
            .collect())
    }
}
