//! `local` mode: the dispatcher runs its own pool of executor processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{DispatcherConfig, DispatcherError, Transport, run_core};
use crate::executor::{Completion, ExecutorPool, ExecutorSpec, Job};
use crate::store::Store;

impl Transport for ExecutorPool {
    async fn dispatch(&mut self, job: Job) -> Result<(), Job> {
        self.submit(job).await
    }

    async fn shutdown(self, grace: Duration) {
        ExecutorPool::shutdown(self, grace).await;
    }
}

/// Runs a local-mode dispatcher with `executors` Python processes until `shutdown`. Up to
/// `prefetch` further tasks per executor wait in the pool's queue, so an executor that
/// finishes starts its next task at once instead of after the Redis round trips of a fetch.
pub async fn run(
    config: DispatcherConfig,
    spec: ExecutorSpec,
    executors: usize,
    prefetch: usize,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let store = Store::connect(&config.redis_url).await?;
    let (pool_tx, mut pool_rx) = mpsc::unbounded_channel::<Completion>();
    let places = executors * (1 + prefetch);
    let pool = ExecutorPool::start(spec, executors, places, "local", pool_tx).await?;
    // Every finished job frees a place: hand it back to the fetcher.
    let capacity = Arc::new(Semaphore::new(places));
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let freed = capacity.clone();
    tokio::spawn(async move {
        while let Some(done) = pool_rx.recv().await {
            freed.add_permits(1);
            if completions_tx.send(done).is_err() {
                return;
            }
        }
    });
    run_core(store, config, pool, capacity, completions, shutdown).await
}
