//! Many results in one request: `POST /results`, answered as an NDJSON stream.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::{parse_id, wait_duration};
use crate::api::results::NDJSON;
use crate::api::{ErrorBody, MAX_BATCH, ResultLine, ResultsRequest};
use crate::gateway::AppState;
use crate::gateway::error::ApiError;
use crate::gateway::json::JsonBody;
use crate::gateway::result_stream::ResultStream;
use crate::task::TaskId;

/// Many results in one request, streamed as NDJSON: one line per distinct task id, sent the
/// moment the task is final (in completion order); tasks still not final when the wait runs
/// out get a line with their current status, and the stream ends once every id has its line.
#[utoipa::path(
    post,
    path = "/results",
    tag = "tasks",
    summary = "Stream many results",
    request_body = ResultsRequest,
    responses(
        (status = 200, description = "An NDJSON stream (`application/x-ndjson`): one `ResultLine` JSON object per line, one line per distinct task id, in completion order; `{\"task_id\", \"error\"}` for an unknown id.", body = ResultLine, content_type = "application/x-ndjson"),
        (status = 400, description = "The body is not the expected JSON, `task_ids` is empty, too long or holds a malformed id, or `wait` is out of range.", body = ErrorBody),
        (status = 413, description = "The body is larger than the gateway's limit.", body = ErrorBody),
    ),
)]
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
    let waiting = (!wait.is_zero())
        .then(|| state.waiters.register(&ids))
        .transpose()?;
    let body =
        ResultStream::open(state.store.clone(), &ids, waiting, Instant::now() + wait).await?;
    Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}
