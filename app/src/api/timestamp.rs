//! RFC 3339 UTC timestamps written by [`duet_domain::clock::rfc3339`], as the WebSocket's
//! frames write them (`2026-01-02T03:04:05.120000Z`: always six fractional digits and `Z`),
//! so a client sees the same bytes for the same instant on both channels. poem-openapi's own
//! `DateTime<Utc>` would write `+00:00` and a varying number of digits instead.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// An instant in UTC, documented as `string` / `date-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => DateTime::parse_from_rfc3339(&text)
                .map(|at| Self(at.with_timezone(&Utc)))
                .map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(duet_domain::clock::rfc3339(self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_written_like_the_websocket_frames_write_it() {
        let message = duet_domain::conversations::Message {
            id: duet_domain::MessageId::generate(),
            conversation_id: duet_domain::ConversationId(uuid::Uuid::now_v7()),
            seq: 1,
            sender_id: duet_domain::UserId::generate(),
            client_msg_id: "c".into(),
            body: "b".into(),
            created_at: DateTime::from_timestamp(1_796_117_400, 120_000_000).expect("a time"),
        };
        let frame = serde_json::to_value(&message).expect("serialize");
        let written = Timestamp(message.created_at).to_json();
        assert_eq!(written.as_ref(), Some(&frame["created_at"]));
        assert_eq!(written, Some("2026-12-01T09:30:00.120000Z".into()));
    }

    #[test]
    fn it_reads_back_what_it_writes_of_a_stored_time() {
        let at = Timestamp(duet_domain::clock::now());
        assert_eq!(Timestamp::parse_from_json(at.to_json()).ok(), Some(at));
        assert!(Timestamp::parse_from_json(Some(Value::Bool(true))).is_err());
    }
}
