//! The WebSocket client: connect with a header or a first frame; every read is bounded.

use futures::{SinkExt, StreamExt};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

use crate::{TestApp, TestUser, WS_TIMEOUT};

impl TestApp {
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
        let (stream, _) =
            tokio::time::timeout(WS_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .expect("the WebSocket handshake finishes within the timeout")?;
        Ok(WsClient { stream })
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

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.stream
            .send(Frame::binary(bytes.to_vec()))
            .await
            .expect("the frame is sent");
    }

    /// The next text frame as JSON; panics on timeout, close or a non-JSON frame.
    #[track_caller]
    #[allow(
        clippy::should_implement_trait,
        reason = "async and panicking on a timeout, so not an Iterator; `ws.next()` reads well in tests"
    )]
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
        assert_eq!(
            frame,
            json!({"type": "pong"}),
            "a frame arrived that should not have"
        );
    }

    /// Asserts the server closes the socket (close frame, end of stream or reset) within the
    /// timeout, without sending another text frame first.
    pub async fn assert_closed(&mut self) {
        self.assert_closed_within(WS_TIMEOUT).await;
    }

    /// As [`Self::assert_closed`], waiting up to `limit`. An error frame before the close is
    /// allowed (the server may say why), any other text frame is not.
    pub async fn assert_closed_within(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("the socket is still open after {limit:?}"));
            match frame {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return,
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
                Some(Ok(Frame::Text(text)))
                    if serde_json::from_str::<Value>(text.as_str())
                        .is_ok_and(|f| f["type"] == "error") => {}
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
        .map(|f| {
            f["cursor"]
                .as_i64()
                .unwrap_or_else(|| panic!("no cursor in {f}"))
        })
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors do not strictly increase: {cursors:?}"
    );
}
