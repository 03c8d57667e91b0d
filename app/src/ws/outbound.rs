//! The sending half of a connection.

use std::time::Duration;

use futures::SinkExt;
use futures::stream::SplitSink;
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::frames::ServerFrame;

/// A client that does not take a frame within this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection is over (closed by either side, failed, or shutting down).
#[derive(Debug)]
pub struct Closed;

/// The sending half, which gives up on shutdown or on a client that stopped reading.
pub struct Outbound {
    pub sink: SplitSink<WebSocketStream, Message>,
    pub shutdown: CancellationToken,
}

impl Outbound {
    pub async fn send(&mut self, text: String) -> Result<(), Closed> {
        tokio::select! {
            sent = tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Text(text))) => {
                match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) | Err(_) => Err(Closed),
                }
            }
            () = self.shutdown.cancelled() => Err(Closed),
        }
    }

    /// Sends an error frame, then closes with a policy-violation code.
    pub async fn reject(&mut self, frame: ServerFrame) {
        if self.send(frame.to_text()).await.is_ok() {
            self.close(CloseCode::Policy, "closing").await;
        }
    }

    /// Flushes and closes the sink (answering a client's close frame). Best effort.
    pub async fn finish(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
    }

    /// Best effort: the peer may already be gone.
    pub async fn close(&mut self, code: CloseCode, reason: &str) {
        let close = Message::Close(Some((code, reason.to_owned())));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.send(close)).await;
    }
}
