//! `local` mode: the dispatcher runs its own pool of executor processes.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DispatcherConfig, DispatcherError, Transport, run_core};
use crate::executor::{ExecutorPool, ExecutorSpec, Job};
use crate::store::Store;

impl Transport for ExecutorPool {
    async fn dispatch(&mut self, job: Job) -> Result<(), Job> {
        self.submit(job).await
    }

    async fn shutdown(self, grace: Duration) {
        ExecutorPool::shutdown(self, grace).await;
    }
}

/// Runs a local-mode dispatcher with `executors` Python processes until `shutdown`.
pub async fn run(
    config: DispatcherConfig,
    spec: ExecutorSpec,
    executors: usize,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let store = Store::connect(&config.redis_url).await?;
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let pool = ExecutorPool::start(spec, executors, "local", completions_tx).await?;
    run_core(store, config, pool, executors, completions, shutdown).await
}
