//! The endpoint handlers of the public contract.

use axum::Json;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::json::JsonBody;
use super::waiters::MAX_WAIT;
use crate::payload::{PayloadError, decode_payload};
use crate::task::{FunctionId, TaskId, TaskStatus};

/// Payloads up to this size are checked inline; bigger ones on the blocking pool, so a 10 MB
/// argument does not stall other requests on this async thread.
const INLINE_CHECK_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    name: String,
    payload: String,
}

#[derive(Serialize)]
pub struct RegisterResponse {
    function_id: FunctionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    function_id: String,
    payload: String,
}

#[derive(Serialize)]
pub struct ExecuteResponse {
    task_id: TaskId,
}

/// Most tasks one batch may submit.
pub const MAX_BATCH: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    function_id: String,
    /// One `base64(dill.dumps(((args...), {kwargs})))` per task.
    payloads: Vec<String>,
}

#[derive(Serialize)]
pub struct BatchResponse {
    /// One id per payload, in order.
    task_ids: Vec<TaskId>,
}

#[derive(Serialize)]
pub struct StatusResponse {
    task_id: TaskId,
    status: TaskStatus,
}

#[derive(Serialize)]
pub struct ResultResponse {
    task_id: TaskId,
    status: TaskStatus,
    /// `base64(dill.dumps(value))` once final; `null` before.
    result: Option<String>,
}

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

pub async fn execute_function(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<(StatusCode, Json<ExecuteResponse>), ApiError> {
    let function_id: FunctionId = parse_id("function_id", &req.function_id)?;
    let params = check_payload("payload", req.payload).await?;
    let task_id = TaskId::new_random();
    if !state
        .store
        .submit_task(task_id, function_id, &params)
        .await?
    {
        return Err(ApiError::UnknownFunction(function_id));
    }
    Ok((StatusCode::CREATED, Json(ExecuteResponse { task_id })))
}

/// Submits many executions of one function in one request (and one Redis round trip).
pub async fn execute_batch(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let function_id: FunctionId = parse_id("function_id", &req.function_id)?;
    if req.payloads.is_empty() || req.payloads.len() > MAX_BATCH {
        return Err(ApiError::BadBody(format!(
            "payloads must hold 1 to {MAX_BATCH} items, got {}",
            req.payloads.len()
        )));
    }
    let mut tasks = Vec::with_capacity(req.payloads.len());
    for (i, payload) in req.payloads.into_iter().enumerate() {
        let checked = check_payload("payload", payload)
            .await
            .map_err(|e| ApiError::BadBody(format!("payloads[{i}]: {e}")))?;
        tasks.push((TaskId::new_random(), checked));
    }
    if !state.store.submit_tasks(function_id, &tasks).await? {
        return Err(ApiError::UnknownFunction(function_id));
    }
    let task_ids = tasks.into_iter().map(|(id, _)| id).collect();
    Ok((StatusCode::CREATED, Json(BatchResponse { task_ids })))
}

pub async fn status(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    let task_id: TaskId = parse_id("task id", &task_id)?;
    let status = state
        .store
        .task_status(task_id)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    Ok(Json(StatusResponse { task_id, status }))
}

#[derive(Deserialize)]
pub struct ResultQuery {
    /// Seconds to wait for the task to become final before answering (long polling).
    wait: Option<String>,
}

/// The contract's result endpoint; with `?wait=SECONDS` (at most 60) it answers as soon as
/// the task is final, or with its current state when the wait runs out.
pub async fn result(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
    Query(query): Query<ResultQuery>,
) -> Result<Json<ResultResponse>, ApiError> {
    let task_id: TaskId = parse_id("task id", &task_id)?;
    let wait = match query.wait.as_deref() {
        None => Duration::ZERO,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|d| d.min(MAX_WAIT))
            .ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "wait must be a number of seconds (at most 60), got {text:?}"
                ))
            })?,
    };
    let waiting = (!wait.is_zero()).then(|| state.waiters.register(task_id));
    let notified = waiting.as_ref().map(|w| w.notify.notified());
    tokio::pin!(notified);
    if let Some(n) = notified.as_mut().as_pin_mut() {
        n.enable();
    }
    let mut task = state
        .store
        .task_result(task_id)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    if let Some(n) = notified.as_pin_mut()
        && !task.status.is_final()
    {
        let _ = tokio::time::timeout(wait, n).await;
        if let Some(latest) = state.store.task_result(task_id).await? {
            task = latest;
        }
    }
    Ok(Json(ResultResponse {
        task_id,
        status: task.status,
        result: task.result,
    }))
}

/// A task's timeline (timestamps in µs since the epoch), beside the contract's endpoints.
pub async fn task(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task_id: TaskId = parse_id("task id", &task_id)?;
    let timeline = state
        .store
        .task_timeline(task_id)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    let mut body = serde_json::to_value(&timeline)
        .map_err(|e| ApiError::Internal(format!("timeline: {e}")))?;
    body["task_id"] = serde_json::json!(task_id);
    Ok(Json(body))
}

/// 200 when the gateway can reach Redis, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

fn parse_id<T: std::str::FromStr>(what: &'static str, given: &str) -> Result<T, ApiError> {
    given.parse().map_err(|_| ApiError::BadId {
        what,
        given: given.chars().take(64).collect(),
    })
}

/// Checks that `text` is base64 of a pickle stream and hands it back unchanged: the store
/// keeps what the client sent.
async fn check_payload(field: &'static str, text: String) -> Result<String, ApiError> {
    let checked = if text.len() <= INLINE_CHECK_BYTES {
        decode_payload(&text).map(|_| text)
    } else {
        tokio::task::spawn_blocking(move || decode_payload(&text).map(|_| text))
            .await
            .map_err(|e| ApiError::Internal(format!("payload check panicked: {e}")))?
    };
    checked.map_err(|source: PayloadError| ApiError::BadPayload { field, source })
}
