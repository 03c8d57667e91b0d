//! Identifiers. User and message ids are UUIDv7 (time-ordered); a conversation id is derived
//! from its two members so that both sides compute the same id and can never end up with two.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's id (UUIDv7).
    UserId
);
id_type!(
    /// A message's id (UUIDv7).
    MessageId
);
id_type!(
    /// A conversation's id: UUIDv5 of its ordered member pair.
    ConversationId
);

impl UserId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl MessageId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

/// Namespace for conversation ids; changing it would orphan every existing conversation.
const CONVERSATION_NAMESPACE: Uuid = Uuid::from_u128(0x6475_6574_2d63_6f6e_7665_7273_6174_696f);

impl ConversationId {
    /// The id of the conversation between `a` and `b`, the same whichever side asks.
    pub fn between(a: UserId, b: UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut name = [0u8; 32];
        name[..16].copy_from_slice(lo.0.as_bytes());
        name[16..].copy_from_slice(hi.0.as_bytes());
        Self(Uuid::new_v5(&CONVERSATION_NAMESPACE, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_conversation_id() {
        let (a, b) = (UserId::generate(), UserId::generate());
        assert_eq!(ConversationId::between(a, b), ConversationId::between(b, a));
        assert_ne!(
            ConversationId::between(a, b),
            ConversationId::between(a, UserId::generate())
        );
    }
}
