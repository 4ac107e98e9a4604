//! The Redis store: function and task records, the durable queue, and the task state
//! transitions, each transition one Lua script so it is atomic and first-wins.
//!
//! # Layout
//!
//! - [`keys`]: every key and field, documented in one place.
//! - `records`: registering functions, submitting tasks, reading statuses, results and
//!   timelines.
//! - `transitions`: start, finish, cancel and requeue, each one script over a batch of tasks.
//! - `queue`: the stream and its consumer group: reads, queue depth, dispatcher liveness,
//!   and the pending entries of dead dispatchers.
//! - `scripts`: the one way to call a Lua script (`scripts/*.lua`).
//! - [`channel`]: following the pub/sub channels of task ids.

pub mod channel;
mod error;
pub mod keys;
mod queue;
mod records;
mod scripts;
#[cfg(test)]
mod testing;
mod transitions;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use error::StoreError;
pub use queue::{OrphanedEntry, QueueEntry, QueueReader, QueueStats};
pub use records::{TaskResult, TaskTimeline};
pub use transitions::{FinalOutcome, FinishOutcome, RequeueOutcome, StartOutcome};

/// How long one command may take before the connection is considered broken. Generous,
/// because a 10 MB payload on a loaded machine is slow, and blocking reads add their own wait.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a final task (its status, result and timeline) is kept by default: a day, as
/// Celery keeps results.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A handle on the store. Cheap to clone; clones share one multiplexed, self-reconnecting
/// connection.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    /// How long a task is kept once final; `None`: forever.
    retention: Option<Duration>,
}

impl Store {
    /// Connects (and later reconnects by itself) to the Redis at `url`. Final tasks are kept
    /// for [`DEFAULT_RETENTION`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = connect(url, RESPONSE_TIMEOUT).await?;
        Ok(Self {
            conn,
            retention: Some(DEFAULT_RETENTION),
        })
    }

    /// Keeps the tasks this handle makes final for `retention` (`None`: forever); each
    /// expires that long after it became final.
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// The retention as the scripts take it: milliseconds, 0 for forever.
    fn retention_ms(&self) -> u64 {
        self.retention.map_or(0, |r| {
            u64::try_from(r.as_millis()).unwrap_or(u64::MAX).max(1)
        })
    }

    /// Answers whether Redis is reachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// A self-reconnecting connection to the Redis at `url` whose commands may take up to
/// `response_timeout`.
async fn connect(url: &str, response_timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}
