//! The dispatcher core's loop: fetched tasks are started (marked RUNNING) and handed to the
//! transport, completions are recorded (see [`super::record`]), cancellations are passed on,
//! and at shutdown what is in hand gets a grace period before it is requeued.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::capacity::Capacity;
use super::in_flight::{InFlight, InFlightTable};
use super::{
    DispatcherConfig, DispatcherError, DispatcherMetrics, Transport, cancel, fetch, metrics,
    recovery,
};
use crate::executor::Job;
use crate::protocol::Completion;
use crate::store::{QueueEntry, StartOutcome, Store, StoreError};
use crate::task::{FunctionId, TaskOutcome, now_micros};

/// Function bodies kept in memory.
const FUNCTION_CACHE_SIZE: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

/// The state of one running dispatcher.
pub(super) struct Core {
    pub store: Store,
    pub config: DispatcherConfig,
    /// The places tasks take (see [`Capacity`]): the core frees those of tasks that never
    /// reach the transport, and closes them at shutdown.
    pub capacity: Arc<Capacity>,
    pub in_flight: InFlightTable,
    pub metrics: Arc<DispatcherMetrics>,
    /// Function bodies, most recently used kept (bodies are immutable, so refetching one
    /// is always correct).
    functions: LruCache<FunctionId, Arc<str>>,
    /// Cancelled once the shutdown grace has passed: Redis retries stop.
    give_up: CancellationToken,
}

/// What every mode hands the core.
pub(super) struct CoreParts<T> {
    pub store: Store,
    pub config: DispatcherConfig,
    pub transport: T,
    /// Shared with the transport, which reports the events that free or withdraw places.
    pub capacity: Arc<Capacity>,
    pub completions: mpsc::UnboundedReceiver<Completion>,
    pub metrics: Arc<DispatcherMetrics>,
}

/// Runs the core until `shutdown`.
pub(super) async fn run_core<T: Transport>(
    parts: CoreParts<T>,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let CoreParts {
        store,
        config,
        mut transport,
        capacity,
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
    let mut reclaim = tokio::time::interval_at(
        tokio::time::Instant::now() + config.reclaim_after,
        (config.reclaim_after / 2).max(Duration::from_millis(100)),
    );
    reclaim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(consumer = %config.consumer, "dispatcher running");
    crate::readiness::notify(crate::readiness::Ready::DispatcherRunning);

    let mut core = Core {
        store,
        config,
        capacity,
        in_flight: InFlightTable::new(metrics.clone()),
        metrics,
        functions: LruCache::new(FUNCTION_CACHE_SIZE),
        give_up: CancellationToken::new(),
    };
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = completions.recv() => core.record(done, &mut completions, &mut transport).await,
            Some(task) = cancels.recv() => {
                if core.in_flight.contains(task) {
                    tracing::info!(task_id = %task, "stopping a cancelled task");
                    transport.cancel(task).await;
                }
            }
            Some(batch) = entries.recv() => core.start(batch, &mut transport).await,
            _ = reclaim.tick() => core.reclaim_stranded().await,
        }
    }

    // Shutdown: nothing more is fetched; what is in hand may finish within the grace period,
    // then the rest is requeued.
    core.capacity.shutdown();
    let grace = core.config.shutdown_grace;
    tracing::info!(
        in_flight = core.in_flight.len(),
        ?grace,
        "dispatcher stopping"
    );
    let deadline = tokio::time::Instant::now() + grace;
    while !core.in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, completions.recv()).await {
            Ok(Some(done)) => core.record(done, &mut completions, &mut transport).await,
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
    pub async fn start<T: Transport>(&mut self, batch: Vec<QueueEntry>, transport: &mut T) {
        let dispatcher = self.config.consumer.clone();
        let store = self.store.clone();
        let Some(outcomes) = self
            .retry("start tasks", || store.start_tasks(&batch, &dispatcher))
            .await
        else {
            // Left pending for this consumer; requeued at shutdown or by a successor. The
            // transport never sees them: their places are free again.
            for _ in &batch {
                self.capacity.task_done();
            }
            return;
        };
        for (entry, outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                StartOutcome::Started {
                    function_id,
                    params,
                    attempt,
                    submitted_at,
                    registered,
                } => {
                    if self.in_flight.contains(entry.task_id) {
                        // A peer requeued a task this dispatcher still runs (it was away past
                        // its liveness) and this dispatcher took the new entry: the execution
                        // in hand answers for it, and no second one starts here.
                        tracing::info!(task_id = %entry.task_id, "took back a task still in hand");
                        self.in_flight.move_claim(entry);
                        self.capacity.task_done();
                        continue;
                    }
                    let function = if registered {
                        self.function(function_id).await
                    } else {
                        self.functions.pop(&function_id);
                        None
                    };
                    let Some(function) = function else {
                        let message = format!(
                            "function {function_id} was deleted before the task could start"
                        );
                        let outcome = TaskOutcome::WorkerFailure(message);
                        self.finish_now(entry.task_id, &entry.entry_id, outcome)
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
                    let job = Job {
                        task_id,
                        function_id,
                        function,
                        params,
                        timeout: self.config.task_timeout,
                    };
                    if transport.dispatch(job).await.is_err() {
                        tracing::warn!(%task_id, "transport closed; task left for requeue");
                        self.capacity.task_done();
                    }
                }
                StartOutcome::Dropped(reason) => {
                    tracing::debug!(task_id = %entry.task_id, reason, "queue entry dropped");
                    self.capacity.task_done();
                }
            }
        }
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
        self.functions.put(id, body.clone());
        Some(body)
    }

    /// Requeues the entries pending for this dispatcher whose tasks it does not hold: delivered
    /// by a read whose reply was lost, or left by a start or record that failed for good.
    /// Entries idle for less than `reclaim_after` are left alone: they may be on their way
    /// from the fetcher (and requeueing one that is not only supersedes it: its start drops it).
    pub async fn reclaim_stranded(&mut self) {
        let consumer = &self.config.consumer;
        let pending = match self
            .store
            .pending_entries_idle(consumer, self.config.reclaim_after)
            .await
        {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this dispatcher's pending entries");
                return;
            }
        };
        let failure = self
            .config
            .out_of_attempts(&format!("dispatcher {consumer} lost track of the task"));
        for stranded in pending
            .into_iter()
            .filter(|p| !self.in_flight.contains(p.entry.task_id))
        {
            let task_id = stranded.entry.task_id;
            match self
                .store
                .requeue_task(&stranded.entry, self.config.max_attempts(), &failure)
                .await
            {
                Ok(outcome) => {
                    tracing::warn!(%task_id, ?outcome, "reclaimed a stranded queue entry");
                    self.metrics.requeued(outcome.as_str());
                }
                Err(e) => {
                    tracing::warn!(%task_id, error = %e, "cannot reclaim a stranded queue entry")
                }
            }
        }
    }

    /// Puts every entry still pending for this consumer back on the queue and retires it.
    /// If any cannot be put back, the consumer is kept (deleting it would drop them for
    /// good) and only its liveness ends, so that the next recovery scan takes them.
    pub async fn release_held(&self) {
        let consumer = &self.config.consumer;
        let mut released = true;
        match self.store.pending_entries(consumer).await {
            Ok(held) => {
                let failure = self.config.out_of_attempts(&format!(
                    "dispatcher {consumer} stopped while running the task"
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
                            released = false;
                            tracing::warn!(task_id = %orphan.entry.task_id, error = %e, "cannot release task; it is recovered once this dispatcher's liveness expires")
                        }
                    }
                }
            }
            Err(e) => {
                released = false;
                tracing::warn!(error = %e, "cannot list held tasks; they are recovered once this dispatcher's liveness expires")
            }
        }
        let retired = if released {
            self.store.retire_dispatcher(consumer).await
        } else {
            self.store.end_liveness(consumer).await
        };
        if let Err(e) = retired {
            tracing::warn!(error = %e, "cannot retire consumer");
        }
    }

    /// Runs a store operation, retrying with backoff while the error is transient (Redis
    /// away, out of memory, read-only...: see [`StoreError::is_transient`]) until it succeeds
    /// or the dispatcher gives up at the end of shutdown; meanwhile `/health` says the
    /// dispatcher is degraded, and why. Other errors are logged and give `None` (what they
    /// leave pending is reclaimed by [`Core::reclaim_stranded`]).
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        let mut failed = false;
        loop {
            match op().await {
                Ok(value) => {
                    if failed {
                        tracing::info!(what, "redis serves again");
                    }
                    // Whichever operation failed last, one that succeeds shows Redis serves.
                    self.metrics.set_degraded(None);
                    return Some(value);
                }
                Err(e) if e.is_transient() && !self.give_up.is_cancelled() => {
                    tracing::warn!(error = %e, what, "redis refused or unavailable; retrying");
                    self.metrics
                        .set_degraded(Some(format!("cannot {what}: {e}")));
                    failed = true;
                    tokio::select! {
                        () = self.give_up.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, what, "store operation failed");
                    // Not retried: nothing is waiting on Redis any more (what it left pending
                    // is reclaimed later).
                    self.metrics.set_degraded(None);
                    return None;
                }
            }
        }
    }
}
