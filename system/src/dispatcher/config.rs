//! What a dispatcher is told: its dispatch mode and the settings every mode shares.

use std::time::Duration;

use crate::task::TaskId;

/// Attempts beyond the first for a task whose worker or dispatcher was lost.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// How long tasks in hand may finish after a shutdown request before they are abandoned (and
/// requeued).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A dispatcher silent for this long is dead and its tasks are requeued by the others.
pub const DEFAULT_LIVENESS_TTL: Duration = Duration::from_secs(5);

/// How long an entry may stay pending for a live dispatcher that does not hold its task before
/// that dispatcher requeues it (a read whose reply was lost, a start or record that failed).
pub const DEFAULT_RECLAIM_AFTER: Duration = Duration::from_secs(10);

/// The default per-task deadline.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);
/// Tasks kept waiting per executor beyond the one it runs, in every mode (local: in the pool's
/// shared queue; push: at each worker; pull: what a worker asks for once its executors are
/// busy), so that an executor starts its next task without waiting on a round trip to Redis
/// or the dispatcher. Under a no-op burst, remote modes with one task waiting per executor ran
/// at about a third of local's rate; waiting tasks only cost an attempt each if their holder
/// dies.
pub const DEFAULT_PREFETCH: u32 = 4;

/// How tasks reach executors: the dispatch mode. One type for the dispatcher's `-m`,
/// `faas up --mode` and loadgen's experiments.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The dispatcher runs its own pool of executors; no workers.
    Local,
    /// Workers (`pull_worker`) ask the dispatcher for tasks over ZeroMQ REQ.
    Pull,
    /// The dispatcher sends tasks to workers (`push_worker`) over ZeroMQ, with heartbeats.
    Push,
}

impl Mode {
    /// The name `-m` takes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Pull => "pull",
            Self::Push => "push",
        }
    }

    /// The worker binary of this mode, if it has workers.
    #[must_use]
    pub fn worker_binary(self) -> Option<&'static str> {
        match self {
            Self::Local => None,
            Self::Pull => Some("pull_worker"),
            Self::Push => Some("push_worker"),
        }
    }
}

/// Settings shared by every mode.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub redis_url: String,
    /// Attempts beyond the first for a task whose executor host was lost (0: fail at once).
    pub max_retries: u32,
    pub shutdown_grace: Duration,
    pub liveness_ttl: Duration,
    /// See [`DEFAULT_RECLAIM_AFTER`].
    pub reclaim_after: Duration,
    /// How long a task this dispatcher makes final is kept; `None`: forever.
    pub retention: Option<Duration>,
    /// Replicas a task's start must reach (Redis `WAIT`) before the task is handed out.
    pub replicas: u32,
    /// Per-task deadline on the executor; `None` for none.
    pub task_timeout: Option<Duration>,
    /// This dispatcher's consumer name in the queue's group; unique per process.
    pub consumer: String,
    /// Where to serve `/health` and `/metrics`; `None` for nowhere.
    pub http: Option<String>,
}

impl DispatcherConfig {
    /// Defaults for a dispatcher reading the Redis at `redis_url`, with a fresh consumer name.
    #[must_use]
    pub fn new(redis_url: impl Into<String>) -> Self {
        let host = crate::host::hostname();
        Self {
            redis_url: redis_url.into(),
            max_retries: DEFAULT_MAX_RETRIES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            liveness_ttl: DEFAULT_LIVENESS_TTL,
            reclaim_after: DEFAULT_RECLAIM_AFTER,
            retention: Some(crate::store::DEFAULT_RETENTION),
            replicas: 0,
            task_timeout: Some(DEFAULT_TASK_TIMEOUT),
            consumer: format!(
                "{host}:{}:{}",
                std::process::id(),
                &TaskId::new_random().to_string()[..8]
            ),
            http: None,
        }
    }

    /// Total attempts a task gets.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The serialized `WorkerFailure` a task is failed with when `cause` (a lost worker or
    /// dispatcher) leaves it out of attempts: the one wording of every such message.
    #[must_use]
    pub fn out_of_attempts(&self, cause: &str) -> String {
        super::worker_failure_result(&format!(
            "{cause}; the task has now been attempted {} time(s), the limit (--max-retries {})",
            self.max_attempts(),
            self.max_retries
        ))
    }
}
