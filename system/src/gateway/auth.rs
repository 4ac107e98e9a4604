//! Optional bearer-token authentication for every gateway request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The expected token, if authentication is on.
#[derive(Clone)]
pub struct Token(Option<Arc<[u8]>>);

impl Token {
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

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
