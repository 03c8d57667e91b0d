//! `ConversationService::send` against in-memory fakes of its ports: what it pushes live, and
//! when. The store fake keeps real rules (membership, one message per client id, gap-free seq
//! and cursors) and delivers inline when told to; the bus records every push. Both write to
//! one journal, so a test sees the order of appends and pushes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use super::*;
use crate::accounts::{AccountStore, Caller, CreatedUser, Handle, NewUser, Session, User};
use crate::events::{Delivered, LiveBus, LiveEvent, LiveItem};
use crate::inbox::{FeedEvent, FeedEventBody, InboxEntry, InboxStore, Replay};
use crate::{ConversationId, StoreError, UserId};

/// What happened, in order, across the store and the bus.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// An append reached the store (its client id).
    Append(String),
    Push(UserId, LiveEvent),
}

type Journal = Arc<Mutex<Vec<Step>>>;

fn record(journal: &Journal, step: Step) {
    journal.lock().expect("journal").push(step);
}

/// One conversation, its messages and both members' feed cursors.
struct FakeConversations {
    journal: Journal,
    conversation: Conversation,
    /// Deliver inline: apply each new message to both feeds and answer the feed events.
    inline: bool,
    /// Fail every append as an unreachable database would.
    unavailable: bool,
    state: Mutex<Stored>,
}

#[derive(Default)]
struct Stored {
    messages: Vec<Message>,
    cursors: HashMap<UserId, i64>,
}

#[async_trait]
impl ConversationStore for FakeConversations {
    async fn append(&self, new: NewMessage) -> Result<Option<AppendOutcome>, StoreError> {
        record(&self.journal, Step::Append(new.client_msg_id.clone()));
        if self.unavailable {
            return Err(StoreError::Unavailable(anyhow::anyhow!("database down")));
        }
        if new.conversation_id != self.conversation.id
            || !self.conversation.has_member(new.sender_id)
        {
            return Ok(None);
        }
        let mut state = self.state.lock().expect("state");
        let earlier = state
            .messages
            .iter()
            .find(|m| m.sender_id == new.sender_id && m.client_msg_id == new.client_msg_id);
        if let Some(earlier) = earlier {
            return Ok(Some(Appended::Replayed(earlier.clone()).into()));
        }
        let message = Message {
            id: new.id,
            conversation_id: new.conversation_id,
            seq: state.messages.len() as i64 + 1,
            sender_id: new.sender_id,
            client_msg_id: new.client_msg_id,
            body: new.body,
            created_at: new.created_at,
        };
        state.messages.push(message.clone());
        let mut delivered = Vec::new();
        if self.inline {
            for user in self.conversation.members {
                let cursor = state.cursors.entry(user).or_insert(0);
                *cursor += 1;
                delivered.push(Delivered {
                    user,
                    event: FeedEvent {
                        cursor: *cursor,
                        body: FeedEventBody::MessageCreated {
                            message: message.clone(),
                        },
                        created_at: message.created_at,
                    },
                });
            }
        }
        Ok(Some(AppendOutcome {
            appended: Appended::Created(message),
            delivered,
        }))
    }

    async fn open(&self, _: Conversation) -> Result<(Conversation, bool), StoreError> {
        unreachable!("send does not open conversations")
    }

    async fn conversation(
        &self,
        _: ConversationId,
        _: UserId,
    ) -> Result<Option<Conversation>, StoreError> {
        unreachable!("send checks membership in the append, not before it")
    }

    async fn mark_read(
        &self,
        _: ConversationId,
        _: UserId,
        _: i64,
    ) -> Result<Option<MarkedRead>, StoreError> {
        unreachable!("send does not move read positions")
    }

    async fn history(
        &self,
        _: ConversationId,
        _: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        unreachable!("send does not read history")
    }

    async fn message(&self, _: ConversationId, _: i64) -> Result<Option<Message>, StoreError> {
        unreachable!("send does not read messages")
    }
}

/// Records every push in the journal.
struct RecordingBus(Journal);

#[async_trait]
impl LiveBus for RecordingBus {
    async fn publish(&self, user: UserId, event: LiveEvent) {
        record(&self.0, Step::Push(user, event));
    }

    async fn subscribe(&self, _: UserId) -> BoxStream<'static, LiveItem> {
        unreachable!("send does not subscribe")
    }
}

/// The accounts and inboxes a send never touches.
struct Untouched;

#[async_trait]
impl AccountStore for Untouched {
    async fn create_user(&self, _: NewUser) -> Result<CreatedUser, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn user(&self, _: UserId) -> Result<Option<User>, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn users(&self, _: &[UserId]) -> Result<Vec<User>, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn user_id_by_handle(&self, _: &Handle) -> Result<Option<UserId>, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn credentials(&self, _: &Handle) -> Result<Option<(User, String)>, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn create_session(&self, _: Session) -> Result<(), StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn session(&self, _: UserId, _: &str) -> Result<Option<Session>, StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn delete_session(&self, _: UserId, _: &str) -> Result<(), StoreError> {
        unreachable!("send does not touch accounts")
    }
    async fn delete_expired_sessions(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        unreachable!("send does not touch accounts")
    }
}

#[async_trait]
impl InboxStore for Untouched {
    async fn open_entry(
        &self,
        _: UserId,
        _: ConversationId,
        _: UserId,
        _: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn apply(
        &self,
        _: UserId,
        _: UserId,
        _: &FeedEventBody,
        _: DateTime<Utc>,
    ) -> Result<Option<FeedEvent>, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn entry(&self, _: UserId, _: ConversationId) -> Result<Option<InboxEntry>, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn list(&self, _: UserId, _: Option<i64>, _: u32) -> Result<Vec<InboxEntry>, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn changed_since(
        &self,
        _: UserId,
        _: i64,
        _: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn replay(&self, _: UserId, _: i64, _: u32) -> Result<Replay, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn latest_cursor(&self, _: UserId) -> Result<i64, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
    async fn prune_feeds(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        unreachable!("send does not touch inboxes itself")
    }
}

/// Alice and Bob's conversation, a service over the fakes, and the shared journal.
struct World {
    alice: Caller,
    bob: Caller,
    id: ConversationId,
    service: ConversationService,
    journal: Journal,
}

impl World {
    fn new(inline: bool, unavailable: bool) -> Self {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let conversation = Conversation::new_between(alice, bob, crate::clock::now());
        let id = conversation.id;
        let journal = Journal::default();
        let store = Arc::new(FakeConversations {
            journal: journal.clone(),
            conversation,
            inline,
            unavailable,
            state: Mutex::default(),
        });
        let service = ConversationService::new(
            Arc::new(Untouched),
            store,
            Arc::new(Untouched),
            Arc::new(RecordingBus(journal.clone())),
        );
        Self {
            alice: Caller { user_id: alice },
            bob: Caller { user_id: bob },
            id,
            service,
            journal,
        }
    }

    fn delivering_inline() -> Self {
        Self::new(true, false)
    }

    fn delivering_through_the_outbox() -> Self {
        Self::new(false, false)
    }

    async fn send(&self, from: Caller, client_id: &str) -> Result<Appended, ConversationError> {
        self.service
            .send(
                from,
                self.id,
                client_id.to_owned(),
                format!("body of {client_id}"),
            )
            .await
    }

    fn journal(&self) -> Vec<Step> {
        self.journal.lock().expect("journal").clone()
    }

    /// The push of `message` to `user` at `cursor`, as a delivered feed event.
    fn push(user: Caller, cursor: i64, message: &Message) -> Step {
        Step::Push(
            user.user_id,
            LiveEvent::Feed(FeedEvent {
                cursor,
                body: FeedEventBody::MessageCreated {
                    message: message.clone(),
                },
                created_at: message.created_at,
            }),
        )
    }
}

fn created(sent: Result<Appended, ConversationError>) -> Message {
    match sent {
        Ok(Appended::Created(message)) => message,
        other => panic!("expected a new message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_delivered_inline_is_pushed_to_both_members_after_its_append() {
    let world = World::delivering_inline();

    let first = created(world.send(world.alice, "m1").await);
    let second = created(world.send(world.bob, "m2").await);

    let [lo, hi] = if world.alice.user_id < world.bob.user_id {
        [world.alice, world.bob]
    } else {
        [world.bob, world.alice]
    };
    assert_eq!(
        world.journal(),
        vec![
            Step::Append("m1".into()),
            World::push(lo, 1, &first),
            World::push(hi, 1, &first),
            Step::Append("m2".into()),
            World::push(lo, 2, &second),
            World::push(hi, 2, &second),
        ],
        "each member is pushed each message once, after its append, in cursor order"
    );
}

#[tokio::test]
async fn a_message_left_to_the_outbox_is_not_pushed_by_the_send() {
    let world = World::delivering_through_the_outbox();

    created(world.send(world.alice, "m1").await);

    assert_eq!(world.journal(), vec![Step::Append("m1".into())]);
}

#[tokio::test]
async fn a_retry_answers_the_original_and_pushes_nothing_again() {
    let world = World::delivering_inline();
    let original = created(world.send(world.alice, "same").await);
    let pushes = world.journal().len();

    let retry = world.send(world.alice, "same").await;

    assert!(
        matches!(retry, Ok(Appended::Replayed(ref m)) if *m == original),
        "{retry:?}"
    );
    assert_eq!(world.journal()[pushes..], [Step::Append("same".into())]);
}

#[tokio::test]
async fn a_send_into_someone_elses_conversation_is_not_found_and_pushes_nothing() {
    let world = World::delivering_inline();
    let stranger = Caller {
        user_id: UserId::generate(),
    };

    let sent = world.send(stranger, "m1").await;

    assert!(matches!(sent, Err(ConversationError::NotFound)), "{sent:?}");
    assert_eq!(world.journal(), vec![Step::Append("m1".into())]);
}

#[tokio::test]
async fn a_failed_append_is_an_error_and_pushes_nothing() {
    let world = World::new(true, true);

    let sent = world.send(world.alice, "m1").await;

    assert!(
        matches!(
            sent,
            Err(ConversationError::Store(StoreError::Unavailable(_)))
        ),
        "{sent:?}"
    );
    assert_eq!(world.journal(), vec![Step::Append("m1".into())]);
}

#[tokio::test]
async fn an_invalid_message_reaches_neither_the_store_nor_the_bus() {
    let world = World::delivering_inline();

    let blank = world
        .service
        .send(world.alice, world.id, "m1".into(), "   ".into())
        .await;

    assert!(
        matches!(blank, Err(ConversationError::Invalid(_))),
        "{blank:?}"
    );
    assert_eq!(world.journal(), vec![]);
}
