//! A JSON string that must *be* a string. poem-openapi's `String` also accepts numbers and
//! booleans (`{"body": 5}` would store `"5"`); the API contract says a field of the wrong type
//! is a 400, so request bodies use [`Text`] instead.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A string field of a request body. No `Debug`: it may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
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

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strings_are_text() {
        let parsed = Text::parse_from_json(Some(Value::String("hi".into())));
        assert_eq!(parsed.ok().map(Text::into_inner), Some("hi".to_owned()));
        for other in [Value::from(5), Value::Bool(true), Value::Null] {
            assert!(Text::parse_from_json(Some(other)).is_err());
        }
        assert!(Text::parse_from_json(None).is_err());
    }

    #[test]
    fn an_optional_text_may_be_absent_or_null() {
        assert_eq!(
            Option::<Text>::parse_from_json(None)
                .ok()
                .map(|t| t.is_none()),
            Some(true)
        );
        assert_eq!(
            Option::<Text>::parse_from_json(Some(Value::Null))
                .ok()
                .map(|t| t.is_none()),
            Some(true)
        );
        assert!(Option::<Text>::parse_from_json(Some(Value::from(1))).is_err());
    }
}
