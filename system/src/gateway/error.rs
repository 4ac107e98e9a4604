//! Every way a request can fail, each with its HTTP status and a JSON body `{"error": "..."}`
//! that tells the client what was wrong.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::payload::PayloadError;
use crate::store::StoreError;
use crate::task::{FunctionId, TaskId, TaskStatus};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON object this endpoint takes.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// A query parameter that cannot be used.
    #[error("invalid query parameter: {0}")]
    BadQuery(String),
    /// A `payload` field that is not base64 of a pickle stream.
    #[error("invalid {field}: {source}")]
    BadPayload {
        field: &'static str,
        source: PayloadError,
    },
    /// An id that is not a UUID.
    #[error("{what} {given:?} is not a valid UUID")]
    BadId { what: &'static str, given: String },
    #[error("function {0} is not registered")]
    UnknownFunction(FunctionId),
    #[error("task {0} does not exist")]
    UnknownTask(TaskId),
    /// The request needs a task that is not final yet.
    #[error("task {task} is already {status}; only queued or running tasks can be cancelled")]
    AlreadyFinal { task: TaskId, status: TaskStatus },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// Redis is away; the client may retry.
    #[error("the task store is unavailable, try again shortly: {0}")]
    Unavailable(StoreError),
    /// A bug or corrupt data; logged with details.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error answer (documents [`ApiError`]'s JSON in the OpenAPI description).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"error": "task 0b5c8a52-3f7e-4c8e-9d55-2a1f4c9e7b10 does not exist"}))]
#[allow(dead_code, reason = "only describes the body built in `into_response`")]
pub struct ErrorBody {
    /// What was wrong with the request, or what failed.
    pub error: String,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadBody(_) | Self::BadQuery(_) | Self::BadPayload { .. } | Self::BadId { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownFunction(_) | Self::UnknownTask(_) | Self::NoRoute(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::AlreadyFinal { .. } => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e)
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request rejected");
        }
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
