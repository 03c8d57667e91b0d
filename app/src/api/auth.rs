//! `Authorization: Bearer <token>` on every `/v1` route except registration and login, and
//! the rate limit on those two.

use std::sync::Arc;

use duet_domain::accounts::{Caller, SessionToken};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::http::auth::authenticate;
use crate::http::errors::ApiError;
use crate::state::AppState;

/// A session token from `POST /v1/sessions`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerAuth(pub Authenticated);

/// The caller behind a valid token, and the token itself (logging out revokes it).
pub struct Authenticated {
    pub caller: Caller,
    pub token: SessionToken,
}

/// An invalid token is a JSON 401; a storage failure is a 503 or an opaque 500, never a 500
/// carrying driver text, and never a 401 that would make clients drop a valid token.
async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Authenticated> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::internal(&anyhow::anyhow!("application state is missing")))?;
    let token = SessionToken::new(bearer.token);
    match authenticate(state, &token).await? {
        Some(caller) => Ok(Authenticated { caller, token }),
        None => Err(ApiError::unauthorized().into()),
    }
}

/// Counts a login or registration attempt against the client's address.
///
/// # Errors
/// `rate_limited` with the seconds to wait when the address is over its quota.
pub fn count_attempt(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let client = crate::rate_limit::client_ip(
        req.remote_addr(),
        req.headers(),
        state.server.trust_forwarded_for,
    );
    state.auth_limiter.check(client).map_err(|retry_after| {
        tracing::info!(%client, retry_after, "auth attempt rate limited");
        ApiError::rate_limited(retry_after)
    })
}
