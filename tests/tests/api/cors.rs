//! CORS (`server.cors_origins`): a browser page on a listed origin may call the API; any
//! other origin gets answers without the headers that would let its page read them.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    AUTHORIZATION, HeaderMap, ORIGIN, VARY,
};
use reqwest::{Method, StatusCode};

use duet_tests::{TestApp, spawn_app, spawn_app_with};

const APP: &str = "https://app.example.com";
const OTHER: &str = "https://elsewhere.example";

async fn with_origins(origins: &str) -> TestApp {
    spawn_app_with(&[("server.cors_origins", origins)]).await
}

/// A browser's preflight before `POST path` with a bearer token and a JSON body.
async fn preflight(app: &TestApp, origin: &str, path: &str) -> (StatusCode, HeaderMap) {
    let resp = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .expect("an answer");
    (resp.status(), resp.headers().clone())
}

async fn get_from(app: &TestApp, origin: &str, path: &str, token: Option<&str>) -> HeaderMap {
    let mut req = app.client.get(app.url(path)).header(ORIGIN, origin);
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    req.send().await.expect("an answer").headers().clone()
}

fn header<'a>(headers: &'a HeaderMap, name: &reqwest::header::HeaderName) -> &'a str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().expect("a text header"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_from_a_listed_origin_allows_the_methods_and_headers_the_api_uses() {
    let app = with_origins(&format!("{APP}, http://localhost:5173")).await;

    let (status, headers) = preflight(&app, APP, "/v1/conversations").await;

    assert!(status.is_success(), "{status}");
    assert_eq!(header(&headers, &ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    let methods = header(&headers, &ACCESS_CONTROL_ALLOW_METHODS).to_ascii_uppercase();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let allowed = header(&headers, &ACCESS_CONTROL_ALLOW_HEADERS).to_ascii_lowercase();
    for name in ["authorization", "content-type"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let (_, second) = preflight(&app, "http://localhost:5173", "/v1/conversations").await;
    assert_eq!(
        header(&second, &ACCESS_CONTROL_ALLOW_ORIGIN),
        "http://localhost:5173"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_to_a_listed_origin_carry_the_headers_a_page_needs_errors_included() {
    let app = with_origins(APP).await;
    let alice = app.register_and_login("alice").await;

    let ok = get_from(&app, APP, "/v1/me", Some(&alice.token)).await;
    let unauthorized = get_from(&app, APP, "/v1/me", None).await;

    assert_eq!(header(&ok, &ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    assert!(
        header(&ok, &ACCESS_CONTROL_EXPOSE_HEADERS)
            .to_ascii_lowercase()
            .contains("retry-after"),
        "{ok:?}"
    );
    assert!(header(&ok, &VARY).contains("Origin"), "{ok:?}");
    assert_eq!(header(&unauthorized, &ACCESS_CONTROL_ALLOW_ORIGIN), APP);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_origin_gets_no_allow_origin_but_is_still_served() {
    let app = with_origins(APP).await;
    let alice = app.register_and_login("alice").await;

    let (_, refused) = preflight(&app, OTHER, "/v1/conversations").await;
    let served = app
        .client
        .get(app.url("/v1/me"))
        .header(ORIGIN, OTHER)
        .header(AUTHORIZATION, format!("Bearer {}", alice.token))
        .send()
        .await
        .expect("an answer");

    assert!(
        refused.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "{refused:?}"
    );
    assert_eq!(served.status(), StatusCode::OK);
    assert!(served.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(header(served.headers(), &VARY).contains("Origin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = spawn_app().await;

    let (_, headers) = preflight(&app, APP, "/v1/conversations").await;
    let live = get_from(&app, APP, "/health/live", None).await;

    assert!(
        headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "{headers:?}"
    );
    assert!(live.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{live:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_star_allows_every_origin() {
    let app = with_origins("*").await;

    let (status, headers) = preflight(&app, OTHER, "/v1/conversations").await;

    assert!(status.is_success(), "{status}");
    assert_eq!(header(&headers, &ACCESS_CONTROL_ALLOW_ORIGIN), OTHER);
}
