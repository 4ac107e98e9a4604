//! `POST /register_function` and `DELETE /functions/{function_id}`.

use serde::{Deserialize, Serialize};

use crate::task::FunctionId;

/// A function to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A name for humans and logs; must not be empty.
    #[schema(example = "abs")]
    pub name: String,
    /// `base64(dill.dumps(fn))`: the function pickled with dill, then base64-encoded
    /// (`codecs.encode(..., "base64")`, newlines allowed). Anything that is not base64 of a
    /// pickle stream is rejected with 400.
    #[schema(
        content_encoding = "base64",
        example = "gASVFAAAAAAAAACMCGJ1aWx0aW5zlIwDYWJzlJOULg==\n"
    )]
    pub payload: String,
}

/// The id of the registered function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterResponse {
    /// The id to execute the function by.
    pub function_id: FunctionId,
}

/// A function deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeleteFunctionResponse {
    /// The function deleted.
    pub function_id: FunctionId,
    /// Always `true`: the function can no longer be executed.
    pub deleted: bool,
}
