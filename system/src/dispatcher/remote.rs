//! What the pull and push modes share: their settings, the transport handle the core talks to,
//! the ROUTER socket workers connect to, and the handling of results and lost workers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::registry::{DeadWorker, WorkerRegistry};
use super::{DispatcherError, Transport};
use crate::bridge::{Bridge, Inbound};
use crate::executor::{Completion, Job, TaskOutcome};
use crate::protocol::{ToWorker, WireTask};
use crate::task::{TaskId, now_micros};

/// Interval between heartbeats (push) and keep-alive answers to parked asks (pull).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Heartbeat intervals without a word after which a worker is dead.
pub const DEFAULT_MISSES: u32 = 3;
/// Tasks a push worker may hold beyond its executors.
pub const DEFAULT_PREFETCH: u32 = 1;

/// Settings of the remote modes.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Address to listen on; loopback unless workers are on other hosts.
    pub bind: String,
    pub port: u16,
    pub heartbeat: Duration,
    pub misses: u32,
    /// Push only: tasks beyond capacity a worker may hold, so it never waits on a round trip.
    pub prefetch: u32,
    /// When set, workers must present it when they register; others get no task.
    pub secret: Option<String>,
}

impl RemoteConfig {
    /// A worker silent for longer than this is dead.
    #[must_use]
    pub fn liveness(&self) -> Duration {
        self.heartbeat * self.misses
    }

    /// The `tcp://` endpoint the ROUTER binds.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("tcp://{}:{}", self.bind, self.port)
    }
}

/// The core's handle on a remote transport running as its own task.
pub struct RemoteTransport {
    jobs: mpsc::UnboundedSender<Job>,
    cancels: mpsc::UnboundedSender<TaskId>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Transport for RemoteTransport {
    async fn dispatch(&mut self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    async fn cancel(&mut self, task: TaskId) {
        let _ = self.cancels.send(task);
    }

    async fn shutdown(self, _grace: Duration) {
        // Tasks workers still hold are abandoned; the core requeues them, and the workers'
        // late results are accepted by whoever holds the tasks then.
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// What a remote mode decides; [`run`] supplies the sockets, the event loop and the core.
pub(super) trait RemoteMode: Send + 'static {
    /// A message from a worker, or a send that failed.
    fn on_inbound(&mut self, event: Inbound, now: Instant);
    /// A task the core started; it waits in the mode's backlog until a worker can take it.
    fn enqueue(&mut self, job: Job);
    /// Hands backlog tasks to workers that can take them.
    fn assign(&mut self, now: Instant);
    /// Stops a task cancelled through the API (see [`Workers::cancel`]).
    fn cancel(&mut self, task: TaskId);
    /// Periodic duties: liveness, heartbeats or keep-alives.
    fn on_tick(&mut self, now: Instant);
    /// How often [`Self::on_tick`] runs.
    fn tick_every(&self) -> Duration;
}

/// Runs a remote-mode dispatcher until `shutdown`: the mode is made from the worker socket
/// and the shared worker state.
pub(super) async fn run<M: RemoteMode>(
    config: super::DispatcherConfig,
    remote: RemoteConfig,
    shutdown: CancellationToken,
    make: impl FnOnce(Bridge, Workers) -> M,
) -> Result<(), DispatcherError> {
    let store = crate::store::Store::connect(&config.redis_url).await?;
    let (bridge, inbox) = listen(&remote)?;
    let capacity = Arc::new(Semaphore::new(0));
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let (cancels_tx, cancels) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let metrics = Arc::new(super::DispatcherMetrics::default());
    let workers = Workers {
        registry: WorkerRegistry::new(remote.liveness()),
        capacity: capacity.clone(),
        completions: completions_tx,
        config: remote,
        report_grace: Duration::from_secs(1),
        metrics: metrics.clone(),
    };
    let mode = make(bridge, workers);
    let task = tokio::spawn(serve(mode, inbox, jobs, cancels, stop.clone()));
    let transport = RemoteTransport {
        jobs: jobs_tx,
        cancels: cancels_tx,
        stop,
        task,
    };
    let parts = super::CoreParts {
        store,
        config,
        transport,
        capacity,
        // Workers come and go, so there is no fixed number of places to wait for.
        refill_at: 1,
        completions,
        metrics,
    };
    super::run_core(parts, shutdown).await
}

/// The mode's event loop: worker messages, new tasks and ticks, until `stop`.
async fn serve<M: RemoteMode>(
    mut mode: M,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut cancels: mpsc::UnboundedReceiver<TaskId>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(mode.tick_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(event) = inbox.recv() => mode.on_inbound(event, Instant::now()),
            Some(job) = jobs.recv() => {
                mode.enqueue(job);
                while let Ok(job) = jobs.try_recv() {
                    mode.enqueue(job);
                }
                mode.assign(Instant::now());
            }
            Some(task) = cancels.recv() => {
                // The core forwards a task before its cancellation: take what it sent first,
                // or the cancellation would find the task nowhere.
                while let Ok(job) = jobs.try_recv() {
                    mode.enqueue(job);
                }
                mode.cancel(task);
                mode.assign(Instant::now());
            }
            _ = tick.tick() => mode.on_tick(Instant::now()),
        }
    }
}

/// A worker's message, or `None` (logged) for a frame that is not one.
pub(super) fn decode(payload: &[u8]) -> Option<crate::protocol::ToDispatcher> {
    crate::protocol::decode(payload)
        .map_err(|e| tracing::warn!(error = %e, "dropping a malformed worker message"))
        .ok()
}

/// A ROUTER bound for workers, on a bridge thread; its events arrive on the returned channel.
fn listen(
    config: &RemoteConfig,
) -> Result<(Bridge, mpsc::UnboundedReceiver<Inbound>), DispatcherError> {
    let endpoint = config.endpoint();
    let bind_error = |source| DispatcherError::Bind {
        endpoint: endpoint.clone(),
        source,
    };
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).map_err(bind_error)?;
    // Without this a ROUTER silently drops messages to peers that are gone.
    router.set_router_mandatory(true).map_err(bind_error)?;
    router.set_sndhwm(0).map_err(bind_error)?;
    router.set_rcvhwm(0).map_err(bind_error)?;
    router.bind(&endpoint).map_err(bind_error)?;
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let bridge = Bridge::spawn(&ctx, vec![router], inbox_tx).map_err(bind_error)?;
    tracing::info!(%endpoint, "listening for workers");
    Ok((bridge, inbox))
}

/// State and steps both remote modes share.
pub(super) struct Workers {
    pub registry: WorkerRegistry,
    pub capacity: Arc<Semaphore>,
    pub completions: mpsc::UnboundedSender<Completion>,
    pub config: RemoteConfig,
    /// Slack added to a task's executor deadline before the dispatcher gives up on its worker.
    pub report_grace: Duration,
    pub metrics: Arc<super::DispatcherMetrics>,
}

impl Workers {
    /// Handles a `register`: refused without the right secret; otherwise (re)registers the
    /// worker, reports what a previous registration held as lost, and returns that previous
    /// registration (if any) with the `welcome` to send.
    pub fn register(
        &mut self,
        worker: &str,
        capacity: u32,
        secret: Option<&str>,
        identity: Vec<u8>,
        now: Instant,
    ) -> Result<(Option<DeadWorker>, ToWorker), ToWorker> {
        if !self.admits(secret) {
            return Err(Self::rejection(worker));
        }
        let previous = self.registry.register(worker, capacity, identity, now);
        if let Some(previous) = &previous {
            let reason = format!("worker {worker} re-registered without reporting the task");
            self.lost(previous.tasks.iter().copied(), &reason);
        }
        tracing::info!(%worker, capacity, "worker registered");
        let welcome = ToWorker::Welcome {
            heartbeat_ms: u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            misses: self.config.misses,
        };
        Ok((previous, welcome))
    }

    /// Whether a registration presenting `secret` may join.
    fn admits(&self, secret: Option<&str>) -> bool {
        match &self.config.secret {
            None => true,
            Some(expected) => secret.is_some_and(|given| {
                crate::secret::constant_time_eq(given.as_bytes(), expected.as_bytes())
            }),
        }
    }

    /// The answer to a refused registration.
    fn rejection(worker: &str) -> ToWorker {
        tracing::warn!(%worker, "registration refused: wrong or missing worker secret");
        ToWorker::Rejected {
            reason: "the dispatcher requires the worker secret (--worker-secret / FAAS_WORKER_SECRET) and this worker's is missing or wrong".into(),
        }
    }

    /// Forwards results to the core; returns the ids to acknowledge and how many of them a
    /// registered worker was holding. Results from unknown or dead workers count too: the
    /// store keeps the first final write.
    pub fn accept_results(&mut self, results: Vec<Completion>) -> (Vec<TaskId>, usize) {
        let mut ids = Vec::with_capacity(results.len());
        let mut held = 0;
        for done in results {
            ids.push(done.task_id);
            if self.registry.complete(done.task_id).is_some() {
                held += 1;
            }
            let _ = self.completions.send(done);
        }
        (ids, held)
    }

    /// Reports `tasks` lost (the core requeues or fails them).
    pub fn lost(&self, tasks: impl IntoIterator<Item = TaskId>, reason: &str) {
        for task_id in tasks {
            let _ = self.completions.send(Completion {
                task_id,
                outcome: TaskOutcome::Lost(reason.to_owned()),
                started_at: None,
                finished_at: now_micros(),
                executor: None,
            });
        }
    }

    /// Declares silent workers dead and takes back overdue tasks, reporting their tasks lost.
    /// Returns the dead workers and how many overdue tasks live workers were relieved of.
    pub fn check(&mut self, now: Instant) -> (Vec<DeadWorker>, usize) {
        let dead = self.registry.expire(now);
        for worker in &dead {
            let reason = format!(
                "worker {} stopped responding (silent for more than {:?})",
                worker.name,
                self.config.liveness()
            );
            tracing::warn!(worker = %worker.name, tasks = worker.tasks.len(), "worker declared dead");
            self.lost(worker.tasks.iter().copied(), &reason);
        }
        self.metrics
            .workers
            .set(self.registry.iter().count() as u64);
        self.metrics.executors.set(
            self.registry
                .iter()
                .map(|(_, w)| u64::from(w.capacity))
                .sum(),
        );
        let overdue = self.registry.overdue(now);
        for (worker, task) in &overdue {
            let reason = format!("worker {worker} did not report the task within its deadline");
            tracing::warn!(%worker, task_id = %task, "task overdue");
            self.lost([*task], &reason);
        }
        (dead, overdue.len())
    }

    /// A task cancelled through the API: if it is still in `backlog` it is dropped there
    /// (its place goes back to the fetcher and its completion to the core); otherwise the
    /// worker holding it, which the mode must tell.
    pub fn cancel(&mut self, backlog: &mut VecDeque<Job>, task: TaskId) -> Option<String> {
        if let Some(i) = backlog.iter().position(|job| job.task_id == task) {
            backlog.remove(i);
            self.freed(1);
            let _ = self.completions.send(Completion {
                task_id: task,
                outcome: TaskOutcome::WorkerFailure(crate::executor::CANCELLED.into()),
                started_at: None,
                finished_at: now_micros(),
                executor: None,
            });
            return None;
        }
        self.registry.holder(task).map(str::to_owned)
    }

    /// Hands `n` places back to the fetcher.
    pub fn freed(&self, n: usize) {
        if n > 0 {
            self.capacity.add_permits(n);
        }
    }

    /// Takes `n` places away from the fetcher, as far as they are not already in use.
    pub fn vanished(&self, n: usize) {
        if n > 0 {
            self.capacity.forget_permits(n);
        }
    }

    /// The wire form of `job` for `worker`, recording the assignment.
    pub fn assign(&mut self, worker: &str, job: &Job, now: Instant) -> WireTask {
        let deadline = now
            + job.timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600))
            + self.config.liveness()
            + self.report_grace;
        let send_body = self
            .registry
            .assign(worker, job.task_id, job.function_id, deadline);
        WireTask {
            task_id: job.task_id,
            function_id: job.function_id,
            function: send_body.then(|| job.function.to_string()),
            params: job.params.clone(),
            timeout_ms: job
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Helpers for the modes' decision tests: a recording outbox and ready-made parts.
#[cfg(test)]
pub(super) mod testing {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{Semaphore, mpsc};

    use super::{RemoteConfig, Workers};
    use crate::bridge::{Inbound, Outbox};
    use crate::dispatcher::registry::WorkerRegistry;
    use crate::executor::{Completion, Job};
    use crate::protocol::{self, ToDispatcher, ToWorker};
    use crate::task::{FunctionId, TaskId};

    /// Records what a mode sends instead of sending it.
    #[derive(Default)]
    pub struct Recorder(RefCell<Vec<Vec<Vec<u8>>>>);

    impl Outbox for Recorder {
        fn send(&self, _socket: usize, frames: Vec<Vec<u8>>) {
            self.0.borrow_mut().push(frames);
        }
    }

    impl Recorder {
        /// Everything sent since the last call: (routing id, message).
        pub fn take(&self) -> Vec<(Vec<u8>, ToWorker)> {
            self.0
                .borrow_mut()
                .drain(..)
                .map(|frames| {
                    let message =
                        protocol::decode(frames.last().expect("a payload")).expect("valid");
                    (frames[0].clone(), message)
                })
                .collect()
        }
    }

    pub const HEARTBEAT: Duration = Duration::from_secs(1);

    pub fn parts(prefetch: u32) -> (Workers, Arc<Semaphore>, mpsc::UnboundedReceiver<Completion>) {
        let config = RemoteConfig {
            bind: "127.0.0.1".into(),
            port: 0,
            heartbeat: HEARTBEAT,
            misses: 3,
            prefetch,
            secret: None,
        };
        let capacity = Arc::new(Semaphore::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let workers = Workers {
            registry: WorkerRegistry::new(config.liveness()),
            capacity: capacity.clone(),
            completions: tx,
            config,
            report_grace: Duration::from_secs(1),
            metrics: Arc::default(),
        };
        (workers, capacity, rx)
    }

    /// What the core's fetcher does for each task it takes: use up one place.
    pub fn fetch(capacity: &Semaphore, function_id: FunctionId) -> Job {
        assert_eq!(
            capacity.forget_permits(1),
            1,
            "fetched without a free place"
        );
        job(function_id)
    }

    pub fn job(function_id: FunctionId) -> Job {
        Job {
            task_id: TaskId::new_random(),
            function_id,
            function: "BODY".into(),
            params: "PARAMS".into(),
            timeout: Some(Duration::from_secs(10)),
        }
    }

    /// A message from `identity` as the ROUTER delivers it (`envelope`: REQ's empty frame).
    pub fn inbound(identity: &[u8], envelope: bool, message: &ToDispatcher) -> Inbound {
        let mut frames = vec![identity.to_vec()];
        if envelope {
            frames.push(Vec::new());
        }
        frames.push(protocol::encode(message));
        Inbound::Message { socket: 0, frames }
    }
}
