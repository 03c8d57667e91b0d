//! Every route of the server: the OpenAPI service of [`crate::api`] (with its document at
//! `/openapi.json` and interactive docs at `/docs`), the WebSocket of [`crate::ws`] and
//! `/metrics`, wrapped in the middleware of [`crate::http`].

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Route, get};
use poem_openapi::OpenApi;

use crate::http::observe::RouteTemplates;
use crate::state::AppState;
use crate::{api, http, ws};

/// The server's whole HTTP surface.
///
/// # Errors
/// Settings the middleware refuses (a `server.cors_origins` entry that is not an origin).
pub fn endpoint(state: Arc<AppState>) -> anyhow::Result<BoxEndpoint<'static>> {
    let service = api::service(&state);
    let templates = RouteTemplates::from_meta(&<api::Apis as OpenApi>::meta());
    let server = state.server.clone();
    // The spec and UI endpoints borrow the service, so they are built before `nest` takes it.
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let routes = Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/metrics", get(api::health::metrics))
        .at("/v1/events", get(ws::events))
        .nest("/", service)
        .data(state);
    http::wrap(routes, &server, templates)
}
