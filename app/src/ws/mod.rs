//! `GET /v1/events`: the WebSocket event stream.
//!
//! Everything that can be refused is refused before upgrading, as a JSON HTTP error: a bad
//! `since` (400), an invalid `Authorization` header (401), a request that is not an upgrade
//! (400). Without the header, the first frame must authenticate (`first_frame`); then
//! `session` replays and streams, sending through `outbound`.

mod first_frame;
pub mod frames;
mod outbound;
mod reorder;
mod session;

use std::sync::Arc;

use duet_domain::accounts::SessionToken;
use poem::web::Data;
use poem::web::websocket::{WebSocket, WebSocketConfig};
use poem::{FromRequest, IntoResponse, Request, Response, handler};
use serde::Deserialize;

use crate::http::auth::{HeaderToken, authenticate, header_token};
use crate::http::errors::ApiError;
use crate::state::AppState;

/// Bytes a WebSocket read asks for at once (see where the socket is configured).
const WS_READ_BUFFER: usize = 4 * 1024;

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<String>,
    /// `true` to also receive peers' presence changes.
    presence: Option<String>,
}

/// Checks the request, then upgrades; the session runs on its own task, tracked so shutdown
/// can wait for it.
#[handler]
pub async fn events(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let state = Arc::clone(state.0);
    match upgrade(req, state).await {
        Ok(resp) | Err(resp) => resp,
    }
}

async fn upgrade(req: &Request, state: Arc<AppState>) -> Result<Response, Response> {
    let query = req
        .params::<EventsQuery>()
        .map_err(|err| ApiError::bad_request(format!("invalid query: {err}")).into_response())?;
    let since = parse_since(query.since.as_deref())
        .map_err(|msg| ApiError::bad_request(msg).into_response())?;
    let options = session::StreamOptions {
        since,
        presence: parse_flag(query.presence.as_deref())
            .map_err(|msg| ApiError::bad_request(msg).into_response())?,
    };
    let caller = match header_token(req.headers()) {
        HeaderToken::Absent => None,
        HeaderToken::Malformed => return Err(ApiError::unauthorized().into_response()),
        HeaderToken::Present(token) => {
            let token = SessionToken::new(token);
            match authenticate(&state, &token).await {
                Ok(Some(caller)) => Some((caller, token)),
                Ok(None) => return Err(ApiError::unauthorized().into_response()),
                Err(err) => return Err(err.into_response()),
            }
        }
    };
    let ws = WebSocket::from_request_without_body(req)
        .await
        .map_err(|_| {
            ApiError::bad_request("this route only accepts WebSocket upgrades").into_response()
        })?;
    let max = state.server.ws_max_message_bytes;
    // Client frames are small (typing, acks): a small read buffer, because tungstenite
    // zeroes the buffer's free space before every read, and a socket is read again after
    // every event it forwards (the default 128 KiB made that memset 6 % of the server's CPU
    // under `duet-bench run`, and cost 128 KiB per connection). Bigger frames take more reads.
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let sessions = state.sessions.clone();
    Ok(ws
        .config(config)
        .on_upgrade(move |socket| {
            sessions.track_future(session::run(socket, state, caller, options))
        })
        .into_response())
}

/// `since` is a non-negative cursor, or absent (then nothing is replayed).
fn parse_since(raw: Option<&str>) -> Result<Option<i64>, String> {
    match raw {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|cursor| *cursor >= 0)
            .map(Some)
            .ok_or_else(|| "since: must be a non-negative integer cursor".to_owned()),
    }
}

/// `presence` is `true` or `false` (absent: false).
fn parse_flag(raw: Option<&str>) -> Result<bool, String> {
    match raw.map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err("presence: must be true or false".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_an_optional_boolean() {
        assert_eq!(parse_flag(None), Ok(false));
        assert_eq!(parse_flag(Some("true")), Ok(true));
        assert_eq!(parse_flag(Some("false")), Ok(false));
        assert!(parse_flag(Some("yes")).is_err());
    }

    #[test]
    fn since_is_an_optional_non_negative_integer() {
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some("0")), Ok(Some(0)));
        assert_eq!(parse_since(Some("17")), Ok(Some(17)));
        assert!(parse_since(Some("-1")).is_err());
        assert!(parse_since(Some("abc")).is_err());
        assert!(parse_since(Some("")).is_err());
    }
}
