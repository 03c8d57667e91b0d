//! Logging in and out.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tracing::instrument;

use super::ApiTags;
use super::auth::{BearerAuth, count_attempt};
use super::models::UserBody;
use super::statuses::{Errors, JSON_BODY, RATE_LIMITED, STORAGE, UNAUTHORIZED};
use super::text::Text;
use super::timestamp::Timestamp;
use crate::state::AppState;

pub struct SessionsApi {
    pub state: Arc<AppState>,
}

/// Credentials to log in with. Any strings: what is not a registered handle and its
/// password is a 401 `invalid_credentials`, never a 422.
#[derive(Object)]
#[oai(example)]
pub struct LoginRequest {
    /// Any case.
    pub handle: Text,
    pub password: Text,
}

/// A new session. The token is shown only here.
#[derive(Object)]
#[oai(rename = "Session", example)]
pub struct SessionBody {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: UserBody,
    pub expires_at: Timestamp,
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Logged in.
    #[oai(status = 201)]
    Created(Json<SessionBody>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The token no longer works.
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi]
impl SessionsApi {
    /// Log in.
    ///
    /// Answers 401 `invalid_credentials` for an unknown handle or a wrong password alike,
    /// 429 after too many attempts.
    #[oai(
        path = "/v1/sessions",
        method = "post",
        tag = "ApiTags::Sessions",
        operation_id = "log_in"
    )]
    #[instrument(skip_all, fields(handle = body.handle.as_str()))]
    async fn log_in(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<LoginResponse, Errors<{ JSON_BODY | UNAUTHORIZED | RATE_LIMITED | STORAGE }>> {
        count_attempt(&self.state, req)?;
        let session = self
            .state
            .accounts
            .log_in(body.handle.as_str(), body.password.as_str())
            .await?;
        Ok(LoginResponse::Created(Json(SessionBody {
            token: session.token.expose().to_owned(),
            user: session.user.into(),
            expires_at: session.expires_at.into(),
        })))
    }

    /// Log out: the token stops working at once.
    #[oai(
        path = "/v1/sessions/current",
        method = "delete",
        tag = "ApiTags::Sessions",
        operation_id = "log_out"
    )]
    async fn log_out(
        &self,
        auth: BearerAuth,
    ) -> Result<LogoutResponse, Errors<{ UNAUTHORIZED | STORAGE }>> {
        self.state.accounts.log_out(&auth.0.token).await?;
        Ok(LogoutResponse::Revoked)
    }
}
