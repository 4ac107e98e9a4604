//! What can go wrong with a request to the gateway.

use reqwest::StatusCode;

/// Why a request to the gateway did not give the answer its route promises.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error status; `message` is its `error` field (or the
    /// body as text, when it is not the gateway's error body).
    #[error("{method} {path} answered {status}: {message}")]
    Api {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The status answered.
        status: StatusCode,
        /// What the gateway said was wrong.
        message: String,
    },
    /// No complete answer: the gateway cannot be reached, or the connection broke.
    #[error("{method} {path} failed: {source}")]
    Transport {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// What the HTTP client saw.
        source: reqwest::Error,
    },
    /// The answer is not the JSON the route promises.
    #[error("{method} {path} answered something unexpected: {source}")]
    Decode {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// The token holds characters an HTTP header cannot carry.
    #[error("the token cannot be sent in an Authorization header")]
    InvalidToken,
    /// The HTTP client could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl ClientError {
    /// The status the gateway answered with, if it answered with an error.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
