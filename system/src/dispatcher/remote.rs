//! What the pull and push modes share: their settings, the transport handle the core talks to,
//! the ROUTER socket workers connect to, and the event loop that feeds a mode (see
//! [`super::workers`] for what the modes do with workers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::capacity::Capacity;
use super::core::{CoreParts, run_core};
use super::registry::WorkerRegistry;
use super::workers::Workers;
use super::{DispatcherError, Transport};
use crate::bridge::{Bridge, Inbound};
use crate::executor::Job;
use crate::task::TaskId;

/// Interval between heartbeats (push) and keep-alive answers to parked asks (pull).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Heartbeat intervals without a word after which a worker is dead.
pub const DEFAULT_MISSES: u32 = 3;

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
    /// When set, the transport is CURVE: only admitted worker keys complete a handshake, and
    /// each registered worker is bound to its key.
    pub curve: Option<crate::curve::ServerKeys>,
    /// Largest message a worker may send; a larger one drops its connection.
    pub max_message_bytes: usize,
}

/// Default for [`RemoteConfig::max_message_bytes`]: a batch of results at the result limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 2 * crate::executor::frame::MAX_FRAME_BYTES;

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
    recorded: mpsc::UnboundedSender<Vec<TaskId>>,
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

    async fn recorded(&mut self, tasks: Vec<TaskId>) {
        let _ = self.recorded.send(tasks);
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
    /// Acknowledges recorded results to the workers that sent them (see
    /// [`Workers::recorded`]).
    fn recorded(&mut self, tasks: Vec<TaskId>);
    /// Periodic duties: liveness, heartbeats or keep-alives.
    fn on_tick(&mut self, now: Instant);
    /// How often [`Self::on_tick`] runs.
    fn tick_every(&self) -> Duration;
}

/// Runs a remote-mode dispatcher until `shutdown`: the mode is made from the worker socket
/// and the shared worker state, whose places follow `capacity`'s rules.
pub(super) async fn run<M: RemoteMode>(
    config: super::DispatcherConfig,
    remote: RemoteConfig,
    capacity: Capacity,
    shutdown: CancellationToken,
    make: impl FnOnce(Bridge, Workers) -> M,
) -> Result<(), DispatcherError> {
    let store = crate::store::Store::connect(&config.redis_url)
        .await?
        .with_retention(config.retention)
        .with_replicas(config.replicas);
    let (bridge, inbox) = listen(&remote)?;
    let capacity = Arc::new(capacity);
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let (cancels_tx, cancels) = mpsc::unbounded_channel();
    let (recorded_tx, recorded) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let metrics = Arc::new(super::DispatcherMetrics::default());
    let workers = Workers {
        registry: WorkerRegistry::new(remote.liveness()),
        capacity: capacity.clone(),
        completions: completions_tx,
        config: remote,
        report_grace: Duration::from_secs(1),
        metrics: metrics.clone(),
        bound: std::collections::HashMap::new(),
        reporters: std::collections::HashMap::new(),
    };
    let mode = make(bridge, workers);
    let inputs = Inputs {
        inbox,
        jobs,
        cancels,
        recorded,
    };
    let task = tokio::spawn(serve(mode, inputs, stop.clone()));
    let transport = RemoteTransport {
        jobs: jobs_tx,
        cancels: cancels_tx,
        recorded: recorded_tx,
        stop,
        task,
    };
    let parts = CoreParts {
        store,
        config,
        transport,
        capacity,
        completions,
        metrics,
    };
    run_core(parts, shutdown).await
}

/// What a mode's event loop hears: worker messages, and the core's started tasks,
/// cancellations and recorded results.
struct Inputs {
    inbox: mpsc::UnboundedReceiver<Inbound>,
    jobs: mpsc::UnboundedReceiver<Job>,
    cancels: mpsc::UnboundedReceiver<TaskId>,
    recorded: mpsc::UnboundedReceiver<Vec<TaskId>>,
}

/// The mode's event loop: worker messages, the core's requests and ticks, until `stop`.
async fn serve<M: RemoteMode>(mut mode: M, inputs: Inputs, stop: CancellationToken) {
    let Inputs {
        mut inbox,
        mut jobs,
        mut cancels,
        mut recorded,
    } = inputs;
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
            Some(tasks) = recorded.recv() => mode.recorded(tasks),
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

/// A ROUTER bound for workers, on a bridge (a task of this runtime); its events arrive on the
/// returned channel.
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
    match &config.curve {
        Some(keys) => keys.secure(&ctx, &router)?,
        None => tracing::warn!(
            "the worker transport is neither encrypted nor authenticated: give the dispatcher CURVE keys (faas keygen)"
        ),
    }
    router
        .set_maxmsgsize(i64::try_from(config.max_message_bytes).unwrap_or(i64::MAX))
        .map_err(bind_error)?;
    // Without this a ROUTER silently drops messages to peers that are gone.
    router.set_router_mandatory(true).map_err(bind_error)?;
    router.set_sndhwm(0).map_err(bind_error)?;
    router.set_rcvhwm(0).map_err(bind_error)?;
    router.bind(&endpoint).map_err(bind_error)?;
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let bridge = Bridge::spawn(vec![router], inbox_tx).map_err(bind_error)?;
    tracing::info!(%endpoint, "listening for workers");
    Ok((bridge, inbox))
}
