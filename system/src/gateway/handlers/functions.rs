//! Registering functions (`POST /register_function`) and deleting them
//! (`DELETE /functions/{function_id}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{check_payload, parse_id};
use crate::api::{DeleteFunctionResponse, ErrorBody, RegisterRequest, RegisterResponse};
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

/// Deletes a function: executing it answers 404 from now on, and its tasks that have not
/// started yet fail with a `WorkerFailure` saying so when a dispatcher takes them. Running
/// tasks finish, and finished ones keep their results.
#[utoipa::path(
    delete,
    path = "/functions/{function_id}",
    tag = "functions",
    summary = "Delete a function",
    params(("function_id" = uuid::Uuid, Path, description = "The id `POST /register_function` answered.")),
    responses(
        (status = 200, description = "Deleted.", body = DeleteFunctionResponse),
        (status = 400, description = "`function_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No function has this id.", body = ErrorBody),
    ),
)]
pub async fn delete_function(
    State(state): State<AppState>,
    Path(function_id): Path<String>,
) -> Result<Json<DeleteFunctionResponse>, ApiError> {
    let function_id: FunctionId = parse_id("function id", &function_id)?;
    if !state.store.delete_function(function_id).await? {
        return Err(ApiError::UnknownFunction(function_id));
    }
    tracing::info!(%function_id, "function deleted");
    Ok(Json(DeleteFunctionResponse {
        function_id,
        deleted: true,
    }))
}
