//! Optional bearer-token authentication for every gateway request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::secret::constant_time_eq;

/// The expected token, if authentication is on.
#[derive(Clone)]
pub struct Token(Option<Arc<[u8]>>);

impl Token {
    /// Requires `token`; `None` or an empty token turns authentication off.
    #[must_use]
    pub fn new(token: Option<&str>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(|t| t.as_bytes().into()))
    }
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>`.
pub async fn require_token(State(token): State<Token>, request: Request, next: Next) -> Response {
    let Some(expected) = &token.0 else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    match given {
        Some(given) if constant_time_eq(given, expected) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is wrong"),
        None => unauthorized("this gateway requires an Authorization: Bearer <token> header"),
    }
}

fn unauthorized(why: &str) -> Response {
    let mut response = ApiError::Unauthorized(why.to_owned()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}
