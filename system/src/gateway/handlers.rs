//! The endpoint handlers of the public contract.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use super::json::JsonBody;
use super::waiters::{MAX_WAIT, Waiting, Wake};
use crate::payload::{PayloadError, decode_payload, encode_payload};
use crate::pickle::task_cancelled_pickle;
use crate::store::{Store, StoreError};
use crate::task::{FunctionId, TaskId, TaskStatus};

/// Payloads up to this size are checked inline; bigger ones on the blocking pool, so a 10 MB
/// argument does not stall other requests on this async thread.
const INLINE_CHECK_BYTES: usize = 256 * 1024;

/// A function to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A name for humans and logs; must not be empty.
    #[schema(example = "abs")]
    name: String,
    /// `base64(dill.dumps(fn))`: the function pickled with dill, then base64-encoded
    /// (`codecs.encode(..., "base64")`, newlines allowed). Anything that is not base64 of a
    /// pickle stream is rejected with 400.
    #[schema(
        content_encoding = "base64",
        example = "gASVFAAAAAAAAACMCGJ1aWx0aW5zlIwDYWJzlJOULg==\n"
    )]
    payload: String,
}

/// The id of the registered function.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisterResponse {
    function_id: FunctionId,
}

/// One execution of a registered function.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The id `POST /register_function` answered.
    #[schema(format = Uuid)]
    function_id: String,
    /// `base64(dill.dumps(((args...), {kwargs})))`: the arguments as an `(args, kwargs)`
    /// tuple pickled with dill, then base64-encoded.
    #[schema(
        content_encoding = "base64",
        example = "gASVCQAAAAAAAABLFYWUfZSGlC4=\n"
    )]
    payload: String,
}

/// The id of the new task, QUEUED.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecuteResponse {
    task_id: TaskId,
}

/// Most tasks one batch may submit.
pub const MAX_BATCH: usize = 10_000;

/// Many executions of one registered function.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The id `POST /register_function` answered.
    #[schema(format = Uuid)]
    function_id: String,
    /// One `base64(dill.dumps(((args...), {kwargs})))` per task.
    #[schema(min_items = 1, max_items = 10_000)]
    payloads: Vec<String>,
}

/// The ids of the new tasks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One id per payload, in order.
    task_ids: Vec<TaskId>,
}

/// Where a task is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusResponse {
    task_id: TaskId,
    status: TaskStatus,
}

/// A task and, once it is final, its result.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResultResponse {
    task_id: TaskId,
    status: TaskStatus,
    /// `base64(dill.dumps(value))` once final; `null` before. A FAILED task's result is the
    /// pickled exception (`WorkerFailure` when the platform failed it).
    #[schema(content_encoding = "base64")]
    result: Option<String>,
}

#[utoipa::path(
    post,
    path = "/register_function",
    tag = "functions",
    summary = "Register a function",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered.", body = RegisterResponse),
        (status = 400, description = "The body is not the expected JSON, `name` is empty, or `payload` is not base64 of a pickle stream.", body = super::error::ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = super::error::ErrorBody),
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

/// Queues one execution of a registered function and publishes its id on the `tasks` channel.
#[utoipa::path(
    post,
    path = "/execute_function",
    tag = "tasks",
    summary = "Execute a function",
    request_body = ExecuteRequest,
    responses(
        (status = 201, description = "Queued.", body = ExecuteResponse),
        (status = 400, description = "The body is not the expected JSON, `function_id` is not a UUID, or `payload` is not base64 of a pickle stream.", body = super::error::ErrorBody),
        (status = 404, description = "No function is registered with this id.", body = super::error::ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = super::error::ErrorBody),
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
        .store
        .submit_task(task_id, function_id, &params)
        .await?
    {
        return Err(ApiError::UnknownFunction(function_id));
    }
    Ok((StatusCode::CREATED, Json(ExecuteResponse { task_id })))
}

#[utoipa::path(
    post,
    path = "/execute_batch",
    tag = "tasks",
    summary = "Execute a function many times",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All queued; one task id per payload, in order.", body = BatchResponse),
        (status = 400, description = "The body is not the expected JSON, `function_id` is not a UUID, `payloads` is empty or too long, or one payload is not base64 of a pickle stream (the error names it).", body = super::error::ErrorBody),
        (status = 404, description = "No function is registered with this id.", body = super::error::ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = super::error::ErrorBody),
    ),
)]
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

/// The task's current status.
#[utoipa::path(
    get,
    path = "/status/{task_id}",
    tag = "tasks",
    summary = "Task status",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "The task's status.", body = StatusResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = super::error::ErrorBody),
        (status = 404, description = "No task has this id.", body = super::error::ErrorBody),
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// Seconds to wait for the task to become final before answering (long polling).
    #[param(value_type = Option<f64>, minimum = 0, maximum = 60, example = 30)]
    wait: Option<String>,
}

#[utoipa::path(
    get,
    path = "/result/{task_id}",
    tag = "tasks",
    summary = "Task result",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered."), ResultQuery),
    responses(
        (status = 200, description = "The task's status and, once final, its result. With `wait`, answered as soon as the task is final or the wait runs out.", body = ResultResponse),
        (status = 400, description = "`task_id` is not a UUID, or `wait` is not a number of seconds.", body = super::error::ErrorBody),
        (status = 404, description = "No task has this id.", body = super::error::ErrorBody),
    ),
)]
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
            .and_then(wait_duration)
            .ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "wait must be a number of seconds (at most 60), got {text:?}"
                ))
            })?,
    };
    // Registered before the first read, so a completion in between is not missed.
    let mut waiting = (!wait.is_zero()).then(|| state.waiters.register(&[task_id]));
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

/// The tasks whose results to stream.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsRequest {
    /// Task ids; duplicates get one line.
    #[schema(min_items = 1, max_items = 10_000, value_type = Vec<uuid::Uuid>)]
    task_ids: Vec<String>,
    /// Seconds to keep the stream open for tasks that are not final yet (at most 60).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 60)]
    wait: Option<f64>,
}

/// One line of the `POST /results` stream: a task's result, or an error for an unknown id.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum ResultLine {
    Known(ResultResponse),
    Unknown { task_id: TaskId, error: String },
}

#[utoipa::path(
    post,
    path = "/results",
    tag = "tasks",
    summary = "Stream many results",
    request_body = ResultsRequest,
    responses(
        (status = 200, description = "An NDJSON stream (`application/x-ndjson`): one `ResultLine` JSON object per line, one line per distinct task id, in completion order; `{\"task_id\", \"error\"}` for an unknown id.", body = ResultLine, content_type = "application/x-ndjson"),
        (status = 400, description = "The body is not the expected JSON, `task_ids` is empty, too long or holds a malformed id, or `wait` is out of range.", body = super::error::ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = super::error::ErrorBody),
    ),
)]
/// Many results in one request, streamed as NDJSON: one line per distinct task id, sent the
/// moment the task is final (in completion order); tasks still not final when the wait runs
/// out get a line with their current status, and the stream ends once every id has its line.
pub async fn results(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ResultsRequest>,
) -> Result<Response, ApiError> {
    if req.task_ids.is_empty() || req.task_ids.len() > MAX_BATCH {
        return Err(ApiError::BadBody(format!(
            "task_ids must hold 1 to {MAX_BATCH} items, got {}",
            req.task_ids.len()
        )));
    }
    let wait = match req.wait {
        None => Duration::ZERO,
        Some(seconds) => wait_duration(seconds).ok_or_else(|| {
            ApiError::BadBody(format!(
                "wait must be a number of seconds (at most 60), got {seconds}"
            ))
        })?,
    };
    let mut ids = Vec::with_capacity(req.task_ids.len());
    let mut seen = HashSet::with_capacity(req.task_ids.len());
    for (i, given) in req.task_ids.iter().enumerate() {
        let id: TaskId = parse_id("task id", given)
            .map_err(|e| ApiError::BadBody(format!("task_ids[{i}]: {e}")))?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    let waiting = (!wait.is_zero()).then(|| state.waiters.register(&ids));
    let mut stream = ResultStream {
        store: state.store.clone(),
        pending: ids.iter().copied().collect(),
        out: Vec::new(),
    };
    // The first read happens before answering, so an unreachable store is a 503, not a
    // broken stream.
    stream.read(&ids, false).await?;
    let first = Bytes::from(std::mem::take(&mut stream.out));
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    if !first.is_empty() {
        let _ = tx.try_send(Ok(first));
    }
    if let Some(waiting) = waiting
        && !stream.pending.is_empty()
    {
        tokio::spawn(stream.follow(waiting, Instant::now() + wait, tx));
    } else {
        stream.finish(&tx).await;
    }
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The state of one `POST /results` stream.
struct ResultStream {
    store: Store,
    /// Tasks whose line has not been written.
    pending: HashSet<TaskId>,
    /// Lines written and not yet sent.
    out: Vec<u8>,
}

impl ResultStream {
    /// Reads `ids` and writes a line for each that is final (or for all, when `last`).
    async fn read(&mut self, ids: &[TaskId], last: bool) -> Result<(), StoreError> {
        let found = self.store.task_results(ids).await?;
        for (id, task) in ids.iter().zip(found) {
            let line = match task {
                None => ResultLine::Unknown {
                    task_id: *id,
                    error: format!("no task with id {id}"),
                },
                Some(task) if task.status.is_final() || last => ResultLine::Known(ResultResponse {
                    task_id: *id,
                    status: task.status,
                    result: task.result,
                }),
                Some(_) => continue,
            };
            self.write(&line);
        }
        Ok(())
    }

    fn write(&mut self, line: &ResultLine) {
        let id = match line {
            ResultLine::Known(r) => r.task_id,
            ResultLine::Unknown { task_id, .. } => *task_id,
        };
        if self.pending.remove(&id) {
            // Serializing these plain structs cannot fail.
            let _ = serde_json::to_writer(&mut self.out, line);
            self.out.push(b'\n');
        }
    }

    /// Sends what was written; `false` once the client has gone.
    async fn flush(&mut self, tx: &mpsc::Sender<Result<Bytes, Infallible>>) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.out));
        tx.send(Ok(chunk)).await.is_ok()
    }

    /// Writes lines as tasks finish, until every task has its line or `deadline` passes.
    async fn follow(
        mut self,
        mut waiting: Waiting,
        deadline: Instant,
        tx: mpsc::Sender<Result<Bytes, Infallible>>,
    ) {
        while !self.pending.is_empty() {
            let Some(first) = waiting
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            else {
                break;
            };
            let (mut done, mut reread, mut closing) = (Vec::new(), false, false);
            let mut next = Some(first);
            while let Some(wake) = next {
                match wake {
                    Wake::Done(id) => done.push(id),
                    Wake::Reread => reread = true,
                    Wake::Closing => closing = true,
                }
                next = waiting.try_next();
            }
            if closing {
                break;
            }
            if reread {
                done = self.pending.iter().copied().collect();
            } else {
                // A task that finished during the first read was answered there already.
                done.retain(|id| self.pending.contains(id));
            }
            if done.is_empty() {
                continue;
            }
            if let Err(e) = self.read(&done, false).await {
                self.fail(&e);
                break;
            }
            if !self.flush(&tx).await {
                return;
            }
        }
        self.finish(&tx).await;
    }

    /// Writes the current state of every task still pending and sends the rest.
    async fn finish(mut self, tx: &mpsc::Sender<Result<Bytes, Infallible>>) {
        let left: Vec<TaskId> = self.pending.iter().copied().collect();
        if !left.is_empty()
            && let Err(e) = self.read(&left, true).await
        {
            self.fail(&e);
        }
        self.flush(tx).await;
    }

    /// Ends every pending task's line with the store error that stopped the stream.
    fn fail(&mut self, error: &StoreError) {
        let left: Vec<TaskId> = self.pending.iter().copied().collect();
        for task_id in left {
            self.write(&ResultLine::Unknown {
                task_id,
                error: format!("store unavailable: {error}"),
            });
        }
    }
}

/// A wait in seconds as a duration, capped at [`MAX_WAIT`]; `None` if it is not a
/// non-negative finite number.
fn wait_duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .map(|d| d.min(MAX_WAIT))
}

/// The cancelled task.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    task_id: TaskId,
    /// Always `FAILED`: the task's result is now a `TaskCancelled` exception.
    status: TaskStatus,
    /// What the task was when it was cancelled: `QUEUED` (it never runs) or `RUNNING` (its
    /// executor is stopped).
    previous_status: TaskStatus,
}

#[utoipa::path(
    post,
    path = "/cancel/{task_id}",
    tag = "tasks",
    summary = "Cancel a task",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "Cancelled: the task is FAILED with a `TaskCancelled` exception as its result.", body = CancelResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = super::error::ErrorBody),
        (status = 404, description = "No task has this id.", body = super::error::ErrorBody),
        (status = 409, description = "The task is already final (COMPLETED or FAILED) and stays as it is.", body = super::error::ErrorBody),
    ),
)]
/// Cancels a queued or running task: it is recorded as FAILED with a `TaskCancelled`
/// exception at once; a running task's executor is killed (and replaced) by its dispatcher.
/// A final task answers 409 and stays as it is.
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

#[utoipa::path(
    get,
    path = "/task/{task_id}",
    tag = "tasks",
    summary = "Task timeline",
    params(("task_id" = uuid::Uuid, Path, description = "The id `POST /execute_function` answered.")),
    responses(
        (status = 200, description = "The task's timeline; timestamps in microseconds since the Unix epoch.", body = super::openapi::TimelineResponse),
        (status = 400, description = "`task_id` is not a UUID.", body = super::error::ErrorBody),
        (status = 404, description = "No task has this id.", body = super::error::ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "Health check",
    responses(
        (status = 200, description = "The gateway is up and reaches Redis.", body = super::openapi::Health),
    ),
)]
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
