//! The rules `PresenceService` keeps (announce only real changes, disclose presence only to
//! peers the user has talked to), proven against in-memory fakes and a fake clock.

use std::sync::Arc;

use crate::accounts::Caller;
use crate::clock::Clock;
use crate::conversations::{Conversation, ConversationError, ConversationStore, NewMessage};
use crate::events::{Ephemeral, LiveEvent};
use crate::inbox::{FeedEventBody, InboxStore};
use crate::presence::PresenceService;
use crate::testing::{
    FakeClock, MemoryConversationStore, MemoryInbox, MemoryPresence, RecordingLiveBus,
};
use crate::{ConversationId, MessageId, UserId};

struct Room {
    service: PresenceService,
    conversations: Arc<MemoryConversationStore>,
    inbox: Arc<MemoryInbox>,
    live: Arc<RecordingLiveBus>,
    clock: Arc<FakeClock>,
}

fn room() -> Room {
    let clock = Arc::new(FakeClock::new());
    let presence = Arc::new(MemoryPresence::new(clock.clone()));
    let conversations = Arc::new(MemoryConversationStore::default());
    let inbox = Arc::new(MemoryInbox::default());
    let live = Arc::new(RecordingLiveBus::default());
    let service =
        PresenceService::new(presence, conversations.clone(), inbox.clone(), live.clone());
    Room {
        service,
        conversations,
        inbox,
        live,
        clock,
    }
}

fn someone() -> Caller {
    Caller {
        user_id: UserId::generate(),
    }
}

impl Room {
    /// A conversation between `a` and `b`, in both stores, with nothing said yet.
    async fn conversation(&self, a: Caller, b: Caller) -> ConversationId {
        let (a, b) = (a.user_id, b.user_id);
        let new = Conversation::new_between(a, b, self.clock.now());
        let (conversation, _) = self.conversations.open(new).await.expect("opened");
        for (user, peer) in [(a, b), (b, a)] {
            let opened = self
                .inbox
                .open_entry(user, conversation.id, peer, self.clock.now());
            opened.await.expect("listed");
        }
        conversation.id
    }

    /// `from` says something in conversation `id`, which both inboxes learn.
    async fn say(&self, from: Caller, to: Caller, id: ConversationId) {
        let new = NewMessage {
            id: MessageId::generate(),
            conversation_id: id,
            sender_id: from.user_id,
            client_msg_id: MessageId::generate().to_string(),
            body: "hello".into(),
            created_at: self.clock.now(),
        };
        let appended = self.conversations.append(new).await.expect("appended");
        let message = appended
            .expect("a member's message")
            .appended
            .message()
            .clone();
        let event = FeedEventBody::MessageCreated { message };
        for (user, peer) in [(from, to), (to, from)] {
            let applied = self
                .inbox
                .apply(user.user_id, peer.user_id, &event, self.clock.now());
            applied.await.expect("applied");
        }
    }
}

#[tokio::test]
async fn only_the_first_device_to_connect_announces_coming_online() {
    let room = room();
    let alice = someone();
    assert!(room.service.connected(alice).await.is_some());
    assert!(
        room.service.connected(alice).await.is_none(),
        "already online"
    );
}

#[tokio::test]
async fn only_the_last_device_to_leave_announces_going_offline() {
    let room = room();
    let alice = someone();
    let _ = room.service.connected(alice).await;
    let _ = room.service.connected(alice).await;
    assert!(
        room.service.disconnected(alice).await.is_none(),
        "a device is left"
    );
    assert!(room.service.disconnected(alice).await.is_some());
}

#[tokio::test]
async fn a_peer_who_has_not_taken_part_keeps_their_presence() {
    let room = room();
    let (alice, bob) = (someone(), someone());
    let id = room.conversation(alice, bob).await;
    let _ = room.service.connected(bob).await;
    let status = room.service.peer(alice, id).await.expect("a member asks");
    assert_eq!(
        (status.user_id, status.online, status.last_seen),
        (bob.user_id, false, None)
    );
    room.say(bob, alice, id).await;
    let status = room.service.peer(alice, id).await.expect("a member asks");
    assert!(status.online, "bob took part: alice may see him");
    assert_eq!(status.last_seen, Some(room.clock.now()));
}

#[tokio::test]
async fn a_stranger_learns_nothing_of_a_conversations_members() {
    let room = room();
    let (alice, bob, carol) = (someone(), someone(), someone());
    let id = room.conversation(alice, bob).await;
    room.say(bob, alice, id).await;
    let status = room.service.peer(carol, id).await;
    assert!(
        matches!(status, Err(ConversationError::NotFound)),
        "{status:?}"
    );
}

#[tokio::test]
async fn coming_online_is_announced_only_to_peers_the_user_has_talked_to() {
    let room = room();
    let (alice, bob, carol) = (someone(), someone(), someone());
    let with_bob = room.conversation(alice, bob).await;
    room.conversation(alice, carol).await;
    room.say(alice, bob, with_bob).await;
    let announcement = room
        .service
        .connected(alice)
        .await
        .expect("alice came online");
    room.service.announce(announcement).await;
    let online = LiveEvent::Ephemeral(Ephemeral::Presence {
        user_id: alice.user_id,
        online: true,
        last_seen: Some(room.clock.now()),
    });
    assert_eq!(room.live.published(), vec![(bob.user_id, online)]);
}
