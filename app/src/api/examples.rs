//! The examples the OpenAPI document shows: one small story (Alice writes to Bob, Bob reads
//! it), so every request and answer of every operation agrees with the others.

use chrono::{DateTime, Utc};
use duet_domain::{ConversationId, UserId};
use poem_openapi::types::Example;
use uuid::Uuid;

use super::accounts::RegisterRequest;
use super::conversations::{ConversationPageBody, OpenConversationRequest};
use super::declared::Declared;
use super::health::{HealthBody, HealthStatus};
use super::messages::{MarkReadRequest, MessagePageBody, SendMessageRequest};
use super::models::{ConversationBody, MessageBody, PresenceBody, UserBody};
use super::sessions::{LoginRequest, SessionBody};
use super::sync::SyncPageBody;
use super::text::Text;
use super::timestamp::Timestamp;

const ALICE: Uuid = Uuid::from_u128(0x0197_0f3a_6a50_7b6e_8c1d_2f0a_4b5c_6d7e);
const BOB: Uuid = Uuid::from_u128(0x0197_0f3a_6b10_7c2a_9d3e_4f5a_6b7c_8d9e);
const MESSAGE: Uuid = Uuid::from_u128(0x0197_0f3b_0c00_7a11_8b22_3c44_d55e_66f7);

/// The id of Alice and Bob's conversation (derived from theirs, as the server does).
pub fn conversation_id() -> Uuid {
    ConversationId::between(UserId(ALICE), UserId(BOB)).as_uuid()
}

/// `2026-12-01T09:30:00.123456Z` plus `seconds`.
fn at(seconds: i64) -> Timestamp {
    let base = DateTime::<Utc>::from_timestamp(1_796_117_400, 123_456_000).unwrap_or_default();
    Timestamp(base + chrono::Duration::seconds(seconds))
}

fn text(value: &str) -> Text {
    Text(value.to_owned())
}

fn bob() -> UserBody {
    UserBody {
        id: BOB,
        handle: "bob".to_owned(),
        display_name: "Bob".to_owned(),
        created_at: at(-60),
    }
}

impl Example for UserBody {
    fn example() -> Self {
        Self {
            id: ALICE,
            handle: "alice".to_owned(),
            display_name: "Alice".to_owned(),
            created_at: at(-120),
        }
    }
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            handle: Declared::new(text("alice")),
            password: Declared::new(text("correct horse battery staple")),
            display_name: Some(Declared::new(text("Alice"))),
        }
    }
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            handle: text("alice"),
            password: text("correct horse battery staple"),
        }
    }
}

impl Example for SessionBody {
    fn example() -> Self {
        Self {
            token: format!("{}.q3vTgk2dX9wYb7LmN4pR8sZc1eH6jA0u", ALICE.simple()),
            user: UserBody::example(),
            expires_at: at(30 * 24 * 3600),
        }
    }
}

impl Example for OpenConversationRequest {
    fn example() -> Self {
        Self {
            peer_handle: text("bob"),
        }
    }
}

impl Example for SendMessageRequest {
    fn example() -> Self {
        Self {
            client_msg_id: Declared::new(text("0197f3b0-5c1e-7d2a-8e4f-9a0b1c2d3e4f")),
            body: Declared::new(text("Hi Bob!")),
        }
    }
}

impl Example for MessageBody {
    fn example() -> Self {
        Self {
            id: MESSAGE,
            conversation_id: conversation_id(),
            seq: 1,
            sender_id: ALICE,
            client_msg_id: "0197f3b0-5c1e-7d2a-8e4f-9a0b1c2d3e4f".to_owned(),
            body: "Hi Bob!".to_owned(),
            created_at: at(0),
        }
    }
}

impl Example for MessagePageBody {
    fn example() -> Self {
        Self {
            items: vec![MessageBody::example()],
            has_more: false,
        }
    }
}

impl Example for MarkReadRequest {
    fn example() -> Self {
        Self {
            seq: Declared::new(1),
        }
    }
}

/// Alice's view after sending her first message to Bob.
impl Example for ConversationBody {
    fn example() -> Self {
        Self {
            id: conversation_id(),
            peer: bob(),
            last_message: Some(MessageBody::example()).into(),
            last_seq: 1,
            read_seq: 1,
            peer_read_seq: 0,
            unread_count: 0,
            updated_at: at(0),
            version: 2,
        }
    }
}

impl Example for ConversationPageBody {
    fn example() -> Self {
        Self {
            items: vec![ConversationBody::example()],
            next_cursor: None.into(),
        }
    }
}

impl Example for SyncPageBody {
    fn example() -> Self {
        Self {
            changes: vec![ConversationBody::example()],
            cursor: 2,
            has_more: false,
        }
    }
}

impl Example for PresenceBody {
    fn example() -> Self {
        Self {
            user_id: BOB,
            online: false,
            last_seen: Some(at(-30)).into(),
        }
    }
}

impl Example for HealthBody {
    fn example() -> Self {
        Self {
            status: HealthStatus::Ok,
            degraded: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    #[test]
    fn the_examples_tell_one_consistent_story() {
        let message = MessageBody::example();
        let conversation = ConversationBody::example();
        assert_eq!(message.conversation_id, conversation.id);
        assert_eq!(message.sender_id, UserBody::example().id);
        assert_eq!(conversation.peer.id, BOB);
        let session = SessionBody::example();
        assert!(session.token.starts_with(&ALICE.simple().to_string()));
        assert_eq!(at(0).to_json(), Some("2026-12-01T09:30:00.123456Z".into()));
    }
}
