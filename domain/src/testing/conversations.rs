use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{Journal, MemoryInbox, Step, lock};
use crate::conversations::{
    AppendOutcome, Appended, Conversation, ConversationStore, HistoryQuery, MarkedRead, Message,
    NewMessage,
};
use crate::events::Delivered;
use crate::inbox::{FeedEventBody, InboxStore};
use crate::{ConversationId, StoreError, UserId};

/// Conversations and their messages in maps. Writes no outbox: tests of delivery drive it
/// with events of their own. Records each append in its journal, so a test can tell a
/// refused send touched nothing; told to, it delivers new messages inline, or fails appends.
#[derive(Default)]
pub struct MemoryConversationStore {
    state: Mutex<HashMap<ConversationId, Stored>>,
    journal: Journal,
    inline: Mutex<Option<Arc<MemoryInbox>>>,
    unavailable: AtomicBool,
}

struct Stored {
    conversation: Conversation,
    /// Ascending by seq: the message with seq `n` is at index `n - 1`.
    messages: Vec<Message>,
}

impl MemoryConversationStore {
    /// A store recording its appends into `journal`, which other fakes may share.
    pub fn recording_into(journal: Journal) -> Self {
        Self {
            journal,
            ..Self::default()
        }
    }

    /// Applies each new message to both members' feeds in `inbox` within the append, and
    /// answers the feed events in [`AppendOutcome::delivered`], as the SQL stores do when
    /// they deliver inline.
    pub fn deliver_inline_to(&self, inbox: Arc<MemoryInbox>) {
        *lock(&self.inline) = Some(inbox);
    }

    /// Makes every append fail with `Unavailable`, as an unreachable database would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Appends `new` (or finds the message it repeats); `None` for a stranger's conversation.
    /// Also answers the conversation's members.
    fn insert(&self, new: NewMessage) -> Option<(Appended, [UserId; 2])> {
        let mut state = lock(&self.state);
        let stored = state
            .get_mut(&new.conversation_id)
            .filter(|s| s.conversation.has_member(new.sender_id))?;
        let members = stored.conversation.members;
        let earlier = stored
            .messages
            .iter()
            .find(|m| m.sender_id == new.sender_id && m.client_msg_id == new.client_msg_id);
        if let Some(earlier) = earlier {
            return Some((Appended::Replayed(earlier.clone()), members));
        }
        let conversation = &mut stored.conversation;
        conversation.last_seq += 1;
        conversation.updated_at = new.created_at;
        let sender = member_index(conversation, new.sender_id);
        conversation.read_seqs[sender] = conversation.last_seq;
        let message = Message {
            id: new.id,
            conversation_id: new.conversation_id,
            seq: conversation.last_seq,
            sender_id: new.sender_id,
            client_msg_id: new.client_msg_id,
            body: new.body,
            created_at: new.created_at,
        };
        stored.messages.push(message.clone());
        Some((Appended::Created(message), members))
    }
}

#[async_trait]
impl ConversationStore for MemoryConversationStore {
    async fn open(&self, conversation: Conversation) -> Result<(Conversation, bool), StoreError> {
        let mut state = lock(&self.state);
        if let Some(stored) = state.get(&conversation.id) {
            return Ok((stored.conversation.clone(), false));
        }
        let stored = Stored {
            conversation: conversation.clone(),
            messages: Vec::new(),
        };
        state.insert(conversation.id, stored);
        Ok((conversation, true))
    }

    async fn conversation(
        &self,
        id: ConversationId,
        member: UserId,
    ) -> Result<Option<Conversation>, StoreError> {
        Ok(lock(&self.state)
            .get(&id)
            .map(|stored| stored.conversation.clone())
            .filter(|c| c.has_member(member)))
    }

    async fn append(&self, new: NewMessage) -> Result<Option<AppendOutcome>, StoreError> {
        self.journal.record(Step::Append(new.client_msg_id.clone()));
        if self.unavailable.load(Ordering::SeqCst) {
            let cause = anyhow::anyhow!("the database is down");
            return Err(StoreError::Unavailable(cause));
        }
        let Some((appended, [a, b])) = self.insert(new) else {
            return Ok(None);
        };
        let inline = lock(&self.inline).clone();
        let (Some(inbox), Appended::Created(message)) = (inline, &appended) else {
            return Ok(Some(appended.into()));
        };
        let body = FeedEventBody::MessageCreated {
            message: message.clone(),
        };
        let mut delivered = Vec::new();
        for (user, peer) in [(a, b), (b, a)] {
            let applied = inbox.apply(user, peer, &body, message.created_at).await?;
            delivered.extend(applied.map(|event| Delivered { user, event }));
        }
        Ok(Some(AppendOutcome {
            appended,
            delivered,
        }))
    }

    async fn mark_read(
        &self,
        id: ConversationId,
        reader: UserId,
        seq: i64,
    ) -> Result<Option<MarkedRead>, StoreError> {
        let mut state = lock(&self.state);
        let Some(stored) = state
            .get_mut(&id)
            .filter(|s| s.conversation.has_member(reader))
        else {
            return Ok(None);
        };
        let conversation = &mut stored.conversation;
        if seq > conversation.last_seq {
            return Ok(Some(MarkedRead::BeyondLast(conversation.clone())));
        }
        let reader = member_index(conversation, reader);
        let moved = seq > conversation.read_seqs[reader];
        conversation.read_seqs[reader] = conversation.read_seqs[reader].max(seq);
        Ok(Some(MarkedRead::Done {
            conversation: conversation.clone(),
            moved,
        }))
    }

    async fn history(
        &self,
        id: ConversationId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        let state = lock(&self.state);
        let all = state.get(&id).map_or(&[][..], |s| &s.messages[..]);
        let matching = all
            .iter()
            .filter(|m| query.before_seq.is_none_or(|before| m.seq < before))
            .filter(|m| query.after_seq.is_none_or(|after| m.seq > after))
            .cloned();
        let take = query.limit as usize + 1;
        Ok(match query.after_seq {
            Some(_) => matching.take(take).collect(),
            None => matching.rev().take(take).collect(),
        })
    }

    async fn message(&self, id: ConversationId, seq: i64) -> Result<Option<Message>, StoreError> {
        Ok(lock(&self.state)
            .get(&id)
            .and_then(|s| s.messages.iter().find(|m| m.seq == seq).cloned()))
    }
}

fn member_index(conversation: &Conversation, user: UserId) -> usize {
    usize::from(conversation.members[1] == user)
}
