//! The one place where failures become HTTP answers: every domain error maps to a status and
//! one of the error codes of `docs/API.md`, always as `{"error": {"code", "message"}}`.
//!
//! A 500 logs its cause chain and answers an opaque body; a storage outage answers 503 with
//! `Retry-After`, so driver text never reaches a client.

use duet_domain::StoreError;
use duet_domain::accounts::AccountError;
use duet_domain::conversations::ConversationError;
use duet_domain::inbox::InboxError;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object};

/// Seconds a client should wait before retrying when storage is unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// The body of every error answer.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl Example for ErrorBody {
    fn example() -> Self {
        Self::new("validation_failed", "body: must not be empty")
    }
}

/// What went wrong: a stable machine-readable `code` and a human-readable `message`.
#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// One of the codes listed in the API documentation, e.g. `validation_failed`.
    pub code: String,
    /// Safe to show; for validation errors it names the offending field.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

/// Every error an operation may answer.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// `bad_request`: malformed JSON, a missing field, or a query or path parameter of the
    /// wrong type or out of range.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `unauthorized`: a missing, malformed, unknown, revoked or expired token;
    /// `invalid_credentials`: a wrong handle or password at login.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `not_found`: no such user or conversation, or a conversation the caller is not in.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `handle_taken`: the handle is in use (compared case-insensitively).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `payload_too_large`: the body is over the configured limit; it was not read.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `validation_failed`: a well-formed request with an invalid value; the message names
    /// the field.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// `rate_limited`: too many login or registration attempts from this address, or too
    /// many messages sent by this user.
    #[oai(status = 429)]
    RateLimited(
        Json<ErrorBody>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// `internal`: a bug on our side; the cause is logged, not shown.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: storage cannot be reached right now.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(Json(ErrorBody::new("bad_request", message)))
    }

    pub fn unauthorized() -> Self {
        Self::Unauthorized(Json(ErrorBody::new(
            "unauthorized",
            "a valid bearer token is required",
        )))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(Json(ErrorBody::new("not_found", message)))
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(Json(ErrorBody::new(
            "payload_too_large",
            format!("the request body must be at most {limit} bytes"),
        )))
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::RateLimited(
            Json(ErrorBody::new(
                "rate_limited",
                "too many attempts from this address; retry later",
            )),
            retry_after_secs,
        )
    }

    /// A send refused by the caller's message quota; `Retry-After` is rounded up to whole
    /// seconds (at least 1), so a client that waits it out is allowed.
    pub fn send_rate_limited(retry_after: std::time::Duration) -> Self {
        Self::RateLimited(
            Json(ErrorBody::new(
                "rate_limited",
                "too many messages; retry later",
            )),
            whole_seconds(retry_after),
        )
    }

    /// Logs `cause` with its whole chain and answers an opaque 500.
    pub fn internal(cause: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{cause:#}"), "internal error");
        Self::Internal(Json(ErrorBody::new("internal", "internal error")))
    }

    /// The status and body, for callers that answer outside poem-openapi (the WebSocket).
    pub fn parts(&self) -> (StatusCode, &ErrorBody) {
        match self {
            Self::BadRequest(Json(b)) => (StatusCode::BAD_REQUEST, b),
            Self::Unauthorized(Json(b)) => (StatusCode::UNAUTHORIZED, b),
            Self::NotFound(Json(b)) => (StatusCode::NOT_FOUND, b),
            Self::Conflict(Json(b)) => (StatusCode::CONFLICT, b),
            Self::PayloadTooLarge(Json(b)) => (StatusCode::PAYLOAD_TOO_LARGE, b),
            Self::Unprocessable(Json(b)) => (StatusCode::UNPROCESSABLE_ENTITY, b),
            Self::RateLimited(Json(b), _) => (StatusCode::TOO_MANY_REQUESTS, b),
            Self::Internal(Json(b)) => (StatusCode::INTERNAL_SERVER_ERROR, b),
            Self::Unavailable(Json(b), _) => (StatusCode::SERVICE_UNAVAILABLE, b),
        }
    }
}

/// `wait` as a `Retry-After`: rounded up to whole seconds, at least 1.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "storage unavailable");
                Self::Unavailable(
                    Json(ErrorBody::new(
                        "unavailable",
                        "storage is unavailable; retry later",
                    )),
                    UNAVAILABLE_RETRY_AFTER_SECS,
                )
            }
            StoreError::Unexpected(cause) => Self::internal(&cause),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(invalid) => Self::Unprocessable(Json(ErrorBody::new(
                "validation_failed",
                invalid.to_string(),
            ))),
            AccountError::HandleTaken => {
                Self::Conflict(Json(ErrorBody::new("handle_taken", "this handle is taken")))
            }
            AccountError::WrongCredentials => Self::Unauthorized(Json(ErrorBody::new(
                "invalid_credentials",
                "wrong handle or password",
            ))),
            AccountError::NotFound => Self::not_found("no such user"),
            AccountError::Store(err) => err.into(),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(err: ConversationError) -> Self {
        match err {
            ConversationError::Invalid(invalid) => Self::Unprocessable(Json(ErrorBody::new(
                "validation_failed",
                invalid.to_string(),
            ))),
            ConversationError::NotFound => Self::not_found("no such conversation"),
            ConversationError::PeerNotFound => Self::not_found("no user has this handle"),
            ConversationError::RateLimited { retry_after } => Self::send_rate_limited(retry_after),
            ConversationError::Overloaded { retry_after } => Self::Unavailable(
                Json(ErrorBody::new(
                    "unavailable",
                    "delivery is behind; retry later",
                )),
                whole_seconds(retry_after),
            ),
            ConversationError::Store(err) => err.into(),
        }
    }
}

impl From<InboxError> for ApiError {
    fn from(err: InboxError) -> Self {
        match err {
            // Everything an inbox read takes is a query parameter (limit, cursor, since): out
            // of range is a 400, like the validators answer.
            InboxError::Invalid(invalid) => Self::bad_request(invalid.to_string()),
            InboxError::Store(err) => err.into(),
        }
    }
}

/// The error code for a status raised outside our handlers (by poem, poem-openapi, or a
/// panic), and the status to answer with: statuses the API does not document become 400.
pub fn code_for_status(status: StatusCode) -> (StatusCode, &'static str) {
    match status {
        StatusCode::UNAUTHORIZED => (status, "unauthorized"),
        StatusCode::NOT_FOUND => (status, "not_found"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method_not_allowed"),
        StatusCode::CONFLICT => (status, "handle_taken"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large"),
        StatusCode::UNPROCESSABLE_ENTITY => (status, "validation_failed"),
        StatusCode::TOO_MANY_REQUESTS => (status, "rate_limited"),
        StatusCode::SERVICE_UNAVAILABLE => (status, "unavailable"),
        s if s.is_server_error() => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_domain::accounts::InvalidInput;

    fn status_and_code(err: impl Into<ApiError>) -> (StatusCode, String) {
        let err = err.into();
        let (status, body) = err.parts();
        (status, body.error.code.clone())
    }

    #[test]
    fn account_errors_map_to_documented_codes() {
        let invalid = AccountError::Invalid(InvalidInput::new("handle", "too short"));
        assert_eq!(
            status_and_code(invalid),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into())
        );
        assert_eq!(
            status_and_code(AccountError::HandleTaken),
            (StatusCode::CONFLICT, "handle_taken".into())
        );
        assert_eq!(
            status_and_code(AccountError::WrongCredentials),
            (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
        );
        assert_eq!(
            status_and_code(AccountError::NotFound),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }

    #[test]
    fn a_validation_message_names_the_field() {
        let err: ApiError =
            ConversationError::Invalid(InvalidInput::new("body", "must not be empty")).into();
        assert_eq!(err.parts().1.error.message, "body: must not be empty");
    }

    #[test]
    fn conversations_one_is_not_in_are_indistinguishable_from_missing_ones() {
        assert_eq!(
            status_and_code(ConversationError::NotFound),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        assert_eq!(
            status_and_code(ConversationError::PeerNotFound),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }

    #[test]
    fn a_rate_limited_send_is_a_429_with_a_whole_second_retry_after() {
        let limited = |millis| ConversationError::RateLimited {
            retry_after: std::time::Duration::from_millis(millis),
        };
        let err: ApiError = limited(1_200).into();
        assert_eq!(err.parts().0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.parts().1.error.code, "rate_limited");
        assert!(matches!(err, ApiError::RateLimited(_, 2)));
        assert!(matches!(limited(30).into(), ApiError::RateLimited(_, 1)));
        assert!(matches!(limited(3_000).into(), ApiError::RateLimited(_, 3)));
    }

    #[test]
    fn a_send_refused_while_delivery_lags_is_a_503_with_a_retry_after() {
        let err: ApiError = ConversationError::Overloaded {
            retry_after: std::time::Duration::from_millis(1_500),
        }
        .into();
        assert_eq!(err.parts().0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.parts().1.error.code, "unavailable");
        assert!(matches!(err, ApiError::Unavailable(_, 2)));
    }

    #[test]
    fn storage_failures_never_leak_driver_text() {
        let unavailable = StoreError::Unavailable(anyhow::anyhow!("connection refused (os 111)"));
        let err: ApiError = unavailable.into();
        let (status, body) = err.parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.error.code, "unavailable");
        assert!(!body.error.message.contains("refused"));
        assert!(matches!(
            err,
            ApiError::Unavailable(_, UNAVAILABLE_RETRY_AFTER_SECS)
        ));

        let unexpected = StoreError::Unexpected(anyhow::anyhow!("UNIQUE constraint failed"));
        let err: ApiError = InboxError::Store(unexpected).into();
        let (status, body) = err.parts();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.error.code, "internal");
        assert!(!body.error.message.contains("UNIQUE"));
    }

    #[test]
    fn inbox_parameters_out_of_range_are_bad_requests() {
        let err = InboxError::Invalid(InvalidInput::new("limit", "must be 1–200"));
        assert_eq!(
            status_and_code(err),
            (StatusCode::BAD_REQUEST, "bad_request".into())
        );
    }

    #[test]
    fn framework_statuses_get_documented_codes() {
        assert_eq!(
            code_for_status(StatusCode::METHOD_NOT_ALLOWED),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        );
        assert_eq!(
            code_for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        assert_eq!(
            code_for_status(StatusCode::BAD_GATEWAY),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert_eq!(
            code_for_status(StatusCode::UNAUTHORIZED),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
}
