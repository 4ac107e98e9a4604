//! The endpoint handlers, one file per group of routes, and what they share: parsing ids,
//! checking payloads and bounding waits.
//!
//! - [`functions`]: `POST /register_function`.
//! - [`tasks`]: executing, following and cancelling tasks.
//! - [`results`]: `POST /results` (its stream lives in [`super::result_stream`]).
//! - [`service`]: `GET /health` and the answers to unknown routes and methods.

pub mod functions;
pub mod results;
pub mod service;
pub mod tasks;

use std::time::Duration;

use super::error::ApiError;
use crate::api::MAX_WAIT;
use crate::payload::{PayloadError, decode_payload};

/// Payloads up to this size are checked inline; bigger ones on the blocking pool, so a 10 MB
/// argument does not stall other requests on this async thread.
const INLINE_CHECK_BYTES: usize = 256 * 1024;

/// Parses an id the client sent; a malformed one is a 400 naming `what` and (the start of)
/// what was given.
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

/// A wait in seconds as a duration, capped at [`MAX_WAIT`]; `None` if it is not a
/// non-negative finite number.
fn wait_duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .map(|d| d.min(MAX_WAIT))
}
