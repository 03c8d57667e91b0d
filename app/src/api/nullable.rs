//! A field that is always sent and may be `null`: `required` and `nullable` in the schema.
//!
//! poem-openapi's `Option<T>` is an optional field, and `#[oai(nullable)]` on it wraps a
//! referenced schema in `allOf: [$ref, {nullable}]`, from which client generators make a
//! second copy of the referenced model (openapi-python-client's `ConversationLastMessageType1`
//! beside `Message`). This type states it as `{allOf: [$ref], nullable: true}`, which they
//! read as "that model, or null".

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// `Some(value)` is sent as the value, `None` as `null`; the field is never left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nullable<T>(pub Option<T>);

impl<T> From<Option<T>> for Nullable<T> {
    fn from(value: Option<T>) -> Self {
        Self(value)
    }
}

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable<{}>", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let schema = match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => MetaSchema {
                nullable: true,
                ..*schema
            },
            MetaSchemaRef::Reference(name) => MetaSchema {
                all_of: vec![MetaSchemaRef::Reference(name)],
                nullable: true,
                ..MetaSchema::ANY
            },
        };
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            value => T::parse_from_json(value)
                .map(|value| Self(Some(value)))
                .map_err(ParseError::propagate),
        }
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Object)]
    struct Inner {
        n: i64,
    }

    #[derive(Debug, Clone, PartialEq, Object)]
    struct Outer {
        inner: Nullable<Inner>,
        at: Nullable<String>,
    }

    #[test]
    fn none_is_sent_as_null_and_the_field_is_required() {
        let outer = Outer {
            inner: Nullable(None),
            at: Nullable(Some("x".into())),
        };
        assert_eq!(
            outer.to_json(),
            Some(serde_json::json!({"inner": null, "at": "x"}))
        );
        let mut registry = Registry::new();
        Outer::register(&mut registry);
        let schema = &registry.schemas["Outer"];
        assert_eq!(schema.required, ["inner", "at"]);
    }

    #[test]
    fn a_referenced_model_is_that_model_or_null() {
        let MetaSchemaRef::Inline(schema) = <Nullable<Inner>>::schema_ref() else {
            panic!("an inline schema");
        };
        assert!(schema.nullable);
        assert_eq!(schema.all_of, [MetaSchemaRef::Reference("Inner".into())]);
        let MetaSchemaRef::Inline(text) = <Nullable<String>>::schema_ref() else {
            panic!("an inline schema");
        };
        assert_eq!((text.ty, text.nullable), ("string", true));
    }

    #[test]
    fn null_and_absent_read_as_none() {
        for value in [None, Some(Value::Null)] {
            assert_eq!(
                <Nullable<i64>>::parse_from_json(value).ok(),
                Some(Nullable(None))
            );
        }
        assert_eq!(
            <Nullable<i64>>::parse_from_json(Some(3.into())).ok(),
            Some(Nullable(Some(3)))
        );
    }
}
