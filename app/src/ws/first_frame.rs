//! First-frame authentication, for browsers that cannot set headers on a WebSocket.

use std::time::Duration;

use duet_domain::accounts::{Caller, SessionToken};
use futures::StreamExt;
use futures::stream::SplitStream;
use poem::web::websocket::{CloseCode, Message, WebSocketStream};

use super::frames::{ClientFrame, ServerFrame};
use super::outbound::Outbound;
use crate::http::auth::authenticate;
use crate::http::errors::ApiError;
use crate::state::AppState;

/// How long a connection without an `Authorization` header has to send its auth frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for `{"type":"auth","token":…}`. Anything else, or nothing within
/// [`AUTH_TIMEOUT`], gets an `unauthorized` error frame and the socket closes.
pub async fn first_frame_auth(
    state: &AppState,
    inbound: &mut SplitStream<WebSocketStream>,
    out: &mut Outbound,
) -> Option<(Caller, SessionToken)> {
    let deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(deadline);
    let text = loop {
        tokio::select! {
            () = &mut deadline => {
                out.reject(ServerFrame::error("unauthorized", "no auth frame within 10 seconds"))
                    .await;
                return None;
            }
            () = out.shutdown.cancelled() => {
                out.close(CloseCode::Away, "server shutting down").await;
                return None;
            }
            frame = inbound.next() => match frame {
                Some(Ok(Message::Text(text))) => break text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(_))) => break String::new(),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            },
        }
    };
    let token = match serde_json::from_str::<ClientFrame>(&text) {
        Ok(ClientFrame::Auth { token }) => SessionToken::new(token),
        _ => {
            out.reject(ServerFrame::error(
                "unauthorized",
                r#"the first frame must be {"type":"auth","token":"..."}"#,
            ))
            .await;
            return None;
        }
    };
    match authenticate(state, &token).await {
        Ok(Some(caller)) => Some((caller, token)),
        Ok(None) => {
            out.reject(ServerFrame::from_api_error(&ApiError::unauthorized()))
                .await;
            None
        }
        Err(err) => {
            out.reject(ServerFrame::from_api_error(&err)).await;
            None
        }
    }
}
