//! What the OpenAPI service of [`crate::api`] and the WebSocket of [`crate::ws`] share, so
//! neither imports the other (the router of [`crate::routes`] sits above both):
//!
//! - [`errors`]: the one mapping from domain errors to statuses, error codes and the
//!   `{"error": {"code", "message"}}` body.
//! - [`auth`]: reading a bearer token and finding the caller behind it.
//! - The middleware every request passes, outermost first ([`wrap`]): [`observe`] (metrics,
//!   span), [`json_errors`] (every error answer is JSON), [`cors`] (when
//!   `server.cors_origins` lists any), [`body_limit`] (413 before reading), a panic catcher.

pub mod auth;
pub mod body_limit;
pub mod cors;
pub mod errors;
pub mod json_errors;
pub mod observe;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoResponse, Response};

use self::cors::{AllowedOrigins, CorsForAllowed};
use self::errors::ApiError;
use self::observe::RouteTemplates;
use crate::config::ServerSettings;

/// `routes` wrapped in the middleware every request passes. CORS sits inside `json_errors`,
/// so its refusals are JSON too, and outside the body limit, so a 413 still carries the
/// headers a browser needs to read it.
///
/// # Errors
/// A `server.cors_origins` entry that is not an origin.
pub fn wrap(
    routes: impl Endpoint + 'static,
    server: &ServerSettings,
    templates: RouteTemplates,
) -> anyhow::Result<BoxEndpoint<'static>> {
    let templates = Arc::new(templates);
    let max_body_bytes = server.max_body_bytes;
    let inner = routes
        .with(CatchPanic::new().with_handler(on_panic))
        .around(move |ep, req| body_limit::limit_body(ep, req, max_body_bytes));
    let inner = match AllowedOrigins::from_config(&server.cors_origins)? {
        Some(allowed) => inner.with(CorsForAllowed::new(allowed)).boxed(),
        None => inner.map_to_response().boxed(),
    };
    Ok(inner
        .around(json_errors::json_errors)
        .around(move |ep, req| observe::observe(ep, req, templates.clone()))
        .boxed())
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
