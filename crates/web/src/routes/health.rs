//! Liveness and readiness probes for load balancers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// Probe answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The store can serve: its database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.store().ping().await {
        Ok(Json(Health { status: "ok" }))
    } else {
        Err(ApiError::unavailable("database_unavailable", "the database does not answer"))
    }
}
