//! Pickle streams handled without Python: structural validation of client payloads and the
//! `WorkerFailure` and `TaskCancelled` exception pickles the platform produces when Python is
//! not at hand.

mod validate;
mod worker_failure;

pub use validate::{PickleError, validate};
pub use worker_failure::{task_cancelled_pickle, worker_failure_pickle};
