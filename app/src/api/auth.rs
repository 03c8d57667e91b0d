//! `Authorization: Bearer <token>` on every `/v1` route except registration and login.

use std::sync::Arc;

use duet_domain::accounts::{Caller, SessionToken};
use poem::Request;
use poem::http::HeaderMap;
use poem::web::headers::HeaderMapExt;
use poem::web::headers::authorization::{Authorization, Bearer as BearerHeader};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::errors::ApiError;
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

/// The caller a token stands for, with storage failures already mapped.
///
/// # Errors
/// `Unavailable` or `Internal` when the session store fails.
pub async fn authenticate(
    state: &AppState,
    token: &SessionToken,
) -> Result<Option<Caller>, ApiError> {
    Ok(state.accounts.authenticate(token).await?)
}

/// What the `Authorization` header of a request says.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderToken {
    /// No header: the WebSocket then expects the token in its first frame.
    Absent,
    /// A header that is not `Bearer <token>`.
    Malformed,
    Present(String),
}

/// Reads a bearer token from the headers, for routes outside poem-openapi (the WebSocket).
pub fn header_token(headers: &HeaderMap) -> HeaderToken {
    if !headers.contains_key(poem::http::header::AUTHORIZATION) {
        return HeaderToken::Absent;
    }
    match headers.typed_get::<Authorization<BearerHeader>>() {
        Some(auth) if !auth.token().is_empty() => HeaderToken::Present(auth.token().to_owned()),
        _ => HeaderToken::Malformed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            poem::http::header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn a_bearer_header_yields_its_token() {
        assert_eq!(
            header_token(&with_authorization("Bearer abc.def")),
            HeaderToken::Present("abc.def".into())
        );
    }

    #[test]
    fn other_schemes_are_malformed_and_no_header_is_absent() {
        assert_eq!(
            header_token(&with_authorization("Basic dXNlcjpwdw==")),
            HeaderToken::Malformed
        );
        assert_eq!(
            header_token(&with_authorization("Bearer")),
            HeaderToken::Malformed
        );
        assert_eq!(header_token(&HeaderMap::new()), HeaderToken::Absent);
    }
}
