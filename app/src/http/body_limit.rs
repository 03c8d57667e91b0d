//! Request bodies over `server.max_body_bytes` get 413 before they are read.
//!
//! poem's `SizeLimit` answers 411 to any request without `Content-Length` (every GET), and
//! `Json<T>` reads bodies without a limit, hence this middleware: a declared length is checked
//! up front; a chunked body is read here, up to the limit, and handed on from memory.

use std::sync::Arc;

use poem::error::ReadBodyError;
use poem::http::header;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::errors::ApiError;

/// Answers 413 to a body over `max_bytes`, else calls `ep`.
pub async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    max_bytes: usize,
) -> poem::Result<Response> {
    match declared_length(&req) {
        Declared::Length(length) if length > max_bytes => {
            return Ok(ApiError::payload_too_large(max_bytes).into_response());
        }
        Declared::Length(_) => {}
        Declared::Invalid => {
            return Ok(ApiError::bad_request("invalid Content-Length header").into_response());
        }
        Declared::Unknown => match req.take_body().into_bytes_limit(max_bytes).await {
            Ok(bytes) => req.set_body(bytes),
            Err(ReadBodyError::PayloadTooLarge) => {
                return Ok(ApiError::payload_too_large(max_bytes).into_response());
            }
            Err(err) => {
                return Ok(
                    ApiError::bad_request(format!("cannot read the body: {err}")).into_response(),
                );
            }
        },
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

enum Declared {
    Length(usize),
    Invalid,
    /// No `Content-Length`: a chunked body, or none at all (reading it costs nothing then).
    Unknown,
}

fn declared_length(req: &Request) -> Declared {
    match req.headers().get(header::CONTENT_LENGTH) {
        None => Declared::Unknown,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map_or(Declared::Invalid, |length| {
                Declared::Length(usize::try_from(length).unwrap_or(usize::MAX))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::endpoint::make;
    use poem::http::StatusCode;
    use poem::{Body, EndpointExt};

    /// An endpoint that answers with the length of the body it read.
    fn echo_length() -> impl Endpoint<Output = Response> {
        make(|req: Request| async move {
            let bytes = req.into_body().into_bytes().await?;
            Ok::<_, poem::Error>(bytes.len().to_string())
        })
        .around(|ep, req| limit_body(ep, req, 10))
        .map_to_response()
    }

    async fn status_of(req: Request) -> StatusCode {
        match echo_length().call(req).await {
            Ok(resp) => resp.status(),
            Err(err) => err.status(),
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, "11")
            .body(Body::from_vec(vec![b'x'; 11]));
        assert_eq!(status_of(req).await, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn an_undeclared_body_over_the_limit_is_refused() {
        let req = Request::builder().body(Body::from_vec(vec![b'x'; 11]));
        assert_eq!(status_of(req).await, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn bodies_within_the_limit_reach_the_endpoint_whole() {
        let req = Request::builder().body(Body::from_vec(vec![b'x'; 10]));
        let resp = echo_length().call(req).await.expect("an answer");
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.into_body().into_string().await.expect("a body");
        assert_eq!(text, "10");
    }

    #[tokio::test]
    async fn a_content_length_that_is_not_a_number_is_a_bad_request() {
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, "ten")
            .body(Body::empty());
        assert_eq!(status_of(req).await, StatusCode::BAD_REQUEST);
    }
}
