//! A JSON body extractor whose failures are [`ApiError`]s with JSON bodies.
//!
//! Unlike `axum::Json` it does not insist on a `Content-Type` header: clients that post a
//! JSON string without one are common and the body is unambiguous. The whole body must
//! arrive within the gateway's body deadline: a client that trickles it is answered 408.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A request body parsed as JSON into `T`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let rules = req
            .extensions()
            .get::<BodyRules>()
            .copied()
            .unwrap_or(BodyRules {
                limit: usize::MAX,
                timeout: Duration::MAX,
            });
        let read = tokio::time::timeout(rules.timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::BodyTimeout(rules.timeout))?;
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge { limit: rules.limit }
            } else {
                ApiError::BadBody(e.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::BadBody(
                "the body is empty; send a JSON object".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadBody(e.to_string()))
    }
}

/// The configured body size limit and read deadline, as a request extension so the
/// extractor applies them and rejections can name them.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub limit: usize,
    pub timeout: Duration,
}
