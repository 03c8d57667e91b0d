//! The JSON frames of `GET /v1/events`. Feed and typing events are the domain's own serde
//! shapes ([`LiveEvent`]); the control frames are defined here.

use duet_domain::events::LiveEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::errors::ApiError;

/// A control frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The replay cannot be served (pruned, or `since` is from the future): refetch with
    /// `GET /v1/sync` and continue from `cursor`.
    Resync {
        cursor: i64,
    },
    /// Replay done; `cursor` is the newest one sent (or the current one).
    Ready {
        cursor: i64,
    },
    Pong,
    Error {
        error: ErrorFrame,
    },
}

/// The `error` member of an error frame: the same codes as HTTP errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            error: ErrorFrame {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }

    /// The error frame for what would have been an HTTP error answer.
    pub fn from_api_error(err: &ApiError) -> Self {
        let (_, body) = err.parts();
        Self::error(&body.error.code, body.error.message.clone())
    }

    pub fn to_text(&self) -> String {
        // A derived `Serialize` of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error"}"#.to_owned())
    }
}

/// Renders a feed or typing event.
///
/// # Errors
/// Never in practice: the domain types serialize to plain JSON.
pub fn event_text(event: &LiveEvent) -> serde_json::Result<String> {
    serde_json::to_string(event)
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First-frame authentication, for browsers that cannot set headers.
    Auth {
        token: String,
    },
    /// The caller is typing in a conversation; relayed to the peer, never stored.
    Typing {
        conversation_id: Uuid,
    },
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use duet_domain::conversations::Message;
    use duet_domain::events::Ephemeral;
    use duet_domain::inbox::{FeedEvent, FeedEventBody};
    use duet_domain::{ConversationId, MessageId, UserId};
    use serde_json::{Value, json};

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn control_frames_have_the_documented_shapes() {
        assert_eq!(
            parse(&ServerFrame::Ready { cursor: 42 }.to_text()),
            json!({"type": "ready", "cursor": 42})
        );
        assert_eq!(
            parse(&ServerFrame::Resync { cursor: 7 }.to_text()),
            json!({"type": "resync", "cursor": 7})
        );
        assert_eq!(parse(&ServerFrame::Pong.to_text()), json!({"type": "pong"}));
        assert_eq!(
            parse(&ServerFrame::error("not_found", "no such conversation").to_text()),
            json!({"type": "error", "error": {"code": "not_found", "message": "no such conversation"}})
        );
    }

    #[test]
    fn a_message_event_has_the_documented_shape() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let message = Message {
            id: MessageId::generate(),
            conversation_id: ConversationId::between(alice, bob),
            seq: 3,
            sender_id: alice,
            client_msg_id: "c-1".into(),
            body: "hi".into(),
            created_at: Utc::now(),
        };
        let event = LiveEvent::Feed(FeedEvent {
            cursor: 7,
            body: FeedEventBody::MessageCreated {
                message: message.clone(),
            },
            created_at: Utc::now(),
        });
        let value = parse(&event_text(&event).expect("serialize"));
        assert_eq!(value["type"], "message.created");
        assert_eq!(value["cursor"], 7);
        assert_eq!(value["message"]["seq"], 3);
        assert_eq!(value["message"]["client_msg_id"], "c-1");
        assert_eq!(value["message"]["id"], message.id.to_string());
        assert!(value["created_at"].is_string());
    }

    #[test]
    fn read_and_typing_events_have_the_documented_shapes() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let conversation_id = ConversationId::between(alice, bob);
        let read = LiveEvent::Feed(FeedEvent {
            cursor: 8,
            body: FeedEventBody::ConversationRead {
                conversation_id,
                reader_id: bob,
                read_seq: 3,
            },
            created_at: Utc::now(),
        });
        let value = parse(&event_text(&read).expect("serialize"));
        assert_eq!(value["type"], "conversation.read");
        assert_eq!(value["cursor"], 8);
        assert_eq!(value["reader_id"], bob.to_string());
        assert_eq!(value["read_seq"], 3);

        let typing = LiveEvent::Ephemeral(Ephemeral::Typing {
            conversation_id,
            user_id: alice,
        });
        assert_eq!(
            parse(&event_text(&typing).expect("serialize")),
            json!({"type": "typing", "conversation_id": conversation_id.to_string(), "user_id": alice.to_string()})
        );
    }

    #[test]
    fn client_frames_parse_and_unknown_ones_do_not() {
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).ok(),
            Some(ClientFrame::Ping)
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"auth","token":"t"}"#).ok(),
            Some(ClientFrame::Auth { token: "t".into() })
        );
        let id = Uuid::now_v7();
        assert_eq!(
            serde_json::from_str::<ClientFrame>(&format!(
                r#"{{"type":"typing","conversation_id":"{id}"}}"#
            ))
            .ok(),
            Some(ClientFrame::Typing {
                conversation_id: id
            })
        );
        for bad in [
            r#"{"type":"typing","conversation_id":"nope"}"#,
            r#"{"type":"dance"}"#,
            r#"{"type":"typing"}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }
}
