//! Python executors: the environment they run in, the framed pipe protocol, one executor
//! process, and pools of them; and executors simulated in Rust for control-plane benchmarks.
//!
//! - [`python_env`]: find or create the interpreter with dill.
//! - [`frame`]: length-prefixed JSON messages over the pipe.
//! - [`sandbox`]: the namespaces and limits an executor runs in.
//! - [`process`]: one executor child, its deadline and its death.
//! - [`simulated`]: an executor that runs no code: it waits, then answers `None`.
//! - [`pool`]: N executors serving a queue of jobs, respawned as needed.

pub mod frame;
pub mod pool;
pub mod process;
pub mod python_env;
pub mod sandbox;
pub mod simulated;

use std::sync::Arc;
use std::time::Duration;

use crate::task::{FunctionId, TaskId};

pub use pool::{CANCELLED, ExecutorKind, ExecutorPool};
pub use process::ExecutorSpec;
pub use simulated::SimulatedExecutor;

/// A task ready to run: everything an executor needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    /// `base64(dill.dumps(fn))`, shared by every job of the same function.
    pub function: Arc<str>,
    /// `base64(dill.dumps((args, kwargs)))`.
    pub params: String,
    /// Deadline on the executor; past it the executor is killed and the task fails.
    pub timeout: Option<Duration>,
}
