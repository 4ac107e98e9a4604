//! The dispatcher core: takes tasks from the durable queue, hands them to a transport (a
//! dispatch mode), and records their outcomes with first-wins writes.
//!
//! - [`fetch`]: the queue reader, which only asks for as many tasks as there is capacity.
//! - [`recovery`]: this dispatcher's liveness marker, and requeueing what dead ones held.
//! - [`local`]: the `local` mode, the dispatcher's own executor pool.
//! - [`pull`] and [`push`]: remote workers over ZeroMQ (REQ and DEALER), sharing
//!   [`remote`] (the transport handle and settings) and [`registry`] (workers, liveness).
//!
//! Every task this dispatcher holds is an entry pending for its consumer in the queue's group,
//! so whatever it has not finished when it dies is found by the others (or by its successor).

mod cancel;
mod fetch;
pub mod local;
mod metrics;
pub mod pull;
pub mod push;
mod recovery;
pub mod registry;
pub mod remote;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::executor::Job;
use crate::payload::encode_payload;
use crate::pickle::worker_failure_pickle;
use crate::protocol::Completion;
use crate::store::{FinalOutcome, QueueEntry, StartOutcome, Store, StoreError};
use crate::task::{FunctionId, TaskId, TaskOutcome, TaskStatus, now_micros};
pub use metrics::DispatcherMetrics;
use metrics::Timeline;

/// Attempts beyond the first for a task whose worker or dispatcher was lost.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// How long tasks in hand may finish after a shutdown request before they are abandoned (and
/// requeued).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A dispatcher silent for this long is dead and its tasks are requeued by the others.
pub const DEFAULT_LIVENESS_TTL: Duration = Duration::from_secs(5);

/// The default per-task deadline.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);

/// Most completions recorded in one Redis round trip.
const RECORD_BATCH: usize = 256;
/// Function bodies kept in memory; past this the cache starts over (bodies are immutable, so
/// refetching is always correct).
const FUNCTION_CACHE_SIZE: usize = 1024;

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
}

/// Why a dispatcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("redis: {0}")]
    Store(#[from] StoreError),
    #[error("python environment: {0}")]
    Python(#[from] crate::executor::python_env::PythonEnvError),
    #[error("executors: {0}")]
    Executors(#[from] crate::executor::process::SpawnError),
    #[error("cannot listen for workers on {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("cannot serve /health and /metrics on {addr}: {source}")]
    Http {
        addr: String,
        source: std::io::Error,
    },
}

/// How jobs reach executors: what a dispatch mode implements. A transport owns the capacity
/// semaphore it is started with: it adds a permit for each executor place that becomes free
/// (and may forget permits when places vanish); the core's fetcher takes one per task.
pub trait Transport {
    /// Hands a started task to an executor; gives it back if the transport is closing.
    fn dispatch(&mut self, job: Job) -> impl Future<Output = Result<(), Job>> + Send;
    /// Stops a task this transport was given (cancelled through the API): its executor is
    /// killed and replaced, or it is never started. Its completion still comes back.
    fn cancel(&mut self, task: TaskId) -> impl Future<Output = ()> + Send;
    /// Stops taking jobs; jobs in hand get `grace` to finish, then are abandoned unreported.
    fn shutdown(self, grace: Duration) -> impl Future<Output = ()> + Send;
}

/// A serialized `WorkerFailure` carrying `message`, as stored in a task's `result`.
#[must_use]
pub fn worker_failure_result(message: &str) -> String {
    encode_payload(&worker_failure_pickle(message))
}

/// A task handed to the transport.
struct InFlight {
    entry: QueueEntry,
    submitted_at: Option<u64>,
    dispatched_at: u64,
}

/// The state of one running dispatcher.
struct Core {
    store: Store,
    config: DispatcherConfig,
    /// Free executor places; the fetcher asks the queue for at most this many tasks.
    capacity: Arc<Semaphore>,
    /// Tasks handed to the transport and not yet recorded.
    in_flight: HashMap<TaskId, InFlight>,
    metrics: Arc<DispatcherMetrics>,
    functions: HashMap<FunctionId, Arc<str>>,
    /// Cancelled once the shutdown grace has passed: Redis retries stop.
    give_up: CancellationToken,
}

/// What every mode hands the core.
struct CoreParts<T> {
    store: Store,
    config: DispatcherConfig,
    transport: T,
    /// Managed by the transport (see [`Transport`]).
    capacity: Arc<Semaphore>,
    /// The queue is read once this many places are free (see [`fetch::run`]).
    refill_at: u32,
    completions: mpsc::UnboundedReceiver<Completion>,
    metrics: Arc<DispatcherMetrics>,
}

/// Runs the core until `shutdown`.
async fn run_core<T: Transport>(
    parts: CoreParts<T>,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let CoreParts {
        store,
        config,
        mut transport,
        capacity,
        refill_at,
        mut completions,
        metrics,
    } = parts;
    let http = match &config.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DispatcherError::Http {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    store.ensure_queue_group().await?;
    store
        .mark_dispatcher_alive(&config.consumer, config.liveness_ttl)
        .await?;
    let stop = shutdown.child_token();
    let (entries_tx, mut entries) = mpsc::channel(16);
    let fetcher = tokio::spawn(fetch::run(
        store.clone(),
        config.redis_url.clone(),
        config.consumer.clone(),
        capacity.clone(),
        refill_at,
        entries_tx,
        stop.clone(),
    ));
    let recovery = tokio::spawn(recovery::run(store.clone(), config.clone(), stop.clone()));
    let (cancels_tx, mut cancels) = mpsc::unbounded_channel();
    let canceller = tokio::spawn(cancel::follow(
        config.redis_url.clone(),
        cancels_tx,
        stop.clone(),
    ));
    let http = http.map(|listener| {
        tokio::spawn(metrics::serve(
            listener,
            store.clone(),
            metrics.clone(),
            config.consumer.as_str().into(),
            stop.clone(),
        ))
    });
    tracing::info!(consumer = %config.consumer, "dispatcher running");

    let mut core = Core {
        store,
        config,
        capacity,
        in_flight: HashMap::new(),
        metrics,
        functions: HashMap::new(),
        give_up: CancellationToken::new(),
    };
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = completions.recv() => core.record(done, &mut completions).await,
            Some(task) = cancels.recv() => {
                if core.in_flight.contains_key(&task) {
                    tracing::info!(task_id = %task, "stopping a cancelled task");
                    transport.cancel(task).await;
                }
            }
            Some(batch) = entries.recv() => core.start(batch, &mut transport).await,
        }
    }

    // Shutdown: finish what is in hand within the grace period, then requeue the rest.
    let grace = core.config.shutdown_grace;
    tracing::info!(
        in_flight = core.in_flight.len(),
        ?grace,
        "dispatcher stopping"
    );
    let deadline = tokio::time::Instant::now() + grace;
    while !core.in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, completions.recv()).await {
            Ok(Some(done)) => core.record(done, &mut completions).await,
            _ => break,
        }
    }
    transport.shutdown(Duration::ZERO).await;
    core.give_up.cancel();
    let _ = fetcher.await;
    let _ = recovery.await;
    let _ = canceller.await;
    if let Some(http) = http {
        let _ = http.await;
    }
    core.release_held().await;
    Ok(())
}

impl Core {
    /// Marks received entries RUNNING and hands them to the transport.
    async fn start<T: Transport>(&mut self, batch: Vec<QueueEntry>, transport: &mut T) {
        let worker = self.config.consumer.clone();
        let store = self.store.clone();
        let Some(outcomes) = self
            .retry("start tasks", || store.start_tasks(&batch, &worker))
            .await
        else {
            // Left pending for this consumer; requeued at shutdown or by a successor.
            return;
        };
        for (entry, outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                StartOutcome::Started {
                    function_id,
                    params,
                    attempt,
                    submitted_at,
                } => {
                    let Some(function) = self.function(function_id).await else {
                        let message = format!("function {function_id} is not registered");
                        self.finish_now(entry.task_id, TaskOutcome::WorkerFailure(message))
                            .await;
                        continue;
                    };
                    tracing::debug!(task_id = %entry.task_id, attempt, "dispatching");
                    let task_id = entry.task_id;
                    self.in_flight.insert(
                        task_id,
                        InFlight {
                            entry,
                            submitted_at,
                            dispatched_at: now_micros(),
                        },
                    );
                    self.metrics.in_flight.set(self.in_flight.len() as u64);
                    let job = Job {
                        task_id,
                        function_id,
                        function,
                        params,
                        timeout: self.config.task_timeout,
                    };
                    if transport.dispatch(job).await.is_err() {
                        tracing::warn!(%task_id, "transport closed; task left for requeue");
                    }
                }
                StartOutcome::Dropped(reason) => {
                    tracing::debug!(task_id = %entry.task_id, reason, "queue entry dropped");
                    self.capacity.add_permits(1);
                }
            }
        }
    }

    /// Records `first` and whatever other completions are already waiting, in one round trip.
    async fn record(&mut self, first: Completion, more: &mut mpsc::UnboundedReceiver<Completion>) {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match more.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for done in batch {
            match done.outcome {
                TaskOutcome::Lost(reason) => self.requeue_lost(done.task_id, &reason).await,
                _ => outcomes.push(final_outcome(done)),
            }
        }
        if outcomes.is_empty() {
            return;
        }
        let store = self.store.clone();
        let recorded = self
            .retry("record results", || store.finish_tasks(&outcomes))
            .await;
        let now = now_micros();
        for (i, outcome) in outcomes.iter().enumerate() {
            let held = self.in_flight.remove(&outcome.task_id);
            match recorded.as_ref().map(|r| r[i]) {
                Some(false) => {
                    tracing::debug!(task_id = %outcome.task_id, "late result dropped: task already final");
                }
                Some(true) => self.metrics.finished(
                    outcome.status,
                    &Timeline {
                        submitted: held.as_ref().and_then(|h| h.submitted_at),
                        dispatched: held.as_ref().map(|h| h.dispatched_at),
                        started: outcome.started_at,
                        finished: Some(outcome.finished_at),
                        recorded: Some(now),
                    },
                ),
                None => {}
            }
        }
        self.metrics.in_flight.set(self.in_flight.len() as u64);
    }

    /// A task whose worker was lost goes back on the queue, or fails once out of attempts.
    async fn requeue_lost(&mut self, task_id: TaskId, reason: &str) {
        let Some(InFlight { entry, .. }) = self.in_flight.remove(&task_id) else {
            return; // not ours (any more): whoever holds it decides
        };
        self.metrics.in_flight.set(self.in_flight.len() as u64);
        let failure = worker_failure_result(&format!(
            "{reason}; the task has now been attempted {} time(s), the limit (--max-retries {})",
            self.config.max_attempts(),
            self.config.max_retries
        ));
        let store = self.store.clone();
        let max_attempts = self.config.max_attempts();
        let outcome = self
            .retry("requeue a lost task", || {
                store.requeue_task(&entry, max_attempts, &failure)
            })
            .await;
        tracing::info!(%task_id, reason, ?outcome, "lost task handled");
        if let Some(outcome) = outcome {
            self.metrics.requeued(outcome.as_str());
        }
    }

    /// Fails a started task that never reached the transport.
    async fn finish_now(&mut self, task_id: TaskId, outcome: TaskOutcome) {
        let done = Completion {
            task_id,
            outcome,
            started_at: None,
            finished_at: now_micros(),
            executor: None,
        };
        let store = self.store.clone();
        let outcomes = [final_outcome(done)];
        self.retry("record results", || store.finish_tasks(&outcomes))
            .await;
        // The transport never saw this task: its place is free again.
        self.capacity.add_permits(1);
    }

    /// The function body, from memory or Redis; `None` if it is not registered.
    async fn function(&mut self, id: FunctionId) -> Option<Arc<str>> {
        if let Some(body) = self.functions.get(&id) {
            return Some(body.clone());
        }
        let store = self.store.clone();
        let body: Arc<str> = self
            .retry("load function", || store.function_body(id))
            .await??
            .into();
        if self.functions.len() >= FUNCTION_CACHE_SIZE {
            self.functions.clear();
        }
        self.functions.insert(id, body.clone());
        Some(body)
    }

    /// Puts every entry still pending for this consumer back on the queue and retires it.
    async fn release_held(&self) {
        let consumer = &self.config.consumer;
        match self.store.pending_entries(consumer).await {
            Ok(held) => {
                let failure = worker_failure_result(&format!(
                    "dispatcher {consumer} stopped while running the task, which has now been \
                     attempted {} time(s), the limit",
                    self.config.max_attempts()
                ));
                for orphan in held {
                    match self
                        .store
                        .requeue_task(&orphan.entry, self.config.max_attempts(), &failure)
                        .await
                    {
                        Ok(outcome) => {
                            tracing::info!(task_id = %orphan.entry.task_id, ?outcome, "released task")
                        }
                        Err(e) => {
                            tracing::warn!(task_id = %orphan.entry.task_id, error = %e, "cannot release task; it is recovered once this dispatcher's liveness expires")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list held tasks; they are recovered once this dispatcher's liveness expires")
            }
        }
        if let Err(e) = self.store.retire_dispatcher(consumer).await {
            tracing::warn!(error = %e, "cannot retire consumer");
        }
    }

    /// Runs a store operation, retrying while Redis is unavailable until it succeeds or the
    /// dispatcher gives up at the end of shutdown. Other errors are logged and give `None`.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match op().await {
                Ok(value) => return Some(value),
                Err(e) if e.is_unavailable() && !self.give_up.is_cancelled() => {
                    tracing::warn!(error = %e, what, "redis unavailable; retrying");
                    tokio::select! {
                        () = self.give_up.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, what, "store operation failed");
                    return None;
                }
            }
        }
    }
}

/// The record a completion becomes: the one place task outcomes map to statuses. (`Lost` only
/// gets here if it is final; the core requeues it instead while attempts remain.)
fn final_outcome(done: Completion) -> FinalOutcome {
    let (status, result) = match done.outcome {
        TaskOutcome::Completed(value) => (TaskStatus::Completed, value),
        TaskOutcome::Raised(exception) => (TaskStatus::Failed, exception),
        TaskOutcome::WorkerFailure(message) | TaskOutcome::Lost(message) => {
            (TaskStatus::Failed, worker_failure_result(&message))
        }
    };
    FinalOutcome {
        task_id: done.task_id,
        status,
        result,
        started_at: done.started_at,
        finished_at: done.finished_at,
        executor: done.executor,
    }
}
