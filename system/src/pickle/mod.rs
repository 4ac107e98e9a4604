//! Pickle streams handled without Python: structural validation of client payloads and the
//! `WorkerFailure` exception pickle the platform produces when Python is not at hand.

mod validate;
mod worker_failure;

pub use validate::{PickleError, validate};
pub use worker_failure::worker_failure_pickle;
