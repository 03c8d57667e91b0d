//! Request metrics and a tracing span per request.
//!
//! Metrics are labelled by route *template* (`/v1/conversations/{id}/messages`), never by the
//! raw path, so ids in URLs cannot blow up the number of series.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::telemetry::HTTP_DURATION;

/// The label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Operation id → OpenAPI path template, read from the API's own metadata.
#[derive(Debug, Default)]
pub struct RouteTemplates(HashMap<&'static str, String>);

impl RouteTemplates {
    pub fn from_meta(apis: &[poem_openapi::registry::MetaApi]) -> Self {
        let mut templates = HashMap::new();
        for path in apis.iter().flat_map(|api| &api.paths) {
            for operation in &path.operations {
                if let Some(id) = operation.operation_id {
                    templates.insert(id, path.path.clone());
                }
            }
        }
        Self(templates)
    }

    /// The template a response was produced by: its OpenAPI operation's path, else the poem
    /// route that matched (plain routes have no parameters), else [`UNMATCHED`].
    fn label(&self, resp: &Response) -> String {
        if let Some(template) = resp.data::<OperationId>().and_then(|id| self.0.get(id.0)) {
            return template.clone();
        }
        match resp.data::<PathPattern>() {
            Some(pattern) if resp.status() != StatusCode::NOT_FOUND => pattern.0.to_string(),
            _ => UNMATCHED.to_owned(),
        }
    }
}

/// Standard methods by name; any extension method is `OTHER`, for the same reason as paths.
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Calls `ep` inside a span, then records the request's count and duration.
pub async fn observe<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    templates: Arc<RouteTemplates>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = method_label(req.method()).to_owned();
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    let resp = async {
        match ep.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();
    let status = resp.status();
    let path = templates.label(&resp);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ?elapsed, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), ?elapsed, "request answered");
        }
    });
    metrics::counter!(
        "duet_http_requests_total",
        "method" => method.clone(),
        "path" => path.clone(),
        "status" => status.as_u16().to_string(),
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "path" => path)
        .record(elapsed.as_secs_f64());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::Method;

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(method_label(&odd), "OTHER");
    }

    #[test]
    fn responses_are_labelled_by_template_never_by_raw_path() {
        let templates = RouteTemplates(HashMap::from([(
            "send_message",
            "/v1/conversations/{id}/messages".to_owned(),
        )]));

        let mut by_operation = Response::default();
        by_operation.set_data(OperationId("send_message"));
        by_operation.set_data(PathPattern("/v1/conversations/:param0/messages".into()));
        assert_eq!(
            templates.label(&by_operation),
            "/v1/conversations/{id}/messages"
        );

        let mut plain_route = Response::default();
        plain_route.set_data(PathPattern("/metrics".into()));
        assert_eq!(templates.label(&plain_route), "/metrics");

        let mut unknown = Response::builder().status(StatusCode::NOT_FOUND).finish();
        unknown.set_data(PathPattern("/".into()));
        assert_eq!(templates.label(&unknown), UNMATCHED);
        assert_eq!(templates.label(&Response::default()), UNMATCHED);
    }
}
