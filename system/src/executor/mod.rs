//! Python executors: the environment they run in, the framed pipe protocol, one executor
//! process, and pools of them.
//!
//! - [`python_env`]: find or create the interpreter with dill.
//! - [`frame`]: length-prefixed JSON messages over the pipe.
//! - [`process`]: one executor child, its deadline and its death.
//! - [`pool`]: N executors serving a queue of jobs, respawned as needed.

pub mod frame;
pub mod pool;
pub mod process;
pub mod python_env;

use std::sync::Arc;

use crate::task::{FunctionId, TaskId};

pub use pool::{Completion, ExecutorPool};
pub use process::ExecutorSpec;

/// A task ready to run: everything an executor needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    /// `base64(dill.dumps(fn))`, shared by every job of the same function.
    pub function: Arc<str>,
    /// `base64(dill.dumps((args, kwargs)))`.
    pub params: String,
}

/// How a task ended on an executor. Not an error type: all three are normal results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The function returned; `base64(dill.dumps(value))`.
    Completed(String),
    /// The function raised; `base64(dill.dumps(exception))`. Never retried.
    Raised(String),
    /// The platform failed the task (deadline, executor died); the message says how.
    WorkerFailure(String),
}
