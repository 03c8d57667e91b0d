//! Opening, listing and reading conversations.

use std::sync::Arc;

use duet_domain::ConversationId;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::BearerAuth;
use super::models::{ConversationBody, PresenceBody};
use super::nullable::Nullable;
use super::statuses::{
    BAD_REQUEST, Errors, JSON_BODY, NOT_FOUND, STORAGE, UNAUTHORIZED, UNPROCESSABLE,
};
use super::text::Text;
use crate::http::errors::ApiError;
use crate::state::AppState;

pub struct ConversationsApi {
    pub state: Arc<AppState>,
}

/// Whom to open a conversation with.
#[derive(Object)]
#[oai(example)]
pub struct OpenConversationRequest {
    /// Their handle, any case. One nobody has (or that cannot be a handle) is a 404; one's
    /// own is a 422.
    pub peer_handle: Text,
}

/// A page of the caller's conversations, newest activity first.
#[derive(Object)]
#[oai(rename = "ConversationPage", example)]
pub struct ConversationPageBody {
    pub items: Vec<ConversationBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub next_cursor: Nullable<String>,
}

#[derive(ApiResponse)]
pub enum OpenResponse {
    /// The conversation already existed (opened by either side before).
    #[oai(status = 200)]
    Existing(Json<ConversationBody>),
    /// The conversation was created by this call.
    #[oai(status = 201)]
    Created(Json<ConversationBody>),
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// A page of conversations.
    #[oai(status = 200)]
    Ok(Json<ConversationPageBody>),
}

#[derive(ApiResponse)]
pub enum ConversationResponse {
    /// The conversation as the caller sees it.
    #[oai(status = 200)]
    Ok(Json<ConversationBody>),
}

fn default_page_size() -> u32 {
    50
}

#[OpenApi]
impl ConversationsApi {
    /// Open (or find) the conversation with another user. Idempotent.
    ///
    /// Answers 404 `not_found` for an unknown handle, 422 for oneself.
    #[oai(
        path = "/v1/conversations",
        method = "post",
        tag = "ApiTags::Conversations",
        operation_id = "open_conversation"
    )]
    async fn open(
        &self,
        auth: BearerAuth,
        body: Json<OpenConversationRequest>,
    ) -> Result<
        OpenResponse,
        Errors<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | UNPROCESSABLE | STORAGE }>,
    > {
        let (view, created) = self
            .state
            .conversations
            .open(auth.0.caller, body.peer_handle.as_str())
            .await?;
        let body = Json(view.into());
        Ok(if created {
            OpenResponse::Created(body)
        } else {
            OpenResponse::Existing(body)
        })
    }

    /// The caller's conversations, newest activity first.
    #[oai(
        path = "/v1/conversations",
        method = "get",
        tag = "ApiTags::Conversations",
        operation_id = "list_conversations"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        /// The previous page's `next_cursor`; absent or empty for the first page.
        #[oai(validator(pattern = "^[0-9]{0,19}$"))]
        cursor: Query<Option<String>>,
        /// Page size, 1–200.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<ListResponse, Errors<{ BAD_REQUEST | UNAUTHORIZED | STORAGE }>> {
        let cursor = parse_list_cursor(cursor.0.as_deref())?;
        let page = self
            .state
            .inbox
            .list(auth.0.caller, cursor, limit.0)
            .await?;
        Ok(ListResponse::Ok(Json(ConversationPageBody {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()).into(),
        })))
    }

    /// One conversation. Answers 404 `not_found` when it does not exist or the caller is not
    /// in it: the two are never told apart.
    #[oai(
        path = "/v1/conversations/:id",
        method = "get",
        tag = "ApiTags::Conversations",
        operation_id = "get_conversation"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        #[oai(example = "super::examples::conversation_id")] id: Path<Uuid>,
    ) -> Result<ConversationResponse, Errors<{ BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | STORAGE }>>
    {
        let view = self
            .state
            .conversations
            .get(auth.0.caller, ConversationId(id.0))
            .await?;
        Ok(ConversationResponse::Ok(Json(view.into())))
    }

    /// Whether the caller's peer in this conversation is online, and when they were last
    /// seen. Presence is only ever shown to the people one talks to: 404 `not_found` when the
    /// conversation does not exist or the caller is not in it.
    #[oai(
        path = "/v1/conversations/:id/presence",
        method = "get",
        tag = "ApiTags::Conversations",
        operation_id = "get_peer_presence"
    )]
    async fn presence(
        &self,
        auth: BearerAuth,
        #[oai(example = "super::examples::conversation_id")] id: Path<Uuid>,
    ) -> Result<PresenceResponse, Errors<{ BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | STORAGE }>>
    {
        let status = self
            .state
            .presence
            .peer(auth.0.caller, ConversationId(id.0))
            .await?;
        Ok(PresenceResponse::Ok(Json(status.into())))
    }
}

#[derive(ApiResponse)]
pub enum PresenceResponse {
    /// The peer's presence.
    #[oai(status = 200)]
    Ok(Json<PresenceBody>),
}

/// The list cursor is opaque to clients (a string); an empty one means the first page.
fn parse_list_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("cursor: is not a valid cursor")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursors_are_non_negative_integers_or_nothing() {
        assert_eq!(parse_list_cursor(None).ok(), Some(None));
        assert_eq!(parse_list_cursor(Some("")).ok(), Some(None));
        assert_eq!(parse_list_cursor(Some("42")).ok(), Some(Some(42)));
        assert!(parse_list_cursor(Some("-1")).is_err());
        assert!(parse_list_cursor(Some("abc")).is_err());
    }
}
