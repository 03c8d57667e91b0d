//! The recipients' WebSockets: each listens on `/v1/events` as its user and timestamps every
//! `message.created` from someone else the moment the frame is read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Deserialize;
use tokio::task::JoinHandle;
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
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", user.token))?,
    );
    let (mut stream, _) = tokio::time::timeout(READY_TIMEOUT, async {
        let (mut stream, response) =
            tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), false)
                .await?;
        while let Some(frame) = stream.next().await {
            if let Frame::Text(text) = frame?
                && text.contains("\"ready\"")
            {
                return anyhow::Ok((stream, response));
            }
        }
        bail!("the socket closed before ready")
    })
    .await
    .context("no `ready` frame in time")?
    .with_context(|| format!("WebSocket for {}", user.handle))?;
    let me = user.id.clone();
    Ok(tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => break,
                frame = stream.next() => frame,
            };
            match frame {
                Some(Ok(Frame::Text(text))) => {
                    let at = Instant::now();
                    if let Some(id) = delivered_id(&text, &me) {
                        recorder.delivery(&id, at);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        let _ = stream.close(None).await;
    }))
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
