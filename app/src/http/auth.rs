//! Bearer tokens, for every route that authenticates: the OpenAPI security scheme of
//! [`crate::api::auth`] and the WebSocket of [`crate::ws`] both end in [`authenticate`].

use duet_domain::accounts::{Caller, SessionToken};
use poem::http::HeaderMap;
use poem::web::headers::HeaderMapExt;
use poem::web::headers::authorization::{Authorization, Bearer};

use super::errors::ApiError;
use crate::state::AppState;

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
    match headers.typed_get::<Authorization<Bearer>>() {
        Some(auth) if !auth.token().is_empty() => HeaderToken::Present(auth.token().to_owned()),
        _ => HeaderToken::Malformed,
    }
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
