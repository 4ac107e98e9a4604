//! Every way a request can fail, each with its HTTP status and a JSON body `{"error": "..."}`
//! that tells the client what was wrong.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;
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
        /// The field, e.g. `payload`.
        field: &'static str,
        /// Why it is not base64 of a pickle stream.
        source: PayloadError,
    },
    /// An id that is not a UUID.
    #[error("{what} {given:?} is not a valid UUID")]
    BadId {
        /// Which id, e.g. `task id`.
        what: &'static str,
        /// What was given (at most 64 characters of it).
        given: String,
    },
    /// No function is registered with this id.
    #[error("function {0} is not registered")]
    UnknownFunction(FunctionId),
    /// No task has this id.
    #[error("task {0} does not exist")]
    UnknownTask(TaskId),
    /// The request needs a task that is not final yet.
    #[error("task {task} is already {status}; only queued or running tasks can be cancelled")]
    AlreadyFinal {
        /// The task.
        task: TaskId,
        /// Its final status.
        status: TaskStatus,
    },
    /// The token is missing or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The body is larger than the gateway's limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// As many requests as the gateway allows are already waiting for results.
    #[error("too many requests are waiting for results (at most {0}); retry shortly or wait less")]
    TooManyWaiting(usize),
    /// No route serves this path.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// The route does not take this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// Redis is away; the client may retry.
    #[error("the task store is unavailable, try again shortly: {0}")]
    Unavailable(StoreError),
    /// A bug or corrupt data; logged with details.
    #[error("internal error: {0}")]
    Internal(String),
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
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyWaiting(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::gateway::waiters::Full> for ApiError {
    fn from(full: crate::gateway::waiters::Full) -> Self {
        Self::TooManyWaiting(full.limit)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
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
        // The body was not read to its end: the connection cannot carry another request,
        // and saying so keeps clients from reusing it as the server closes it.
        let unread_body = matches!(self, Self::TooLarge { .. } | Self::BodyTimeout(_));
        let body = ErrorBody {
            error: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if unread_body {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
