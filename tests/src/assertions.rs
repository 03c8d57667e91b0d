//! Checks of the documented shapes: error bodies, Users, Messages, Conversations.

use std::collections::HashSet;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use uuid::Uuid;

/// The documented key sets, so shape checks read as the docs do.
pub const USER_KEYS: &[&str] = &["id", "handle", "display_name", "created_at"];
pub const MESSAGE_KEYS: &[&str] = &[
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "client_msg_id",
    "body",
    "created_at",
];
pub const CONVERSATION_KEYS: &[&str] = &[
    "id",
    "peer",
    "last_message",
    "last_seq",
    "read_seq",
    "peer_read_seq",
    "unread_count",
    "updated_at",
    "version",
];

/// Checks a body against `{"error": {"code", "message"}}`; returns the message.
#[track_caller]
pub fn assert_error_body(headers: &HeaderMap, json: &Value, text: &str, code: &str) -> String {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "error content type is {content_type:?}, body {text}"
    );
    assert_keys(json, &["error"]);
    assert_keys(&json["error"], &["code", "message"]);
    assert_eq!(json["error"]["code"], code, "error body {text}");
    let message = json["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message is not a string in {text}"));
    assert!(!message.is_empty(), "error.message is empty in {text}");
    message.to_owned()
}

/// Asserts `value` is an object with exactly these keys.
#[track_caller]
pub fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object with keys {keys:?}, got {value}"));
    let actual: HashSet<&str> = object.keys().map(String::as_str).collect();
    let expected: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(actual, expected, "keys of {value}");
}

/// Asserts an RFC 3339 UTC timestamp.
#[track_caller]
pub fn assert_utc_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text} is not UTC");
}

/// Asserts a UUID string.
#[track_caller]
pub fn assert_uuid(value: &Value) -> Uuid {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {value}"));
    Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text:?} is not a UUID: {e}"))
}

/// Asserts the documented User shape.
#[track_caller]
pub fn assert_user_shape(user: &Value) {
    assert_keys(user, USER_KEYS);
    assert_uuid(&user["id"]);
    assert!(user["handle"].is_string(), "{user}");
    assert!(user["display_name"].is_string(), "{user}");
    assert_utc_timestamp(&user["created_at"]);
}

/// Asserts the documented Message shape.
#[track_caller]
pub fn assert_message_shape(message: &Value) {
    assert_keys(message, MESSAGE_KEYS);
    assert_uuid(&message["id"]);
    assert_uuid(&message["conversation_id"]);
    assert_uuid(&message["sender_id"]);
    assert!(message["seq"].is_i64(), "{message}");
    assert!(message["client_msg_id"].is_string(), "{message}");
    assert!(message["body"].is_string(), "{message}");
    assert_utc_timestamp(&message["created_at"]);
}

/// Asserts the documented Conversation shape.
#[track_caller]
pub fn assert_conversation_shape(conversation: &Value) {
    assert_keys(conversation, CONVERSATION_KEYS);
    assert_uuid(&conversation["id"]);
    assert_user_shape(&conversation["peer"]);
    if !conversation["last_message"].is_null() {
        assert_message_shape(&conversation["last_message"]);
    }
    for key in [
        "last_seq",
        "read_seq",
        "peer_read_seq",
        "unread_count",
        "version",
    ] {
        assert!(conversation[key].is_i64(), "{key} in {conversation}");
    }
    assert_utc_timestamp(&conversation["updated_at"]);
}

/// The seqs of `message.created` frames or of Messages, in order.
pub fn seqs(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|item| {
            let message = if item["type"] == "message.created" {
                &item["message"]
            } else {
                item
            };
            message["seq"].as_i64().expect("a seq")
        })
        .collect()
}

/// Asserts a `message.created` frame for `message`.
#[track_caller]
pub fn assert_message_event(frame: &Value, message: &Value) {
    assert_keys(frame, &["type", "cursor", "message", "created_at"]);
    assert_eq!(frame["type"], "message.created");
    assert!(frame["cursor"].is_i64(), "{frame}");
    assert_message_shape(&frame["message"]);
    assert_eq!(&frame["message"], message);
    assert_utc_timestamp(&frame["created_at"]);
}
