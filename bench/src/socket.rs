//! The recipients' WebSockets: each listens on `/v1/events` as its user and timestamps every
//! `message.created` from someone else the moment the frame is read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::client::BenchUser;
use crate::recorder::Recorder;

/// How long a socket gets to upgrade and say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    message: Option<EventMessage>,
}

#[derive(Deserialize)]
struct EventMessage {
    sender_id: String,
    client_msg_id: String,
}

/// `http://host:port/…` → `ws://host:port/v1/events`.
///
/// # Errors
/// A scheme other than http or https.
pub fn events_url(base: &reqwest::Url) -> anyhow::Result<reqwest::Url> {
    let mut url = base.join("/v1/events")?;
    let scheme = match base.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => bail!("cannot open a WebSocket for a {other}:// URL"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot use {scheme}:// for {base}"))?;
    Ok(url)
}

/// The client id of a `message.created` frame someone other than `me` sent, if it is one.
pub fn delivered_id(frame: &str, me: &str) -> Option<String> {
    let event: Event = serde_json::from_str(frame).ok()?;
    let message = event.message.filter(|_| event.kind == "message.created")?;
    (message.sender_id != me).then_some(message.client_msg_id)
}

/// Connects as `user`, waits for `ready`, then listens until `stop`, reporting deliveries.
///
/// tungstenite zeroes `read_buffer_size` bytes of its buffer before every read of the
/// socket (128 KiB by default): with a read per event or two, that memset was 13 % of the
/// bench's CPU, taken from the server it measures on the same machine. Events are a few
/// hundred bytes; a longer frame still arrives whole, over several reads.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// # Errors
/// A refused upgrade, or no `ready` within [`READY_TIMEOUT`].
pub async fn listen(
    url: &reqwest::Url,
    user: &BenchUser,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let request = events_request(url, user)?;
    let stream = tokio::time::timeout(READY_TIMEOUT, async {
        let (mut stream, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), false)
                .await?;
        until_ready(&mut stream).await?;
        anyhow::Ok(stream)
    })
    .await
    .context("no `ready` frame in time")?
    .with_context(|| format!("WebSocket for {}", user.handle))?;
    let me = user.id.clone();
    Ok(tokio::spawn(receive(stream, me, stop, move |id, at| {
        recorder.delivery(&id, at);
    })))
}

/// A `/v1/events` upgrade request authenticated as `user`.
///
/// # Errors
/// A URL or token that cannot make a request.
pub fn events_request(
    url: &reqwest::Url,
    user: &BenchUser,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", user.token))?,
    );
    Ok(request)
}

/// Reads frames until the server's `ready`.
///
/// # Errors
/// The socket failed or closed first.
pub async fn until_ready<S>(stream: &mut WebSocketStream<S>) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = stream.next().await {
        if let Frame::Text(text) = frame?
            && text.contains("\"ready\"")
        {
            return Ok(());
        }
    }
    bail!("the socket closed before ready")
}

/// Reads `stream` until `stop` (or until it fails), calling `delivered` with the client id and
/// arrival time of every message someone other than `me` sent; then closes it.
pub async fn receive<S>(
    mut stream: WebSocketStream<S>,
    me: String,
    stop: CancellationToken,
    mut delivered: impl FnMut(String, Instant),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => break,
            frame = stream.next() => frame,
        };
        match frame {
            Some(Ok(Frame::Text(text))) => {
                let at = Instant::now();
                if let Some(id) = delivered_id(&text, &me) {
                    delivered(id, at);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    let _ = stream.close(None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_from_someone_else_are_deliveries() {
        let frame = r#"{"type":"message.created","cursor":7,"message":{"id":"m","sender_id":"alice","client_msg_id":"c1","seq":1},"created_at":"x"}"#;
        assert_eq!(delivered_id(frame, "bob"), Some("c1".into()));
        assert_eq!(delivered_id(frame, "alice"), None);
        assert_eq!(delivered_id(r#"{"type":"ready","cursor":3}"#, "bob"), None);
        assert_eq!(delivered_id("not json", "bob"), None);
    }

    #[test]
    fn the_events_url_swaps_the_scheme() {
        let url = |s: &str| reqwest::Url::parse(s).expect("a URL");
        assert_eq!(
            events_url(&url("http://127.0.0.1:8080"))
                .expect("ok")
                .as_str(),
            "ws://127.0.0.1:8080/v1/events"
        );
        assert_eq!(
            events_url(&url("https://duet.example/api/"))
                .expect("ok")
                .as_str(),
            "wss://duet.example/v1/events"
        );
    }
}
