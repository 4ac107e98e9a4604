//! A Function-as-a-Service platform: users register dill-serialized Python functions over
//! REST and run them as tasks on pools of Python executor processes.
//!
//! # Layout
//!
//! - [`task`]: task and function ids, the task state machine, timestamps.
//! - [`payload`] and [`pickle`]: client payloads checked without Python; the `WorkerFailure`
//!   exception built in Rust.
//! - [`store`]: the Redis key schema, records, durable queue and atomic state transitions.
//! - [`api`]: the REST API's request and response types, shared by the gateway, its OpenAPI
//!   document and the client.
//! - [`gateway`]: the REST API (axum).
//! - [`client`]: a typed async HTTP client of the gateway.
//! - [`executor`]: the Python runtime, its environment, and pools of executor processes.
//! - [`dispatcher`]: the core that moves tasks from the queue to executors and records
//!   outcomes, and the transports (dispatch modes) behind it.
//! - [`protocol`] and [`bridge`]: the worker ↔ dispatcher messages, and ZeroMQ sockets
//!   driven on the async runtime.
//! - [`curve`]: CURVE keys and the ZAP handler that authenticate the worker transport.
//! - [`worker`]: the remote workers of the pull and push modes.
//! - [`cli`], [`host`], [`memory`], [`metrics`], [`secret`], [`shutdown`] and [`telemetry`]:
//!   what every binary shares.
//! - [`readiness`]: how a process says it is ready (systemd's notification protocol).
//! - [`cluster`]: the one supervisor that starts, stops and injects faults into a whole
//!   cluster on this machine, for `faas up`, loadgen and the tests.
//! - [`up`]: `faas up`, a whole cluster in the foreground for development.

pub mod api;
pub mod bridge;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod curve;
pub mod dispatcher;
pub mod executor;
pub mod gateway;
pub mod host;
pub mod memory;
pub mod metrics;
pub mod payload;
pub mod pickle;
pub mod protocol;
pub mod readiness;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod up;
pub mod worker;
