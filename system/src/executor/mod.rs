//! Python executors: the environment they run in, the framed pipe protocol, one executor
//! process, and pools of them.
//!
//! - [`python_env`]: find or create the interpreter with dill.
//! - [`frame`]: length-prefixed JSON messages over the pipe.
//! - [`sandbox`]: the namespaces and limits an executor runs in.
//! - [`process`]: one executor child, its deadline and its death.
//! - [`pool`]: N executors serving a queue of jobs, respawned as needed.

pub mod frame;
pub mod pool;
pub mod process;
pub mod python_env;
pub mod sandbox;

use std::sync::Arc;
use std::time::Duration;

use crate::task::{FunctionId, TaskId};

pub use pool::{CANCELLED, ExecutorPool};
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
    /// Deadline on the executor; past it the executor is killed and the task fails.
    pub timeout: Option<Duration>,
}
