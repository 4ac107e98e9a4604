//! The queue reader: asks Redis for as many new tasks as there are free places (see
//! [`Capacity`]), and blocks in Redis (not in a sleep) until one arrives, so an idle
//! dispatcher gets a new task the moment it is queued.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::capacity::Capacity;
use crate::store::{QueueEntry, QueueReader, Store};

/// Longest a read blocks; bounds how long shutdown waits for the reader.
const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Most entries taken in one read, unless the refill threshold asks for more at once.
const MAX_BATCH: usize = 256;

/// Reads until `stop`, whenever the capacity's refill threshold of places is free (then for
/// all free places): under load, fewer and larger reads. Each entry sent on `entries` took a
/// place; whoever sees the task end reports it to `capacity`.
pub async fn run(
    store: Store,
    redis_url: String,
    consumer: String,
    capacity: Arc<Capacity>,
    entries: mpsc::Sender<Vec<QueueEntry>>,
    stop: CancellationToken,
) {
    let Some(mut reader) = connect(&redis_url, &stop).await else {
        return;
    };
    let mut generation = store.primary_generation();
    loop {
        if store.primary_generation() != generation {
            // The store moved to a new primary (a Sentinel failover): so does the reader, even
            // if the old one still answers.
            generation = store.primary_generation();
            match connect(&redis_url, &stop).await {
                Some(fresh) => reader = fresh,
                None => return,
            }
        }
        let places = tokio::select! {
            () = stop.cancelled() => return,
            places = capacity.reserve(MAX_BATCH) => match places {
                Some(places) => places,
                None => return,
            },
        };
        // Not raced against `stop`: a read abandoned mid-flight would leave delivered entries
        // nobody handles until this dispatcher's liveness expired.
        let read = Store::read_queue(&mut reader, &consumer, places.count(), READ_BLOCK).await;
        match read {
            Ok(batch) => {
                places.start(batch.len());
                if !batch.is_empty() && entries.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                drop(places);
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
                // Anew, so that a Sentinel address names the primary again (after a
                // failover, the old one is gone or read-only).
                match connect(&redis_url, &stop).await {
                    Some(fresh) => reader = fresh,
                    None => return,
                }
            }
        }
    }
}

/// A queue reader, retrying until it connects; `None` once `stop` is cancelled first.
async fn connect(redis_url: &str, stop: &CancellationToken) -> Option<QueueReader> {
    loop {
        match QueueReader::connect(redis_url, READ_BLOCK).await {
            Ok(reader) => return Some(reader),
            Err(e) => {
                tracing::warn!(error = %e, "queue reader cannot connect; retrying");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
