//! Which error statuses each operation declares in the OpenAPI document.
//!
//! Every error is an [`ApiError`] (one mapping, in `http::errors`); an operation returns
//! `Result<_, Errors<{ NOT_FOUND | UNAUTHORIZED | … }>>`, and the document lists only those
//! statuses for it, each with the description and body of its `ApiError` variant. One
//! generic type instead of an enum per operation keeps fifteen near-identical enums, and
//! their conversions, from drifting apart; the status sets below are the contract.

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponses, Registry};

use crate::http::errors::ApiError;

/// `400 bad_request`.
pub const BAD_REQUEST: u16 = 1 << 0;
/// `401 unauthorized` / `invalid_credentials`.
pub const UNAUTHORIZED: u16 = 1 << 1;
/// `404 not_found`.
pub const NOT_FOUND: u16 = 1 << 2;
/// `409 handle_taken`.
pub const CONFLICT: u16 = 1 << 3;
/// `413 payload_too_large`.
pub const PAYLOAD_TOO_LARGE: u16 = 1 << 4;
/// `422 validation_failed`.
pub const UNPROCESSABLE: u16 = 1 << 5;
/// `429 rate_limited`.
pub const RATE_LIMITED: u16 = 1 << 6;
/// `500 internal` and `503 unavailable`: any operation that reads or writes storage.
pub const STORAGE: u16 = 1 << 7 | 1 << 8;
/// Every operation with a JSON body: it may be malformed (400) or too large (413).
pub const JSON_BODY: u16 = BAD_REQUEST | PAYLOAD_TOO_LARGE;

fn bit(status: u16) -> u16 {
    match status {
        400 => BAD_REQUEST,
        401 => UNAUTHORIZED,
        404 => NOT_FOUND,
        409 => CONFLICT,
        413 => PAYLOAD_TOO_LARGE,
        422 => UNPROCESSABLE,
        429 => RATE_LIMITED,
        500 => 1 << 7,
        503 => 1 << 8,
        _ => 0,
    }
}

/// An [`ApiError`] that an operation declaring the statuses `STATUSES` answers.
#[derive(Debug)]
pub struct Errors<const STATUSES: u16>(pub ApiError);

impl<const STATUSES: u16> Errors<STATUSES> {
    /// Whether the document lists `status` for this operation.
    pub fn declares(status: u16) -> bool {
        bit(status) & STATUSES != 0
    }
}

/// Any error an `ApiError` comes from (domain errors, `ApiError` itself), so `?` works. An
/// error of a status the operation does not declare is a contract bug: it is logged, and in
/// debug builds (the tests) it panics, which the panic catcher answers with a 500.
impl<const STATUSES: u16, E> From<E> for Errors<STATUSES>
where
    ApiError: From<E>,
{
    fn from(err: E) -> Self {
        let err = ApiError::from(err);
        let status = err.parts().0.as_u16();
        if !Self::declares(status) {
            tracing::error!(status, "an operation answered a status it does not declare");
            if cfg!(debug_assertions) {
                panic!("status {status} is not declared by this operation");
            }
        }
        Self(err)
    }
}

impl<const STATUSES: u16> ApiResponse for Errors<STATUSES> {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses
            .retain(|response| response.status.is_some_and(Self::declares));
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

impl<const STATUSES: u16> IntoResponse for Errors<STATUSES> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<const STATUSES: u16> From<Errors<STATUSES>> for poem::Error {
    fn from(err: Errors<STATUSES>) -> Self {
        err.0.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_only_the_declared_statuses() {
        let statuses = |meta: MetaResponses| -> Vec<u16> {
            meta.responses.iter().filter_map(|r| r.status).collect()
        };
        assert_eq!(
            statuses(Errors::<{ NOT_FOUND | STORAGE }>::meta()),
            [404, 500, 503]
        );
        assert_eq!(
            statuses(Errors::<{ JSON_BODY | RATE_LIMITED }>::meta()),
            [400, 413, 429]
        );
    }

    #[test]
    fn every_status_api_error_answers_has_a_bit() {
        for response in ApiError::meta().responses {
            let status = response.status.expect("a fixed status");
            assert_ne!(bit(status), 0, "{status} cannot be declared");
        }
    }

    #[test]
    fn a_declared_error_keeps_its_status_and_body() {
        let err: Errors<NOT_FOUND> = ApiError::not_found("no such user").into();
        let (status, body) = err.0.parts();
        assert_eq!(
            (status.as_u16(), body.error.code.as_str()),
            (404, "not_found")
        );
    }
}
