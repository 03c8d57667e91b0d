//! Liveness, readiness and the Prometheus page.

use std::sync::Arc;

use poem::handler;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use crate::state::AppState;

pub struct HealthApi {
    pub state: Arc<AppState>,
}

/// `{"status": "ok"}` or `{"status": "unavailable"}`, plus the optional backends (cache,
/// broker) that are down right now, if any: Duet still serves without them, slower.
#[derive(Object)]
#[oai(rename = "Health", example)]
pub struct HealthBody {
    pub status: HealthStatus,
    /// E.g. `["nats"]` while NATS is unreachable: events wait in the outbox meanwhile.
    /// Left out when nothing is degraded (and always by `/health/live`).
    #[oai(default, skip_serializing_if_is_empty)]
    pub degraded: Vec<String>,
}

/// Whether the process can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

impl HealthBody {
    fn new(status: HealthStatus) -> Json<Self> {
        Json(Self {
            status,
            degraded: Vec::new(),
        })
    }
}

#[derive(ApiResponse)]
pub enum LiveResponse {
    /// The process is up.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Storage answers: the process can serve requests.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// Storage does not answer.
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>),
}

#[OpenApi]
impl HealthApi {
    /// Whether the process is up.
    #[oai(
        path = "/health/live",
        method = "get",
        tag = "ApiTags::Health",
        operation_id = "live"
    )]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Ok(HealthBody::new(HealthStatus::Ok))
    }

    /// Whether the process can serve requests: storage answers a trivial query. Optional
    /// backends that are down are listed under `degraded` without failing the check.
    #[oai(
        path = "/health/ready",
        method = "get",
        tag = "ApiTags::Health",
        operation_id = "ready"
    )]
    async fn ready(&self) -> ReadyResponse {
        match self.state.storage.ping().await {
            Ok(()) => {
                let mut body = HealthBody::new(HealthStatus::Ok);
                body.degraded = self
                    .state
                    .accelerators
                    .iter()
                    .filter(|accelerator| !(accelerator.is_up)())
                    .map(|accelerator| accelerator.name.to_owned())
                    .collect();
                ReadyResponse::Ok(body)
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "readiness check failed");
                ReadyResponse::Unavailable(HealthBody::new(HealthStatus::Unavailable))
            }
        }
    }
}

/// `GET /metrics`: every metric of this process in the Prometheus text format.
#[handler]
pub fn metrics(state: Data<&Arc<AppState>>) -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
