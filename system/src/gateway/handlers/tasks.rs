//! Executing functions and following the tasks: `POST /execute_function`,
//! `POST /execute_batch`, `GET /status/{task_id}`, `GET /result/{task_id}` (long polling),
//! `GET /task/{task_id}` and `POST /cancel/{task_id}`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use tokio::time::Instant;

use super::{check_payload, parse_id, wait_duration};
use crate::api::{
    BatchRequest, BatchResponse, CancelResponse, ErrorBody, ExecuteRequest, ExecuteResponse,
    MAX_BATCH, ResultQuery, ResultResponse, StatusResponse, TimelineResponse,
};
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::gateway::json::JsonBody;
use crate::gateway::waiters::Wake;
use crate::payload::encode_payload;
use crate::pickle::task_cancelled_pickle;
use crate::store::TaskTimeline;
use crate::task::{FunctionId, TaskId, TaskStatus};

/// Queues one execution of a registered function and publishes its id on the `tasks` channel.
#[utoipa::path(
    post,
    path = "/execute_function",
    tag = "tasks",
    summary = "Execute a function",
    request_body = ExecuteRequest,
    responses(
        (status = 201, description = "Queued.", body = ExecuteResponse),
        (status = 400, description = "The body is not the expected JSON, `function_id` is not a UUID, or `payload` is not base64 of a pickle stream.", body = ErrorBody),
        (status = 404, description = "No function is registered with this id.", body = ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = ErrorBody),
    ),
)]
pub async fn execute_function(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<(StatusCode, Json<ExecuteResponse>), ApiError> {
    let function_id: FunctionId = parse_id("function_id", &req.function_id)?;
    let params = check_payload("payload", req.payload).await?;
    let task_id = TaskId::new_random();
    if !state
        .submissions
        .submit(function_id, task_id, params)
        .await?
    {
        return Err(ApiError::UnknownFunction(function_id));
    }
    Ok((StatusCode::CREATED, Json(ExecuteResponse { task_id })))
}

/// Submits many executions of one function in one request (and one Redis round trip).
#[utoipa::path(
    post,
    path = "/execute_batch",
    tag = "tasks",
    summary = "Execute a function many times",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All queued; one task id per payload, in order.", body = BatchResponse),
        (status = 400, description = "The body is not the expected JSON, `function_id` is not a UUID, `payloads` is empty or too long, or one payload is not base64 of a pickle stream (the error names it).", body = ErrorBody),
        (status = 404, description = "No function is registered with this id.", body = ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = ErrorBody),
    ),
)]
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

/// The task's current status.
#[utoipa::path(
    get,
    path = "/status/{task_id}",
    tag = "tasks",
    summary = "Task status",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "The task's status.", body = StatusResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No task has this id.", body = ErrorBody),
    ),
)]
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

/// The contract's result endpoint; with `?wait=SECONDS` (at most 60) it answers as soon as
/// the task is final, or with its current state when the wait runs out.
#[utoipa::path(
    get,
    path = "/result/{task_id}",
    tag = "tasks",
    summary = "Task result",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered."), ResultQuery),
    responses(
        (status = 200, description = "The task's status and, once final, its result. With `wait`, answered as soon as the task is final or the wait runs out.", body = ResultResponse),
        (status = 400, description = "`task_id` is not a UUID, or `wait` is not a number of seconds.", body = ErrorBody),
        (status = 404, description = "No task has this id.", body = ErrorBody),
    ),
)]
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
            .and_then(wait_duration)
            .ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "wait must be a number of seconds (at most 60), got {text:?}"
                ))
            })?,
    };
    // Registered before the first read, so a completion in between is not missed.
    let mut waiting = (!wait.is_zero())
        .then(|| state.waiters.register(&[task_id]))
        .transpose()?;
    let mut task = state
        .store
        .task_result(task_id)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    if let Some(waiting) = waiting.as_mut() {
        let deadline = Instant::now() + wait;
        while !task.status.is_final() {
            let wake = waiting
                .next(deadline.saturating_duration_since(Instant::now()))
                .await;
            if let Some(latest) = state.store.task_result(task_id).await? {
                task = latest;
            }
            if matches!(wake, None | Some(Wake::Closing)) {
                break;
            }
        }
    }
    Ok(Json(ResultResponse {
        task_id,
        status: task.status,
        result: task.result,
    }))
}

/// Cancels a queued or running task: it is recorded as FAILED with a `TaskCancelled`
/// exception at once; a running task's executor is killed (and replaced) by its dispatcher.
/// A final task answers 409 and stays as it is.
#[utoipa::path(
    post,
    path = "/cancel/{task_id}",
    tag = "tasks",
    summary = "Cancel a task",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "Cancelled: the task is FAILED with a `TaskCancelled` exception as its result.", body = CancelResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No task has this id.", body = ErrorBody),
        (status = 409, description = "The task is already final (COMPLETED or FAILED) and stays as it is.", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let task_id: TaskId = parse_id("task id", &task_id)?;
    let failure = encode_payload(&task_cancelled_pickle(&format!(
        "task {task_id} was cancelled through the API"
    )));
    let previous = state
        .store
        .cancel_task(task_id, &failure)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    if previous.is_final() {
        return Err(ApiError::AlreadyFinal {
            task: task_id,
            status: previous,
        });
    }
    tracing::info!(%task_id, ?previous, "task cancelled");
    Ok(Json(CancelResponse {
        task_id,
        status: TaskStatus::Failed,
        previous_status: previous,
    }))
}

/// A task's timeline (timestamps in µs since the epoch), beside the contract's endpoints.
#[utoipa::path(
    get,
    path = "/task/{task_id}",
    tag = "tasks",
    summary = "Task timeline",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "The task's timeline; timestamps in microseconds since the Unix epoch.", body = TimelineResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No task has this id.", body = ErrorBody),
    ),
)]
pub async fn task(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let task_id: TaskId = parse_id("task id", &task_id)?;
    let timeline = state
        .store
        .task_timeline(task_id)
        .await?
        .ok_or(ApiError::UnknownTask(task_id))?;
    Ok(Json(timeline_response(task_id, timeline)))
}

/// The stored timeline of `task_id` as the wire form.
fn timeline_response(task_id: TaskId, timeline: TaskTimeline) -> TimelineResponse {
    let TaskTimeline {
        status,
        function_id,
        attempts,
        dispatcher,
        executor,
        submitted_at,
        dispatched_at,
        started_at,
        finished_at,
        cancelled_at,
    } = timeline;
    TimelineResponse {
        task_id,
        status,
        function_id,
        attempts,
        dispatcher,
        executor,
        submitted_at,
        dispatched_at,
        started_at,
        finished_at,
        cancelled_at,
    }
}
