//! Sending, history and read receipts: these read the conversation's own record, so they are
//! immediately consistent.

use std::sync::Arc;

use duet_domain::ConversationId;
use duet_domain::conversations::{Appended, HistoryQuery};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tracing::{Instrument, instrument};
use uuid::Uuid;

use super::ApiTags;
use super::auth::BearerAuth;
use super::declared::{BodyRule, ClientMsgIdRule, Declared, SeqRule};
use super::models::{ConversationBody, MessageBody};
use super::statuses::{
    BAD_REQUEST, Errors, JSON_BODY, NOT_FOUND, RATE_LIMITED, STORAGE, UNAUTHORIZED, UNPROCESSABLE,
};
use super::text::Text;
use crate::http::errors::ApiError;
use crate::state::AppState;

pub struct MessagesApi {
    pub state: Arc<AppState>,
}

/// A message to send. A value that breaks a rule below is a 422 `validation_failed` naming
/// the field.
#[derive(Object)]
#[oai(example)]
pub struct SendMessageRequest {
    /// The sender's own id for this message (1–64 visible ASCII characters, e.g. a UUID):
    /// sending again with it in this conversation returns the original instead of a copy.
    pub client_msg_id: Declared<Text, ClientMsgIdRule>,
    /// Not blank, no NUL, at most 4096 bytes of UTF-8.
    pub body: Declared<Text, BodyRule>,
}

/// A read receipt.
#[derive(Object)]
#[oai(example)]
pub struct MarkReadRequest {
    /// The seq read up to; a lower one than the current position changes nothing. A
    /// negative one, or one past the newest message, is a 422 `validation_failed`.
    pub seq: Declared<i64, SeqRule>,
}

/// A page of history in ascending seq.
#[derive(Object)]
#[oai(rename = "MessagePage", example)]
pub struct MessagePageBody {
    pub items: Vec<MessageBody>,
    /// Whether more messages lie beyond this page in the direction it was read.
    pub has_more: bool,
}

#[derive(ApiResponse)]
pub enum HistoryResponse {
    /// A page of messages.
    #[oai(status = 200)]
    Ok(Json<MessagePageBody>),
}

#[derive(ApiResponse)]
pub enum SendResponse {
    /// `client_msg_id` was already used by the caller here: the original message.
    #[oai(status = 200)]
    Replayed(Json<MessageBody>),
    /// The message was stored.
    #[oai(status = 201)]
    Created(Json<MessageBody>),
}

#[derive(ApiResponse)]
pub enum MarkReadResponse {
    /// The conversation with the caller's read position.
    #[oai(status = 200)]
    Ok(Json<ConversationBody>),
}

fn default_page_size() -> u32 {
    50
}

#[OpenApi]
impl MessagesApi {
    /// A page of history, ascending by seq. With `after_seq`, the page starting just after
    /// it; otherwise the page ending just before `before_seq` (or the newest messages).
    #[oai(
        path = "/v1/conversations/:id/messages",
        method = "get",
        tag = "ApiTags::Messages",
        operation_id = "history"
    )]
    async fn history(
        &self,
        auth: BearerAuth,
        #[oai(example = "super::examples::conversation_id")] id: Path<Uuid>,
        /// Only messages with a lower seq.
        #[oai(validator(minimum(value = "0")))]
        before_seq: Query<Option<i64>>,
        /// Only messages with a higher seq.
        #[oai(validator(minimum(value = "0")))]
        after_seq: Query<Option<i64>>,
        /// Page size, 1–200.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<HistoryResponse, Errors<{ BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | STORAGE }>> {
        let query = HistoryQuery {
            before_seq: before_seq.0,
            after_seq: after_seq.0,
            limit: limit.0,
        };
        let page = self
            .state
            .conversations
            .history(auth.0.caller, ConversationId(id.0), query)
            .await?;
        Ok(HistoryResponse::Ok(Json(MessagePageBody {
            items: page.items.into_iter().map(Into::into).collect(),
            has_more: page.has_more,
        })))
    }

    /// Send a message. A retry with the same `client_msg_id` answers 200 with the original.
    ///
    /// Answers 404 `not_found` for a conversation the caller is not in, 422 for an invalid
    /// body or `client_msg_id`, 429 `rate_limited` (with `Retry-After`, in seconds) when the
    /// caller sends faster than their quota, 503 `unavailable` (with `Retry-After`) when
    /// storage is unreachable or delivery has fallen too far behind to take more; a refused
    /// message is not stored.
    #[oai(
        path = "/v1/conversations/:id/messages",
        method = "post",
        tag = "ApiTags::Messages",
        operation_id = "send_message"
    )]
    #[instrument(skip_all, fields(conversation = %id.0))]
    async fn send(
        &self,
        auth: BearerAuth,
        #[oai(example = "super::examples::conversation_id")] id: Path<Uuid>,
        body: Json<SendMessageRequest>,
    ) -> Result<
        SendResponse,
        Errors<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | UNPROCESSABLE | RATE_LIMITED | STORAGE }>,
    > {
        let Json(body) = body;
        let state = Arc::clone(&self.state);
        // On its own task, so a client that hangs up (or a shutdown's deadline) cannot cancel
        // a send between its commit and its live push: the push happens after the append
        // returns, and a committed message must reach the connected devices.
        let sending = tokio::spawn(
            async move {
                state
                    .conversations
                    .send(
                        auth.0.caller,
                        ConversationId(id.0),
                        body.client_msg_id.into_inner().into_inner(),
                        body.body.into_inner().into_inner(),
                    )
                    .await
            }
            .in_current_span(),
        );
        let appended = sending
            .await
            .map_err(|err| ApiError::internal(&anyhow::anyhow!("the send task failed: {err}")))??;
        Ok(match appended {
            Appended::Created(message) => {
                metrics::counter!("duet_messages_sent_total").increment(1);
                SendResponse::Created(Json(message.into()))
            }
            Appended::Replayed(message) => SendResponse::Replayed(Json(message.into())),
        })
    }

    /// Move the caller's read position forward. A lower seq is a no-op; 422 for a negative
    /// seq or one past the newest message.
    #[oai(
        path = "/v1/conversations/:id/read",
        method = "post",
        tag = "ApiTags::Messages",
        operation_id = "mark_read"
    )]
    async fn mark_read(
        &self,
        auth: BearerAuth,
        #[oai(example = "super::examples::conversation_id")] id: Path<Uuid>,
        body: Json<MarkReadRequest>,
    ) -> Result<
        MarkReadResponse,
        Errors<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | UNPROCESSABLE | STORAGE }>,
    > {
        let view = self
            .state
            .conversations
            .mark_read(auth.0.caller, ConversationId(id.0), body.seq.0)
            .await?;
        Ok(MarkReadResponse::Ok(Json(view.into())))
    }
}
