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
//! - [`address`]: where Redis is: a URL, or the primary Redis Sentinels name.

pub mod address;
pub mod channel;
mod error;
pub mod keys;
mod queue;
mod records;
mod replicated;
mod scripts;
#[cfg(test)]
pub(crate) mod testing;
mod transitions;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use address::RedisAddress;
pub use error::StoreError;
pub use queue::{OrphanedEntry, QueueEntry, QueueReader, QueueStats};
pub use records::{TaskResult, TaskTimeline};
use replicated::Replicated;
pub use transitions::{FinalOutcome, FinishOutcome, RequeueOutcome, StartOutcome};

/// How long one command may take before the connection is considered broken. Generous,
/// because a 10 MB payload on a loaded machine is slow, and blocking reads add their own wait.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a final task (its status, result and timeline) is kept by default: a day, as
/// Celery keeps results.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A handle on the store. Cheap to clone; clones share one multiplexed, self-reconnecting
/// connection, which follows the primary when the address is a Sentinel one.
#[derive(Clone)]
pub struct Store {
    primary: Arc<RwLock<ConnectionManager>>,
    /// Bumped each time the store moves to a new primary, for connections of their own (the
    /// queue reader) to follow.
    generation: Arc<AtomicU64>,
    /// How long a task is kept once final; `None`: forever.
    retention: Option<Duration>,
    /// Where Redis is.
    address: Arc<RedisAddress>,
    /// Set when submissions must reach replicas before they are acknowledged.
    replicated: Option<Arc<Replicated>>,
}

impl Store {
    /// Connects (and later reconnects by itself) to the Redis at `url` (see
    /// [`RedisAddress::parse`]); with a Sentinel address it follows the primary the Sentinels
    /// name for as long as any clone of the store lives. Final tasks are kept for
    /// [`DEFAULT_RETENTION`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let address = RedisAddress::parse(url)?;
        let serving = address.current().await?;
        let primary = Arc::new(RwLock::new(connect(&serving, RESPONSE_TIMEOUT).await?));
        let generation = Arc::new(AtomicU64::new(0));
        if let Some(every) = address.watch_every() {
            let lock = Arc::downgrade(&primary);
            let follow = follow_primary(lock, generation.clone(), address.clone(), serving, every);
            tokio::spawn(follow);
        }
        Ok(Self {
            primary,
            generation,
            retention: Some(DEFAULT_RETENTION),
            address: Arc::new(address),
            replicated: None,
        })
    }

    /// Acknowledges submissions and starts only once `replicas` replicas have them (Redis's
    /// `WAIT`), so that a failover to one of them loses no task the gateway accepted and no
    /// attempt of a task that runs; a write not confirmed in time is an error
    /// ([`StoreError::NotReplicated`]). Such writes go through a connection of their own, one
    /// at a time.
    #[must_use]
    pub fn with_replicas(mut self, replicas: u32) -> Self {
        self.replicated =
            (replicas > 0).then(|| Arc::new(Replicated::new((*self.address).clone(), replicas)));
        self
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

    /// How many times the store has moved to a new primary (see [`RedisAddress`]).
    #[must_use]
    pub fn primary_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The connection to the current primary.
    fn conn(&self) -> ConnectionManager {
        self.primary
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Answers whether Redis is reachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// Asks every `every` where the primary of `address` is, and moves `lock`'s connection there
/// when it changed, until the store is dropped.
async fn follow_primary(
    lock: Weak<RwLock<ConnectionManager>>,
    generation: Arc<AtomicU64>,
    address: RedisAddress,
    mut serving: String,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if lock.strong_count() == 0 {
            return;
        }
        let now = match address.current().await {
            Ok(now) if now != serving => now,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the Redis primary; keeping the last one");
                continue;
            }
        };
        match connect(&now, RESPONSE_TIMEOUT).await {
            // A Sentinel's view may lag: follow only a server that says it is a primary.
            Ok(conn) if is_primary(conn.clone()).await => {
                let Some(lock) = lock.upgrade() else {
                    return;
                };
                *lock
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = conn;
                generation.fetch_add(1, Ordering::Release);
                tracing::warn!(
                    primary = %crate::cluster::redis::redact(&now),
                    "the Redis primary changed; following it"
                );
                serving = now;
            }
            Ok(_) => tracing::warn!(
                named = %crate::cluster::redis::redact(&now),
                "the server a Sentinel names is no primary (yet); keeping the last one"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot connect to the new Redis primary yet"),
        }
    }
}

/// Whether the server on `conn` says (`ROLE`) it is a primary.
async fn is_primary(mut conn: ConnectionManager) -> bool {
    let role: Result<Vec<redis::Value>, _> = redis::cmd("ROLE").query_async(&mut conn).await;
    role.ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|first| redis::from_redis_value::<String>(first).ok())
        .is_some_and(|role| role == "master")
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
