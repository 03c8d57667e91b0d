//! The JSON shapes of `docs/API.md`, converted from domain types. Field names here are the
//! public contract.

use duet_domain::accounts::User;
use duet_domain::cache::PresenceStatus;
use duet_domain::conversations::Message;
use duet_domain::inbox::ConversationView;
use poem_openapi::Object;
use uuid::Uuid;

use super::nullable::Nullable;
use super::timestamp::Timestamp;

/// A registered user as anyone may see them.
#[derive(Debug, Clone, Object)]
#[oai(rename = "User", example)]
pub struct UserBody {
    pub id: Uuid,
    /// 3–32 characters of `[a-z0-9_.]`, unique, lower-case.
    #[oai(validator(pattern = r"^[a-z0-9_.]{3,32}$"))]
    pub handle: String,
    /// 1–64 characters; the handle unless one was given.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub display_name: String,
    pub created_at: Timestamp,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            handle: user.handle.as_str().to_owned(),
            display_name: user.display_name,
            created_at: user.created_at.into(),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Message", example)]
pub struct MessageBody {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// 1, 2, 3… within the conversation, without gaps.
    #[oai(validator(minimum(value = "1")))]
    pub seq: i64,
    pub sender_id: Uuid,
    /// The sender's own id for the message; a retry with it returns this message.
    #[oai(validator(min_length = 1, max_length = 64, pattern = r"^[!-~]+$"))]
    pub client_msg_id: String,
    /// Not blank, at most 4096 bytes of UTF-8.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub body: String,
    pub created_at: Timestamp,
}

impl From<Message> for MessageBody {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.as_uuid(),
            conversation_id: message.conversation_id.as_uuid(),
            seq: message.seq,
            sender_id: message.sender_id.as_uuid(),
            client_msg_id: message.client_msg_id,
            body: message.body,
            created_at: message.created_at.into(),
        }
    }
}

/// A conversation as the caller sees it; `peer` is the other member.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Conversation", example)]
pub struct ConversationBody {
    pub id: Uuid,
    pub peer: UserBody,
    /// The newest message, `null` before the first.
    pub last_message: Nullable<MessageBody>,
    /// The seq of the newest message; 0 before the first.
    #[oai(validator(minimum(value = "0")))]
    pub last_seq: i64,
    /// The caller's read position.
    #[oai(validator(minimum(value = "0")))]
    pub read_seq: i64,
    /// The peer's read position.
    #[oai(validator(minimum(value = "0")))]
    pub peer_read_seq: i64,
    /// Messages after the caller's read position.
    #[oai(validator(minimum(value = "0")))]
    pub unread_count: i64,
    /// When the newest message was sent (or the conversation opened, before the first).
    pub updated_at: Timestamp,
    /// The caller's feed cursor at this conversation's last change (0 before the caller's
    /// inbox has it).
    #[oai(validator(minimum(value = "0")))]
    pub version: i64,
}

impl From<ConversationView> for ConversationBody {
    fn from(view: ConversationView) -> Self {
        let unread_count = view.unread_count();
        Self {
            id: view.id.as_uuid(),
            peer: view.peer.into(),
            last_message: view.last_message.map(Into::into).into(),
            last_seq: view.last_seq,
            read_seq: view.read_seq,
            peer_read_seq: view.peer_read_seq,
            unread_count,
            updated_at: view.updated_at.into(),
            version: view.version,
        }
    }
}

/// Whether a user is connected, and when they last were.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Presence", example)]
pub struct PresenceBody {
    pub user_id: Uuid,
    /// At least one of the user's devices has the event stream open.
    pub online: bool,
    /// When a device of the user last connected, answered or left; `null` when never seen.
    pub last_seen: Nullable<Timestamp>,
}

impl From<PresenceStatus> for PresenceBody {
    fn from(status: PresenceStatus) -> Self {
        Self {
            user_id: status.user_id.as_uuid(),
            online: status.online,
            last_seen: status.last_seen.map(Into::into).into(),
        }
    }
}
