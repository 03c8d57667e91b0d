//! Registration and user lookups.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tracing::instrument;

use super::ApiTags;
use super::auth::{BearerAuth, count_attempt};
use super::declared::{Declared, DisplayNameRule, HandleRule, PasswordRule};
use super::models::UserBody;
use super::statuses::{
    CONFLICT, Errors, JSON_BODY, NOT_FOUND, RATE_LIMITED, STORAGE, UNAUTHORIZED, UNPROCESSABLE,
};
use super::text::Text;
use crate::state::AppState;

pub struct AccountsApi {
    pub state: Arc<AppState>,
}

/// A registration. A value that breaks a rule below is a 422 `validation_failed` naming
/// the field.
#[derive(Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// 3–32 characters of `[a-z0-9_.]`, unique. Case-folded (`Alice` registers `alice`);
    /// surrounding whitespace is ignored.
    pub handle: Declared<Text, HandleRule>,
    /// 8–128 characters.
    pub password: Declared<Text, PasswordRule>,
    /// 1–64 characters without control characters once surrounding whitespace is trimmed;
    /// the handle when absent or `null`.
    #[oai(nullable)]
    pub display_name: Option<Declared<Text, DisplayNameRule>>,
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
}

#[derive(ApiResponse)]
pub enum UserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<UserBody>),
}

fn handle_example() -> String {
    "bob".to_owned()
}

#[OpenApi]
impl AccountsApi {
    /// Register an account.
    ///
    /// Answers 409 `handle_taken` when the handle is in use (case-insensitively), 422 for an
    /// invalid handle, password or display name, 429 after too many attempts.
    #[oai(
        path = "/v1/accounts",
        method = "post",
        tag = "ApiTags::Accounts",
        operation_id = "register"
    )]
    #[instrument(skip_all, fields(handle = body.handle.0.as_str()))]
    async fn register(
        &self,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> Result<
        RegisterResponse,
        Errors<{ JSON_BODY | CONFLICT | UNPROCESSABLE | RATE_LIMITED | STORAGE }>,
    > {
        count_attempt(&self.state, req)?;
        let Json(body) = body;
        let user = self
            .state
            .accounts
            .register(
                body.handle.0.as_str(),
                body.password.into_inner().into_inner(),
                body.display_name.as_ref().map(|name| name.0.as_str()),
            )
            .await?;
        tracing::info!(user = %user.id, "account registered");
        Ok(RegisterResponse::Created(Json(user.into())))
    }

    /// The caller's own account.
    #[oai(
        path = "/v1/me",
        method = "get",
        tag = "ApiTags::Accounts",
        operation_id = "me"
    )]
    async fn me(
        &self,
        auth: BearerAuth,
    ) -> Result<UserResponse, Errors<{ UNAUTHORIZED | STORAGE }>> {
        let user = self.state.accounts.user(auth.0.caller.user_id).await?;
        Ok(UserResponse::Ok(Json(user.into())))
    }

    /// A user by handle (case-insensitive). Answers 404 `not_found` when nobody has it.
    #[oai(
        path = "/v1/users/:handle",
        method = "get",
        tag = "ApiTags::Accounts",
        operation_id = "user_by_handle"
    )]
    async fn user_by_handle(
        &self,
        _auth: BearerAuth,
        /// Any case; a string that cannot be a handle is simply nobody's (404).
        #[oai(example = "handle_example")]
        handle: Path<String>,
    ) -> Result<UserResponse, Errors<{ UNAUTHORIZED | NOT_FOUND | STORAGE }>> {
        let user = self.state.accounts.user_by_handle(&handle.0).await?;
        Ok(UserResponse::Ok(Json(user.into())))
    }
}
