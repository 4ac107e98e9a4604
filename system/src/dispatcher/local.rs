//! `local` mode: the dispatcher runs its own pool of executors.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::capacity::Capacity;
use super::core::{CoreParts, run_core};
use super::{DispatcherConfig, DispatcherError, DispatcherMetrics, Transport};
use crate::executor::{ExecutorKind, ExecutorPool, Job};
use crate::protocol::Completion;
use crate::store::Store;
use crate::task::TaskId;

impl Transport for ExecutorPool {
    async fn dispatch(&mut self, job: Job) -> Result<(), Job> {
        self.submit(job).await
    }

    async fn cancel(&mut self, task: TaskId) {
        ExecutorPool::cancel(self, task);
    }

    /// The pool's completions go straight to the core: nothing to acknowledge.
    async fn recorded(&mut self, _tasks: Vec<TaskId>) {}

    async fn shutdown(self, grace: Duration) {
        ExecutorPool::shutdown(self, grace).await;
    }
}

/// Runs a local-mode dispatcher with `executors` executors of `kind` until `shutdown`. Up to
/// `prefetch` further tasks per executor wait in the pool's one shared queue (so a long task
/// never holds others back while an executor is free), and an executor that finishes starts
/// its next task at once instead of after the Redis round trips of a fetch.
pub async fn run(
    config: DispatcherConfig,
    kind: ExecutorKind,
    executors: usize,
    prefetch: usize,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let store = Store::connect(&config.redis_url)
        .await?
        .with_retention(config.retention)
        .with_replicas(config.replicas);
    let (pool_tx, mut pool_rx) = mpsc::unbounded_channel::<Completion>();
    let places = executors * (1 + prefetch);
    let pool = ExecutorPool::start(kind, executors, places, "local", pool_tx).await?;
    let capacity = Arc::new(Capacity::local(places));
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let freed = capacity.clone();
    // Every job the pool was given comes back as one completion (cancelled ones too), which
    // frees its place.
    tokio::spawn(async move {
        while let Some(done) = pool_rx.recv().await {
            freed.task_done();
            if completions_tx.send(done).is_err() {
                return;
            }
        }
    });
    let metrics = Arc::new(DispatcherMetrics::default());
    metrics.executors.set(executors as u64);
    let parts = CoreParts {
        store,
        config,
        transport: pool,
        capacity,
        completions,
        metrics,
    };
    run_core(parts, shutdown).await
}
