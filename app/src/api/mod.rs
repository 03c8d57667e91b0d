//! The HTTP API of `docs/API.md`.
//!
//! - One file per group of operations ([`accounts`], [`sessions`], [`conversations`],
//!   [`messages`], [`sync`], [`health`]), each operation with its own `ApiResponse` enum.
//! - [`errors`]: the one mapping from domain errors to statuses and error codes.
//! - [`auth`]: the bearer security scheme and the login/registration rate limit.
//! - Middleware, outermost first: [`observe`] (metrics, span), [`json_errors`] (every error
//!   answer is JSON), [`body_limit`] (413 before reading), a panic catcher.
//! - `GET /v1/events` is the WebSocket of [`crate::ws`].

pub mod accounts;
pub mod auth;
pub mod body_limit;
pub mod conversations;
pub mod errors;
pub mod health;
pub mod json_errors;
pub mod messages;
pub mod models;
pub mod observe;
pub mod sessions;
pub mod sync;
pub mod text;
pub mod timestamp;

use std::sync::Arc;

use poem::middleware::CatchPanic;
use poem::{EndpointExt, IntoEndpoint, IntoResponse, Response, Route, get};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use self::errors::ApiError;
use self::observe::RouteTemplates;
use crate::state::AppState;

/// How operations are grouped in the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Registration and users.
    Accounts,
    /// Logging in and out.
    Sessions,
    /// Opening and listing conversations.
    Conversations,
    /// Sending, history and read receipts.
    Messages,
    /// Catching up on changes since a cursor.
    Sync,
    /// Liveness and readiness.
    Health,
}

type Apis = (
    health::HealthApi,
    accounts::AccountsApi,
    sessions::SessionsApi,
    conversations::ConversationsApi,
    messages::MessagesApi,
    sync::SyncApi,
);

fn apis(state: &Arc<AppState>) -> Apis {
    (
        health::HealthApi {
            state: state.clone(),
        },
        accounts::AccountsApi {
            state: state.clone(),
        },
        sessions::SessionsApi {
            state: state.clone(),
        },
        conversations::ConversationsApi {
            state: state.clone(),
        },
        messages::MessagesApi {
            state: state.clone(),
        },
        sync::SyncApi {
            state: state.clone(),
        },
    )
}

/// Every route of the server, wrapped in its middleware.
pub fn endpoint(state: Arc<AppState>) -> poem::endpoint::BoxEndpoint<'static> {
    let service = OpenApiService::new(apis(&state), "Duet", env!("CARGO_PKG_VERSION"))
        .description("A one-to-one messaging server. See docs/API.md for the full contract.");
    let templates = Arc::new(RouteTemplates::from_meta(&<Apis as OpenApi>::meta()));
    let max_body = state.server.max_body_bytes;
    // The spec and UI endpoints borrow the service, so they are built before `nest` takes it.
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/metrics", get(health::metrics))
        .at("/v1/events", get(crate::ws::events))
        .nest("/", service)
        .data(state)
        .with(CatchPanic::new().with_handler(on_panic))
        .around(move |ep, req| body_limit::limit_body(ep, req, max_body))
        .around(json_errors::json_errors)
        .around(move |ep, req| observe::observe(ep, req, templates.clone()))
        .into_endpoint()
        .boxed()
}

/// A panic in a handler is a bug: log what it said, answer an opaque 500.
fn on_panic(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(&anyhow::anyhow!("a request handler panicked: {what}")).into_response()
}
