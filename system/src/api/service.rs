//! The gateway itself: `GET /health`, and the body of every error answer.

use serde::{Deserialize, Serialize};

/// `GET /health`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the gateway reaches Redis.
    #[schema(example = "ok")]
    pub status: String,
}

impl Health {
    /// The gateway is up and reaches Redis.
    #[must_use]
    pub fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "task 0b5c8a52-3f7e-4c8e-9d55-2a1f4c9e7b10 does not exist"}))]
pub struct ErrorBody {
    /// What was wrong with the request, or what failed.
    pub error: String,
}
