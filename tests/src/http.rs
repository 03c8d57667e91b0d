//! Raw HTTP calls and the [`Reply`] they return.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::TestApp;
use crate::assertions::assert_error_body;

/// An HTTP answer: status, headers and the body both as text and (if it is JSON) parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Panics with the whole reply unless the status is `expected`; returns the JSON body.
    #[track_caller]
    pub fn expect(self, expected: StatusCode) -> Value {
        assert_eq!(
            self.status, expected,
            "expected {expected}, got {} with body {}",
            self.status, self.text
        );
        self.json
    }

    /// Asserts the documented error answer: this status, `application/json`, and exactly
    /// `{"error": {"code": CODE, "message": non-empty string}}`. Returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got {} with body {}",
            self.status, self.text
        );
        assert_error_body(&self.headers, &self.json, &self.text, code)
    }
}

impl TestApp {
    /// Any request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request).await
    }

    /// A request with a raw body sent as `application/json` (for malformed JSON tests).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        send(request).await
    }

    /// A request with a literal `Authorization` header value (or none).
    pub async fn call_with_authorization(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }
}

impl Reply {
    /// Reads a response sent with the client directly (for unusual headers).
    pub async fn read(response: reqwest::Response) -> Reply {
        into_reply(response).await
    }
}

/// Sends a request the server must answer, and reads the answer.
async fn send(request: reqwest::RequestBuilder) -> Reply {
    into_reply(
        request
            .send()
            .await
            .expect("the request reaches the server"),
    )
    .await
}

async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}
