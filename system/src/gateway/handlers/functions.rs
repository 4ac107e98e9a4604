//! Registering functions: `POST /register_function`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::check_payload;
use crate::api::{ErrorBody, RegisterRequest, RegisterResponse};
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::gateway::json::JsonBody;
use crate::task::FunctionId;

/// Checks and stores a serialized function under a new id.
#[utoipa::path(
    post,
    path = "/register_function",
    tag = "functions",
    summary = "Register a function",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered.", body = RegisterResponse),
        (status = 400, description = "The body is not the expected JSON, `name` is empty, or `payload` is not base64 of a pickle stream.", body = ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = ErrorBody),
    ),
)]
pub async fn register_function(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    if req.name.trim().is_empty() {
        return Err(ApiError::BadBody("name must not be empty".into()));
    }
    let payload = check_payload("payload", req.payload).await?;
    let function_id = FunctionId::new_random();
    state
        .store
        .register_function(function_id, &req.name, &payload)
        .await?;
    tracing::debug!(%function_id, name = %req.name, "function registered");
    Ok((StatusCode::CREATED, Json(RegisterResponse { function_id })))
}
