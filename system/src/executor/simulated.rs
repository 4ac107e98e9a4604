//! Executors simulated in Rust, for benchmarks of the control plane alone (gateway, Redis,
//! dispatcher, workers) at scales real Python executors cannot reach on a small machine. A
//! simulated executor runs no user code: it takes a job, waits, and answers what a Python
//! executor answers for a function that returns `None`.

use std::time::Duration;

use super::Job;
use super::process::{Run, deadline_exceeded};
use crate::task::{TaskOutcome, now_micros};

/// `base64(dill.dumps(None))`, the result of every simulated task: what a Python executor
/// sends for a function returning `None`. Made with dill 0.4.1 (protocol 4) by
/// `python -c "import dill,base64;print(base64.b64encode(dill.dumps(None)).decode())"`;
/// the bytes are `\x80\x04N.` (pickle protocol 4, `None`, stop).
pub const NONE_RESULT: &str = "gAROLg==";

/// One simulated executor: every job takes `run`, then completes with [`NONE_RESULT`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatedExecutor {
    /// How long each job takes: a tokio sleep (whose timer counts whole milliseconds, so any
    /// wait under one lasts about one); zero only yields to the scheduler.
    pub run: Duration,
}

impl SimulatedExecutor {
    /// Runs one job: waits [`Self::run`], within the job's deadline as a real executor would
    /// (past it the task fails with the same `WorkerFailure` and the executor is "replaced").
    pub async fn run(&self, job: &Job) -> Run {
        let started_at = now_micros();
        let work = async {
            if self.run.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.run).await;
            }
        };
        if let Some(limit) = job.timeout {
            if tokio::time::timeout(limit, work).await.is_err() {
                return Run::lost(deadline_exceeded(job.task_id, limit));
            }
        } else {
            work.await;
        }
        Run {
            outcome: TaskOutcome::Completed(NONE_RESULT.to_owned()),
            started_at: Some(started_at),
            finished_at: now_micros(),
            executor_lost: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_a_pickle_of_none_that_passes_validation() {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(NONE_RESULT)
            .expect("base64");
        // PROTO 4, NONE, STOP.
        assert_eq!(bytes, b"\x80\x04N.");
        crate::pickle::validate(&bytes).expect("a pickle stream");
    }
}
