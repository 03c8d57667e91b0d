//! Every 4xx/5xx is `{"error": {"code", "message"}}`, including the ones poem and
//! poem-openapi raise themselves in plain text (unparsable JSON, missing fields, parameters of
//! the wrong type, validators, missing tokens, unknown routes, wrong methods, panics).
//!
//! Doing it here, after the fact, catches them all in one place; `bad_request_handler` would
//! need repeating on every operation and also receives auth failures.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::errors::{ErrorBody, code_for_status};

/// Longest framework message passed on to the client; the rest is cut.
const MAX_MESSAGE_CHARS: usize = 300;

/// Calls `ep` and rewrites any error answer that is not JSON yet.
pub async fn json_errors<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let resp = match ep.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return Ok(resp);
    }
    Ok(rewrite(resp).await)
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

async fn rewrite(mut resp: Response) -> Response {
    let (status, code) = code_for_status(resp.status());
    let text = resp.take_body().into_string().await.unwrap_or_default();
    let message = if status.is_server_error() {
        tracing::error!(status = %resp.status(), body = %text, "unhandled server error");
        "internal error".to_owned()
    } else {
        message_for(resp.status(), &text)
    };
    let body = ErrorBody::new(code, message);
    let json = poem_openapi::types::ToJSON::to_json_string(&body);
    resp.set_status(status);
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.set_body(json);
    resp
}

/// A message for a framework error: a fixed one where poem's text says nothing more, else
/// poem's text (it names the parameter or field at fault).
fn message_for(status: StatusCode, text: &str) -> String {
    match status {
        StatusCode::UNAUTHORIZED => "a valid bearer token is required".to_owned(),
        StatusCode::NOT_FOUND => "no such route".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the body must be JSON with Content-Type: application/json".to_owned()
        }
        _ if text.trim().is_empty() => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_lowercase(),
        _ => hide_internal_path_names(text.trim())
            .chars()
            .take(MAX_MESSAGE_CHARS)
            .collect(),
    }
}

/// poem-openapi names path variables `param0`, `param1`… in its routing table, and its parse
/// errors say so: "failed to parse path `param0`: …". Those names mean nothing to a client.
fn hide_internal_path_names(text: &str) -> String {
    const MARKER: &str = "path `param";
    match text.find(MARKER) {
        Some(start) => {
            let rest = &text[start + MARKER.len()..];
            let end = rest.find('`').map_or(rest.len(), |i| i + 1);
            format!("{}path parameter{}", &text[..start], &rest[end..])
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::endpoint::make_sync;
    use poem::http::Method;
    use poem::{EndpointExt, Route, get};

    async fn call(ep: impl Endpoint + 'static, req: Request) -> (StatusCode, serde_json::Value) {
        let ep = ep.around(json_errors);
        let resp = ep.call(req).await.map(IntoResponse::into_response);
        let resp = resp.unwrap_or_else(|err| err.into_response());
        let status = resp.status();
        assert!(is_json(&resp), "{status} is not JSON");
        let text = resp.into_body().into_string().await.expect("body");
        (status, serde_json::from_str(&text).expect("json"))
    }

    fn route() -> Route {
        Route::new().at("/ok", get(make_sync(|_| "fine")))
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_json_not_found() {
        let (status, body) = call(route(), Request::builder().uri_str("/nope").finish()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_json_method_not_allowed() {
        let req = Request::builder()
            .method(Method::POST)
            .uri_str("/ok")
            .finish();
        let (status, body) = call(route(), req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn a_plain_server_error_becomes_an_opaque_internal_error() {
        let failing = make_sync(|_| {
            Err::<String, _>(poem::Error::from_string(
                "db password is hunter2",
                StatusCode::BAD_GATEWAY,
            ))
        });
        let (status, body) = call(failing, Request::default()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn internal_path_variable_names_are_hidden() {
        assert_eq!(
            message_for(
                StatusCode::BAD_REQUEST,
                "failed to parse path `param0`: invalid character"
            ),
            "failed to parse path parameter: invalid character"
        );
    }

    #[test]
    fn framework_text_is_passed_on_but_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(
            message_for(StatusCode::BAD_REQUEST, &long).len(),
            MAX_MESSAGE_CHARS
        );
        assert_eq!(
            message_for(StatusCode::BAD_REQUEST, "failed to parse parameter `limit`"),
            "failed to parse parameter `limit`"
        );
    }
}
