//! Request fields whose constraints the OpenAPI document declares while the domain checks
//! them.
//!
//! poem-openapi's own validators would refuse a bad value while parsing, as a 400 with its
//! own wording; the contract says a well-formed request with an invalid value is a 422
//! `validation_failed` whose message names the field, which is what the domain's parsers
//! answer. So these types only *declare* the rule (length, pattern, minimum) in the schema,
//! built from the domain's own limits, and parse like the type they wrap.

use std::borrow::Cow;
use std::marker::PhantomData;

use duet_domain::accounts::{DisplayName, Handle, Password};
use duet_domain::conversations::{ClientMsgId, MessageBody};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A rule the schema states about a field.
pub trait Rule: Send + Sync + 'static {
    fn declare() -> MetaSchema;
}

/// A `T` whose schema also states `R`; parsing checks only what `T` checks.
pub struct Declared<T, R>(pub T, PhantomData<fn() -> R>);

impl<T, R> Declared<T, R> {
    pub fn new(value: T) -> Self {
        Self(value, PhantomData)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: Type, R: Rule> Type for Declared<T, R> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref().merge(R::declare())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON, R: Rule> ParseFromJSON for Declared<T, R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        T::parse_from_json(value)
            .map(Self::new)
            .map_err(ParseError::propagate)
    }
}

impl<T: ToJSON, R: Rule> ToJSON for Declared<T, R> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Characters `char::is_control` refuses, as a regular expression class body.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

/// A handle at registration: case-folded and trimmed by the server, so upper case and
/// surrounding whitespace are accepted.
pub struct HandleRule;

impl Rule for HandleRule {
    fn declare() -> MetaSchema {
        MetaSchema {
            pattern: Some(format!(
                r"^\s*[A-Za-z0-9_.]{{{},{}}}\s*$",
                Handle::MIN_LEN,
                Handle::MAX_LEN
            )),
            ..MetaSchema::ANY
        }
    }
}

/// A password at registration, in characters.
pub struct PasswordRule;

impl Rule for PasswordRule {
    fn declare() -> MetaSchema {
        MetaSchema {
            min_length: Some(Password::MIN_LEN),
            max_length: Some(Password::MAX_LEN),
            ..MetaSchema::ANY
        }
    }
}

/// A display name: after trimming, 1–64 characters without control characters.
pub struct DisplayNameRule;

impl Rule for DisplayNameRule {
    fn declare() -> MetaSchema {
        let inner = DisplayName::MAX_LEN - 2;
        MetaSchema {
            pattern: Some(format!(
                r"^\s*[^\s{CONTROL}](?:[^{CONTROL}]{{0,{inner}}}[^\s{CONTROL}])?\s*$"
            )),
            ..MetaSchema::ANY
        }
    }
}

/// A client message id: 1–64 visible ASCII characters.
pub struct ClientMsgIdRule;

impl Rule for ClientMsgIdRule {
    fn declare() -> MetaSchema {
        MetaSchema {
            min_length: Some(1),
            max_length: Some(ClientMsgId::MAX_LEN),
            pattern: Some(r"^[!-~]+$".to_owned()),
            ..MetaSchema::ANY
        }
    }
}

/// A message body: not blank, no NUL. Its limit is in bytes of UTF-8, which a schema cannot
/// state; `maxLength` (in characters) is the bound it implies.
pub struct BodyRule;

impl Rule for BodyRule {
    fn declare() -> MetaSchema {
        MetaSchema {
            min_length: Some(1),
            max_length: Some(MessageBody::MAX_BYTES),
            pattern: Some(r"^[^\x00]*[^\s\x00][^\x00]*$".to_owned()),
            ..MetaSchema::ANY
        }
    }
}

/// A sequence number: never negative.
pub struct SeqRule;

impl Rule for SeqRule {
    fn declare() -> MetaSchema {
        MetaSchema {
            minimum: Some(0.0),
            ..MetaSchema::ANY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::text::Text;

    fn pattern<R: Rule>() -> regex::Regex {
        regex::Regex::new(&R::declare().pattern.expect("a pattern")).expect("a valid regex")
    }

    #[test]
    fn the_handle_pattern_accepts_exactly_what_registration_accepts() {
        let declared = pattern::<HandleRule>();
        let long = "a".repeat(32);
        let too_long = "a".repeat(33);
        for raw in [
            "alice",
            "Alice.B_1",
            " bob ",
            "abc",
            &long,
            "ab",
            &too_long,
            "al ice",
            "alicé",
            "a-b-c",
            "",
        ] {
            assert_eq!(
                declared.is_match(raw),
                Handle::parse(raw).is_ok(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_display_name_pattern_accepts_exactly_what_registration_accepts() {
        let declared = pattern::<DisplayNameRule>();
        let long = "é".repeat(64);
        let too_long = "é".repeat(65);
        for raw in [
            "Alice",
            " Alice B. ",
            "x",
            &long,
            &too_long,
            "",
            "   ",
            "a\u{7}b",
            "\tBob\n",
            "a\u{85}b",
        ] {
            assert_eq!(
                declared.is_match(raw),
                DisplayName::parse(raw).is_ok(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_client_msg_id_and_body_patterns_follow_the_domain() {
        let id = pattern::<ClientMsgIdRule>();
        for raw in ["c-1", "0190a1b2-c3d4", "has space", "tab\t", "é", "~!"] {
            assert_eq!(
                id.is_match(raw),
                ClientMsgId::parse(raw.to_owned()).is_ok(),
                "{raw:?}"
            );
        }
        let body = pattern::<BodyRule>();
        for raw in ["hi", " hi ", "", "   ", "nul\0", "\n x"] {
            assert_eq!(
                body.is_match(raw),
                MessageBody::parse(raw.to_owned()).is_ok(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_schema_states_the_rule_and_parsing_does_not_enforce_it() {
        let schema = match <Declared<Text, PasswordRule>>::schema_ref() {
            MetaSchemaRef::Inline(schema) => schema,
            MetaSchemaRef::Reference(name) => panic!("inline expected, got {name}"),
        };
        assert_eq!(
            (schema.ty, schema.min_length, schema.max_length),
            ("string", Some(8), Some(128))
        );
        let short = <Declared<Text, PasswordRule>>::parse_from_json(Some("short".into()));
        assert_eq!(
            short.ok().map(|p| p.into_inner().into_inner()),
            Some("short".into())
        );
        let seq = <Declared<i64, SeqRule>>::parse_from_json(Some((-1).into()));
        assert_eq!(seq.ok().map(Declared::into_inner), Some(-1));
    }
}
