//! `GET /v1/sync`: what changed in the caller's conversations since a cursor.

use std::sync::Arc;

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::auth::BearerAuth;
use super::models::ConversationBody;
use super::statuses::{BAD_REQUEST, Errors, STORAGE, UNAUTHORIZED};
use crate::state::AppState;

pub struct SyncApi {
    pub state: Arc<AppState>,
}

/// Conversations changed since the cursor, oldest change first.
#[derive(Object)]
#[oai(rename = "SyncPage", example)]
pub struct SyncPageBody {
    pub changes: Vec<ConversationBody>,
    /// Pass as `since` next time.
    #[oai(validator(minimum(value = "0")))]
    pub cursor: i64,
    /// Whether more changes wait beyond this page.
    pub has_more: bool,
}

#[derive(ApiResponse)]
pub enum SyncResponse {
    /// The changes.
    #[oai(status = 200)]
    Ok(Json<SyncPageBody>),
}

fn default_sync_size() -> u32 {
    100
}

#[OpenApi]
impl SyncApi {
    /// Conversations whose `version` is above `since`, oldest change first. Eventually
    /// consistent: delivery updates inboxes just after a send commits.
    #[oai(
        path = "/v1/sync",
        method = "get",
        tag = "ApiTags::Sync",
        operation_id = "sync"
    )]
    async fn sync(
        &self,
        auth: BearerAuth,
        /// The previous answer's `cursor`; 0 for everything.
        #[oai(default, validator(minimum(value = "0")))]
        since: Query<i64>,
        /// Page size, 1–200.
        #[oai(
            default = "default_sync_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<SyncResponse, Errors<{ BAD_REQUEST | UNAUTHORIZED | STORAGE }>> {
        let page = self
            .state
            .inbox
            .sync(auth.0.caller, since.0, limit.0)
            .await?;
        Ok(SyncResponse::Ok(Json(SyncPageBody {
            changes: page.changes.into_iter().map(Into::into).collect(),
            cursor: page.cursor,
            has_more: page.has_more,
        })))
    }
}
