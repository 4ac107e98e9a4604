//! Executing a function and following its tasks: `POST /execute_function`,
//! `POST /execute_batch`, `GET /status/{task_id}`, `GET /result/{task_id}`,
//! `GET /task/{task_id}` and `POST /cancel/{task_id}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::task::{FunctionId, TaskId, TaskStatus};

/// One execution of a registered function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The id `POST /register_function` answered.
    #[schema(format = Uuid)]
    pub function_id: String,
    /// `base64(dill.dumps(((args...), {kwargs})))`: the arguments as an `(args, kwargs)`
    /// tuple pickled with dill, then base64-encoded.
    #[schema(
        content_encoding = "base64",
        example = "gASVCQAAAAAAAABLFYWUfZSGlC4=\n"
    )]
    pub payload: String,
}

impl ExecuteRequest {
    /// An execution of `function_id` with the serialized arguments `payload`.
    #[must_use]
    pub fn new(function_id: FunctionId, payload: impl Into<String>) -> Self {
        Self {
            function_id: function_id.to_string(),
            payload: payload.into(),
        }
    }
}

/// The id of the new task, QUEUED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecuteResponse {
    /// The id to follow the task by.
    pub task_id: TaskId,
}

/// Many executions of one registered function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The id `POST /register_function` answered.
    #[schema(format = Uuid)]
    pub function_id: String,
    /// One `base64(dill.dumps(((args...), {kwargs})))` per task.
    #[schema(min_items = 1, max_items = 10_000)]
    pub payloads: Vec<String>,
}

impl BatchRequest {
    /// One execution of `function_id` per serialized argument tuple in `payloads`.
    #[must_use]
    pub fn new(function_id: FunctionId, payloads: Vec<String>) -> Self {
        Self {
            function_id: function_id.to_string(),
            payloads,
        }
    }
}

/// The ids of the new tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One id per payload, in order.
    pub task_ids: Vec<TaskId>,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusResponse {
    /// The task asked about.
    pub task_id: TaskId,
    /// Its current status.
    pub status: TaskStatus,
}

/// The query of `GET /result/{task_id}`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// Seconds to wait for the task to become final before answering (long polling).
    // Text, so the gateway can answer a value that is not a number with its own 400.
    #[param(value_type = Option<f64>, minimum = 0, maximum = 60, example = 30)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 60, example = 30)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

impl ResultQuery {
    /// A long poll of at most `wait` (the gateway cuts it to [`super::MAX_WAIT`]), to the
    /// millisecond.
    #[must_use]
    pub fn waiting(wait: Duration) -> Self {
        Self {
            wait: Some(format!("{:.3}", wait.as_secs_f64())),
        }
    }
}

/// A task and, once it is final, its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultResponse {
    /// The task asked about.
    pub task_id: TaskId,
    /// Its current status.
    pub status: TaskStatus,
    /// `base64(dill.dumps(value))` once final; `null` before. A FAILED task's result is the
    /// pickled exception (`WorkerFailure` when the platform failed it).
    #[schema(content_encoding = "base64")]
    pub result: Option<String>,
}

/// `GET /task/{task_id}`'s body: where a task is and has been, beside the contract's
/// endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(
    description = "Where a task is and has been. Every `*_at` field is a timestamp in microseconds since the Unix epoch, `null` until that step happened."
)]
pub struct TimelineResponse {
    /// The task asked about.
    pub task_id: TaskId,
    /// Its current status.
    pub status: TaskStatus,
    /// The function it runs.
    pub function_id: Option<FunctionId>,
    /// Times it was handed to an executor.
    pub attempts: u32,
    /// The dispatcher that started it last.
    pub dispatcher: Option<String>,
    /// The executor (`worker/slot`) that ran it to the end.
    pub executor: Option<String>,
    /// Stored and queued by the gateway.
    pub submitted_at: Option<u64>,
    /// Taken from the queue by a dispatcher.
    pub dispatched_at: Option<u64>,
    /// Started by its executor.
    pub started_at: Option<u64>,
    /// Final.
    pub finished_at: Option<u64>,
    /// Set when the task was cancelled through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<u64>,
}

/// The cancelled task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelResponse {
    /// The task cancelled.
    pub task_id: TaskId,
    /// Always `FAILED`: the task's result is now a `TaskCancelled` exception.
    pub status: TaskStatus,
    /// What the task was when it was cancelled: `QUEUED` (it never runs) or `RUNNING` (its
    /// executor is stopped).
    pub previous_status: TaskStatus,
}
