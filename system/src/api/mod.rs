//! The gateway's wire types: the request and response bodies of every route, shared by the
//! handlers ([`crate::gateway`]), the OpenAPI document and the HTTP client
//! ([`crate::client`]), so the three cannot drift apart.
//!
//! Ids in answers are [`TaskId`] and [`FunctionId`]. Ids a client sends stay text on the wire
//! types: the gateway parses them itself so that a malformed one is answered with a 400 that
//! names the field (and, in lists, its index). The request types' constructors take typed ids.
//!
//! - [`functions`]: registering a function.
//! - [`tasks`]: executing, following and cancelling tasks.
//! - [`results`]: the `POST /results` NDJSON stream.
//! - [`service`]: health and the error body every failed request carries.

pub mod functions;
pub mod results;
pub mod service;
pub mod tasks;

use std::time::Duration;

pub use functions::{DeleteFunctionResponse, RegisterRequest, RegisterResponse};
pub use results::{ResultLine, ResultsRequest};
pub use service::{ErrorBody, Health};
pub use tasks::{
    BatchRequest, BatchResponse, CancelResponse, ExecuteRequest, ExecuteResponse, ResultQuery,
    ResultResponse, StatusResponse, TimelineResponse,
};

pub use crate::task::{FunctionId, TaskId, TaskStatus};

/// Most tasks one `POST /execute_batch` may submit, and most ids one `POST /results` may
/// follow.
pub const MAX_BATCH: usize = 10_000;

/// Longest a single request may wait for results (`?wait=` and `POST /results`' `wait`);
/// longer waits are cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
