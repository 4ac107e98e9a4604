//! The dispatcher: takes tasks from the durable queue, hands them to a transport (a dispatch
//! mode), and records their outcomes with first-wins writes.
//!
//! - [`config`]: the dispatch mode and the settings every mode shares.
//! - [`core`]: the loop that starts fetched tasks, hands them to the transport and records
//!   what comes back; [`in_flight`] is its table of tasks in hand, [`record`] the recording of
//!   outcomes (results, lost tasks to requeue).
//! - [`capacity`]: how many tasks the dispatcher may hold, and the events that change it.
//! - [`fetch`]: the queue reader, which only asks for as many tasks as there are free places.
//! - [`recovery`]: this dispatcher's liveness marker, and requeueing what dead ones held.
//! - [`cancel`]: following cancellations announced by the gateway.
//! - [`local`]: the `local` mode, the dispatcher's own executor pool.
//! - [`pull`] and [`push`]: remote workers over ZeroMQ (REQ and DEALER), sharing
//!   [`remote`] (the transport handle, settings and event loop), [`workers`] (what both do
//!   with workers) and [`registry`] (workers, their tasks, liveness).
//!
//! Every task this dispatcher holds is an entry pending for its consumer in the queue's group,
//! so whatever it has not finished when it dies is found by the others (or by its successor).

mod cancel;
mod capacity;
mod config;
mod core;
mod fetch;
mod in_flight;
pub mod local;
mod metrics;
pub mod pull;
pub mod push;
mod record;
mod recovery;
pub mod registry;
pub mod remote;
#[cfg(test)]
mod testing;
mod workers;

use std::time::Duration;

use crate::executor::Job;
use crate::payload::encode_payload;
use crate::pickle::worker_failure_pickle;
use crate::store::StoreError;
use crate::task::TaskId;
pub use config::{
    DEFAULT_LIVENESS_TTL, DEFAULT_MAX_RETRIES, DEFAULT_PREFETCH, DEFAULT_RECLAIM_AFTER,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TASK_TIMEOUT, DispatcherConfig, Mode,
};
pub use metrics::DispatcherMetrics;

/// Why a dispatcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("redis: {0}")]
    Store(#[from] StoreError),
    #[error("python environment: {0}")]
    Python(#[from] crate::executor::python_env::PythonEnvError),
    #[error("executors: {0}")]
    Executors(#[from] crate::executor::process::SpawnError),
    #[error("cannot listen for workers on {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("worker transport security: {0}")]
    Curve(#[from] crate::curve::CurveError),
    #[error("cannot serve /health and /metrics on {addr}: {source}")]
    Http {
        addr: String,
        source: std::io::Error,
    },
}

/// How jobs reach executors: what a dispatch mode implements. The transport reports to the
/// dispatcher's [`capacity::Capacity`] the events that free or withdraw places (completions,
/// workers joining and going); the core's fetcher takes a place for each task.
pub trait Transport {
    /// Hands a started task to an executor; gives it back if the transport is closing.
    fn dispatch(&mut self, job: Job) -> impl Future<Output = Result<(), Job>> + Send;
    /// Stops a task this transport was given (cancelled through the API): its executor is
    /// killed and replaced, or it is never started. Its completion still comes back.
    fn cancel(&mut self, task: TaskId) -> impl Future<Output = ()> + Send;
    /// The outcomes of `tasks` are now in Redis (or the tasks were already final there):
    /// whoever reported them may forget them. Until then a remote worker keeps each result, to
    /// send it again should this dispatcher die before recording it.
    fn recorded(&mut self, tasks: Vec<TaskId>) -> impl Future<Output = ()> + Send;
    /// Stops taking jobs; jobs in hand get `grace` to finish, then are abandoned unreported.
    fn shutdown(self, grace: Duration) -> impl Future<Output = ()> + Send;
}

/// A serialized `WorkerFailure` carrying `message`, as stored in a task's `result`.
#[must_use]
pub fn worker_failure_result(message: &str) -> String {
    encode_payload(&worker_failure_pickle(message))
}
