//! Keeping this dispatcher's liveness marker fresh, and requeueing the tasks of dispatchers
//! whose marker expired (killed, crashed, or partitioned away).

use tokio_util::sync::CancellationToken;

use super::DispatcherConfig;
use crate::store::{RequeueOutcome, Store};

/// Runs until `stop`: refreshes the marker three times per TTL and scans for orphans.
pub async fn run(store: Store, config: DispatcherConfig, stop: CancellationToken) {
    let interval = config.liveness_ttl / 3;
    loop {
        match store
            .refresh_dispatcher_liveness(&config.consumer, config.liveness_ttl)
            .await
        {
            Ok(true) => {}
            // Its results for tasks peers requeued meanwhile are fenced off (their claims are
            // lost); the rest it keeps running and recording.
            Ok(false) => tracing::warn!(
                ttl = ?config.liveness_ttl,
                "this dispatcher's liveness lapsed (paused, or cut off from Redis): its peers \
                 may have requeued the tasks it held, and its results for those will be dropped"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot refresh dispatcher liveness"),
        }
        if let Err(e) = requeue_orphans(&store, &config).await {
            tracing::warn!(error = %e, "cannot scan for orphaned tasks");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn requeue_orphans(
    store: &Store,
    config: &DispatcherConfig,
) -> Result<(), crate::store::StoreError> {
    for orphan in store.orphaned_entries(&config.consumer).await? {
        let failure = config.out_of_attempts(&format!(
            "dispatcher {} was lost while holding the task",
            orphan.consumer
        ));
        let outcome = store
            .requeue_task(&orphan.entry, config.max_attempts(), &failure)
            .await?;
        match outcome {
            RequeueOutcome::Requeued => {
                tracing::info!(task_id = %orphan.entry.task_id, from = %orphan.consumer, "requeued a task from a lost dispatcher")
            }
            RequeueOutcome::Failed => {
                tracing::warn!(task_id = %orphan.entry.task_id, from = %orphan.consumer, "task failed: out of attempts after its dispatcher was lost")
            }
            RequeueOutcome::Skipped => {}
        }
    }
    Ok(())
}
