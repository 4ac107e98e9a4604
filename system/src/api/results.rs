//! `POST /results`: many results in one request, streamed as NDJSON.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tasks::ResultResponse;
use crate::task::TaskId;

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// The tasks whose results to stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsRequest {
    /// Task ids; duplicates get one line.
    #[schema(min_items = 1, max_items = 10_000, value_type = Vec<uuid::Uuid>)]
    pub task_ids: Vec<String>,
    /// Seconds to keep the stream open for tasks that are not final yet (at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 60)]
    pub wait: Option<f64>,
}

impl ResultsRequest {
    /// The results of `task_ids`, waiting up to `wait` for those not final yet.
    #[must_use]
    pub fn new(task_ids: &[TaskId], wait: Option<Duration>) -> Self {
        Self {
            task_ids: task_ids.iter().map(TaskId::to_string).collect(),
            wait: wait.map(|w| w.as_secs_f64()),
        }
    }
}

/// One line of the `POST /results` stream: a task's result, or an error for an unknown id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ResultLine {
    /// The task's status and, once final, its result.
    Task(ResultResponse),
    /// No task has this id, or the store failed before the task's line was written.
    Error {
        /// The id as asked for.
        task_id: TaskId,
        /// What went wrong.
        error: String,
    },
}

impl ResultLine {
    /// The task this line is about.
    #[must_use]
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Task(result) => result.task_id,
            Self::Error { task_id, .. } => *task_id,
        }
    }
}
