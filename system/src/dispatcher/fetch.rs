//! The queue reader: asks Redis for as many new tasks as there are free executor places, and
//! blocks in Redis (not in a sleep) until one arrives, so an idle dispatcher gets a new task
//! the moment it is queued.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::store::{QueueEntry, QueueReader, Store};

/// Longest a read blocks; bounds how long shutdown waits for the reader.
const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Most entries taken in one read, unless the refill threshold asks for more at once.
const MAX_BATCH: usize = 256;

/// Reads until `stop`, once at least `refill_at` places are free (then for all free places):
/// under load, fewer and larger reads. Each entry sent on `entries` consumed one permit of
/// `capacity`; the core returns it when the task is recorded or dropped.
pub async fn run(
    store: Store,
    redis_url: String,
    consumer: String,
    capacity: Arc<Semaphore>,
    refill_at: u32,
    entries: mpsc::Sender<Vec<QueueEntry>>,
    stop: CancellationToken,
) {
    let mut reader = loop {
        match QueueReader::connect(&redis_url, READ_BLOCK).await {
            Ok(reader) => break reader,
            Err(e) => {
                tracing::warn!(error = %e, "queue reader cannot connect; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        let mut permits = tokio::select! {
            () = stop.cancelled() => return,
            permit = capacity.clone().acquire_many_owned(refill_at) => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let extra = capacity
            .available_permits()
            .min(MAX_BATCH.saturating_sub(permits.num_permits()));
        if extra > 0
            && let Ok(more) = capacity.clone().try_acquire_many_owned(extra as u32)
        {
            permits.merge(more);
        }
        // Not raced against `stop`: a read abandoned mid-flight would leave delivered entries
        // nobody handles until this dispatcher's liveness expired.
        let read =
            Store::read_queue(&mut reader, &consumer, permits.num_permits(), READ_BLOCK).await;
        match read {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                if let Some(used) = permits.split(batch.len()) {
                    used.forget();
                }
                if entries.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if e.to_string().contains("NOGROUP") {
                    // The group vanished (a Redis restarted without persistence): recreate it.
                    let _ = store.ensure_queue_group().await;
                } else {
                    tracing::warn!(error = %e, "queue read failed; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}
