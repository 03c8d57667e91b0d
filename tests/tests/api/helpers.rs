//! How every test starts Duet and talks to it.
//!
//! `spawn_app()` starts the real `Application` exactly as `main` does, on port 0, against a
//! fresh SQLite file in its own temporary folder, and returns a [`TestApp`] that knows the
//! address and speaks the API in typed helpers. Nothing here waits without a deadline: HTTP
//! calls have a client timeout, WebSocket reads [`WS_TIMEOUT`] and polling [`EVENTUALLY`],
//! so a broken server fails a test instead of hanging it.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use duet::config::{Profile, Settings};
use duet::startup::Application;
use futures::{SinkExt, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// The longest a test waits for one WebSocket frame.
pub const WS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a test waits for an eventually consistent read (list, sync) to catch up.
pub const EVENTUALLY: Duration = Duration::from_secs(5);

/// The documented key sets, so shape checks read as the docs do.
pub const USER_KEYS: &[&str] = &["id", "handle", "display_name", "created_at"];
pub const MESSAGE_KEYS: &[&str] = &[
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "client_msg_id",
    "body",
    "created_at",
];
pub const CONVERSATION_KEYS: &[&str] = &[
    "id",
    "peer",
    "last_message",
    "last_seq",
    "read_seq",
    "peer_read_seq",
    "unread_count",
    "updated_at",
    "version",
];

static TRACING: Once = Once::new();

/// Logs go nowhere unless `TEST_LOG` is set (then to stdout, filtered by `RUST_LOG`).
fn init_test_logging() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,duet=debug"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// A running Duet on a free port with its own SQLite file.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    overrides: Vec<(String, String)>,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept so the folder outlives every `Application` built on it (restarts included).
    _dir: Arc<TempDir>,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub handle: String,
    pub token: String,
}

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

/// Checks a body against `{"error": {"code", "message"}}`; returns the message.
#[track_caller]
pub fn assert_error_body(headers: &HeaderMap, json: &Value, text: &str, code: &str) -> String {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "error content type is {content_type:?}, body {text}"
    );
    assert_keys(json, &["error"]);
    assert_keys(&json["error"], &["code", "message"]);
    assert_eq!(json["error"]["code"], code, "error body {text}");
    let message = json["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message is not a string in {text}"));
    assert!(!message.is_empty(), "error.message is empty in {text}");
    message.to_owned()
}

/// Asserts `value` is an object with exactly these keys.
#[track_caller]
pub fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object with keys {keys:?}, got {value}"));
    let actual: HashSet<&str> = object.keys().map(String::as_str).collect();
    let expected: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(actual, expected, "keys of {value}");
}

/// Asserts an RFC 3339 UTC timestamp.
#[track_caller]
pub fn assert_utc_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text} is not UTC");
}

/// Asserts a UUID string.
#[track_caller]
pub fn assert_uuid(value: &Value) -> Uuid {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {value}"));
    Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text:?} is not a UUID: {e}"))
}

/// Asserts the documented User shape.
#[track_caller]
pub fn assert_user_shape(user: &Value) {
    assert_keys(user, USER_KEYS);
    assert_uuid(&user["id"]);
    assert!(user["handle"].is_string(), "{user}");
    assert!(user["display_name"].is_string(), "{user}");
    assert_utc_timestamp(&user["created_at"]);
}

/// Asserts the documented Message shape.
#[track_caller]
pub fn assert_message_shape(message: &Value) {
    assert_keys(message, MESSAGE_KEYS);
    assert_uuid(&message["id"]);
    assert_uuid(&message["conversation_id"]);
    assert_uuid(&message["sender_id"]);
    assert!(message["seq"].is_i64(), "{message}");
    assert!(message["client_msg_id"].is_string(), "{message}");
    assert!(message["body"].is_string(), "{message}");
    assert_utc_timestamp(&message["created_at"]);
}

/// Asserts the documented Conversation shape.
#[track_caller]
pub fn assert_conversation_shape(conversation: &Value) {
    assert_keys(conversation, CONVERSATION_KEYS);
    assert_uuid(&conversation["id"]);
    assert_user_shape(&conversation["peer"]);
    if !conversation["last_message"].is_null() {
        assert_message_shape(&conversation["last_message"]);
    }
    for key in [
        "last_seq",
        "read_seq",
        "peer_read_seq",
        "unread_count",
        "version",
    ] {
        assert!(conversation[key].is_i64(), "{key} in {conversation}");
    }
    assert_utc_timestamp(&conversation["updated_at"]);
}

/// Starts Duet with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts Duet with the test defaults plus `overrides` (later wins), e.g.
/// `&[("auth.attempts_per_minute", "3")]`.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    init_test_logging();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db_path = dir.path().join("duet.db");
    let overrides = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    start(Arc::new(dir), db_path, overrides).await
}

async fn start(dir: Arc<TempDir>, db_path: PathBuf, overrides: Vec<(String, String)>) -> TestApp {
    let db = db_path.to_str().expect("a UTF-8 temp path").to_owned();
    let mut all: Vec<(&str, &str)> = vec![
        ("server.host", "127.0.0.1"),
        ("server.port", "0"),
        ("storage.sqlite.path", &db),
        ("auth.attempts_per_minute", "100000"),
    ];
    all.extend(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let settings = Settings::load(&Profile::None, &all).expect("test settings load");
    let app = Application::build(settings)
        .await
        .expect("the application builds");
    let port = app.port();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        db_path,
        overrides,
        stop,
        server: Some(server),
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    /// Stops the server, asserts it finished cleanly within 15 s, and returns nothing else.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let finished = tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("the server stops within 15 s of cancellation")
                .expect("the server task does not panic");
            finished.expect("run_until_stopped returns Ok after cancellation");
        }
    }

    /// Stops this process and starts a new `Application` on the same SQLite file.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = Arc::clone(&self._dir);
        let db_path = self.db_path.clone();
        let overrides = std::mem::take(&mut self.overrides);
        drop(self);
        start(dir, db_path, overrides).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    // ---- raw HTTP ----

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
        into_reply(request.send().await.expect("the request reaches the server")).await
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
        into_reply(request.send().await.expect("the request reaches the server")).await
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
        into_reply(request.send().await.expect("the request reaches the server")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    // ---- accounts ----

    pub async fn try_register(&self, body: &Value) -> Reply {
        self.post("/v1/accounts", None, body).await
    }

    /// Registers `handle` with [`PASSWORD`]; returns the User.
    pub async fn register(&self, handle: &str) -> Value {
        self.try_register(&json!({"handle": handle, "password": PASSWORD}))
            .await
            .expect(StatusCode::CREATED)
    }

    pub async fn login(&self, handle: &str, password: &str) -> Reply {
        self.post(
            "/v1/sessions",
            None,
            &json!({"handle": handle, "password": password}),
        )
        .await
    }

    /// Logs in with [`PASSWORD`]; returns the token.
    pub async fn login_token(&self, handle: &str) -> String {
        let session = self.login(handle, PASSWORD).await.expect(StatusCode::CREATED);
        session["token"]
            .as_str()
            .expect("the session has a token")
            .to_owned()
    }

    pub async fn register_and_login(&self, handle: &str) -> TestUser {
        let user = self.register(handle).await;
        let token = self.login_token(handle).await;
        TestUser {
            id: user["id"].as_str().expect("a user id").to_owned(),
            handle: user["handle"].as_str().expect("a handle").to_owned(),
            token,
        }
    }

    /// Registers several users at once (argon2 is the slow part: run it in parallel).
    pub async fn register_users<const N: usize>(&self, handles: [&str; N]) -> [TestUser; N] {
        let users = futures::future::join_all(handles.map(|h| self.register_and_login(h))).await;
        users
            .try_into()
            .unwrap_or_else(|_| unreachable!("join_all keeps the length"))
    }

    // ---- conversations ----

    pub async fn try_open(&self, user: &TestUser, peer_handle: &str) -> Reply {
        self.post(
            "/v1/conversations",
            Some(&user.token),
            &json!({"peer_handle": peer_handle}),
        )
        .await
    }

    /// Opens (or finds) the conversation; returns its id.
    pub async fn open_conversation(&self, user: &TestUser, peer: &TestUser) -> String {
        let reply = self.try_open(user, &peer.handle).await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "opening a conversation: {} {}",
            reply.status,
            reply.text
        );
        reply.json["id"]
            .as_str()
            .expect("a conversation id")
            .to_owned()
    }

    pub async fn conversation(&self, user: &TestUser, conversation: &str) -> Value {
        self.get(&format!("/v1/conversations/{conversation}"), Some(&user.token))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn list(&self, user: &TestUser, query: &str) -> Value {
        self.get(&format!("/v1/conversations{query}"), Some(&user.token))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn send_raw(
        &self,
        user: &TestUser,
        conversation: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Reply {
        self.post(
            &format!("/v1/conversations/{conversation}/messages"),
            Some(&user.token),
            &json!({"client_msg_id": client_msg_id, "body": body}),
        )
        .await
    }

    /// Sends `body` under a fresh client id; asserts 201 and returns the Message.
    pub async fn send(&self, user: &TestUser, conversation: &str, body: &str) -> Value {
        self.send_raw(user, conversation, &Uuid::new_v4().to_string(), body)
            .await
            .expect(StatusCode::CREATED)
    }

    /// Sends `count` messages one after another, bodies `"{prefix} 1"`, `"{prefix} 2"`…
    pub async fn send_many(
        &self,
        user: &TestUser,
        conversation: &str,
        prefix: &str,
        count: usize,
    ) -> Vec<Value> {
        let mut sent = Vec::with_capacity(count);
        for i in 1..=count {
            sent.push(self.send(user, conversation, &format!("{prefix} {i}")).await);
        }
        sent
    }

    /// A page of history; `query` is e.g. `"?after_seq=3&limit=2"` or `""`.
    pub async fn history(&self, user: &TestUser, conversation: &str, query: &str) -> Value {
        self.get(
            &format!("/v1/conversations/{conversation}/messages{query}"),
            Some(&user.token),
        )
        .await
        .expect(StatusCode::OK)
    }

    /// The whole history, read forwards with the largest page.
    pub async fn all_history(&self, user: &TestUser, conversation: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .history(user, conversation, &format!("?after_seq={after}&limit=200"))
                .await;
            let items = page["items"].as_array().expect("items").clone();
            if let Some(last) = items.last() {
                after = last["seq"].as_i64().expect("a seq");
            }
            all.extend(items);
            if page["has_more"] != json!(true) {
                return all;
            }
        }
    }

    pub async fn mark_read(&self, user: &TestUser, conversation: &str, seq: i64) -> Reply {
        self.post(
            &format!("/v1/conversations/{conversation}/read"),
            Some(&user.token),
            &json!({"seq": seq}),
        )
        .await
    }

    pub async fn sync(&self, user: &TestUser, since: i64) -> Value {
        self.get(&format!("/v1/sync?since={since}"), Some(&user.token))
            .await
            .expect(StatusCode::OK)
    }

    // ---- WebSocket ----

    /// Connects to `/v1/events` with `Authorization: Bearer` on the upgrade.
    pub async fn ws_connect(&self, user: &TestUser, since: Option<i64>) -> WsClient {
        self.ws_try_connect(Some(&user.token), since)
            .await
            .expect("the WebSocket upgrade succeeds")
    }

    /// Connects without a header and authenticates with the first frame.
    pub async fn ws_connect_first_frame(&self, token: &str, since: Option<i64>) -> WsClient {
        let mut ws = self
            .ws_try_connect(None, since)
            .await
            .expect("the WebSocket upgrade succeeds without a header");
        ws.send(&json!({"type": "auth", "token": token})).await;
        ws
    }

    /// Connects with an optional bearer token; the error carries a refused upgrade.
    pub async fn ws_try_connect(
        &self,
        token: Option<&str>,
        since: Option<i64>,
    ) -> Result<WsClient, tungstenite::Error> {
        let path = match since {
            Some(since) => format!("/v1/events?since={since}"),
            None => "/v1/events".to_owned(),
        };
        self.ws_try_connect_path(token, &path).await
    }

    pub async fn ws_try_connect_path(
        &self,
        token: Option<&str>,
        path: &str,
    ) -> Result<WsClient, tungstenite::Error> {
        let mut request = self
            .ws_url(path)
            .into_client_request()
            .expect("a valid WebSocket URL");
        if let Some(token) = token {
            request.headers_mut().insert(
                AUTHORIZATION,
                format!("Bearer {token}").parse().expect("a header value"),
            );
        }
        let (stream, _) = tokio::time::timeout(WS_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the WebSocket handshake finishes within the timeout")?;
        Ok(WsClient { stream })
    }
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

/// Polls `probe` until it returns `Some`, at most [`EVENTUALLY`]; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {EVENTUALLY:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One client WebSocket. Every read is bounded by [`WS_TIMEOUT`].
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn send(&mut self, frame: &Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Frame::text(text))
            .await
            .expect("the frame is sent");
    }

    /// The next text frame as JSON; panics on timeout, close or a non-JSON frame.
    #[track_caller]
    pub fn next(&mut self) -> impl Future<Output = Value> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            loop {
                let frame = tokio::time::timeout(WS_TIMEOUT, self.stream.next())
                    .await
                    .unwrap_or_else(|_| panic!("no frame within {WS_TIMEOUT:?} ({caller})"));
                match frame {
                    Some(Ok(Frame::Text(text))) => {
                        return serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                            panic!("frame {text:?} is not JSON: {e} ({caller})")
                        });
                    }
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
                    Some(Ok(other)) => panic!("expected a text frame, got {other:?} ({caller})"),
                    Some(Err(e)) => panic!("socket error: {e} ({caller})"),
                    None => panic!("socket closed while a frame was expected ({caller})"),
                }
            }
        }
    }

    /// The next frame, which must have this `type`.
    #[track_caller]
    pub fn expect_type<'a>(&'a mut self, kind: &'a str) -> impl Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let frame = self.next().await;
            assert_eq!(frame["type"], kind, "unexpected frame {frame} ({caller})");
            frame
        }
    }

    /// Frames up to `ready`; returns the frames before it and the ready cursor.
    pub async fn until_ready(&mut self) -> (Vec<Value>, i64) {
        let mut before = Vec::new();
        loop {
            let frame = self.next().await;
            if frame["type"] == "ready" {
                let cursor = frame["cursor"].as_i64().expect("ready carries a cursor");
                return (before, cursor);
            }
            before.push(frame);
        }
    }

    /// Sends a ping and asserts the very next frame is `pong`: nothing else was queued for
    /// this socket. Waits `settle` first so stray deliveries have time to arrive.
    pub async fn assert_nothing_pending(&mut self, settle: Duration) {
        tokio::time::sleep(settle).await;
        self.send(&json!({"type": "ping"})).await;
        let frame = self.next().await;
        assert_eq!(frame, json!({"type": "pong"}), "a frame arrived that should not have");
    }

    /// Asserts the server closes the socket (close frame, end of stream or reset) within the
    /// timeout, without sending another text frame first.
    pub async fn assert_closed(&mut self) {
        loop {
            let frame = tokio::time::timeout(WS_TIMEOUT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("the socket is still open after {WS_TIMEOUT:?}"));
            match frame {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return,
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
                Some(Ok(other)) => panic!("expected the socket to close, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The cursors of feed frames, which must strictly increase.
#[track_caller]
pub fn assert_cursors_increase(frames: &[Value]) {
    let cursors: Vec<i64> = frames
        .iter()
        .map(|f| f["cursor"].as_i64().unwrap_or_else(|| panic!("no cursor in {f}")))
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors do not strictly increase: {cursors:?}"
    );
}

/// The seqs of `message.created` frames or of Messages, in order.
pub fn seqs(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|item| {
            let message = if item["type"] == "message.created" {
                &item["message"]
            } else {
                item
            };
            message["seq"].as_i64().expect("a seq")
        })
        .collect()
}

/// A sender's id string, for comparisons with JSON.
pub fn id_of(user: &TestUser) -> Value {
    json!(user.id)
}
