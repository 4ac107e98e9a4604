//! The gateway itself: `GET /health`, and the answers to unknown routes and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, Uri};

use crate::api::Health;
use crate::gateway::AppState;
use crate::gateway::error::ApiError;

/// 200 when the gateway can reach Redis, 503 otherwise.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "Health check",
    responses(
        (status = 200, description = "The gateway is up and reaches Redis.", body = Health),
    ),
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health::ok()))
}

/// 404 with the error body for a path no route serves.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// 405 with the error body for a route that does not take this method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
