//! Remote workers (pull and push modes): an executor pool plus a connection to the
//! dispatcher that survives the dispatcher going away. Workers never touch Redis.
//!
//! - [`runner`]: the executor side every worker shares: function cache, local queue, results
//!   waiting to be acknowledged.
//! - [`pull`] and [`push`]: the two connections (REQ pair, DEALER).

mod pull;
mod push;
mod runner;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bridge::Inbound;
use crate::executor::ExecutorKind;
use crate::protocol::{self, ToWorker};

/// How long a worker waits for `welcome` before trying the connection again.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before reconnecting to a dispatcher that did not answer.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// How long running tasks may finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a worker needs to run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in the dispatcher's registry and logs.
    pub name: String,
    /// The dispatchers' `tcp://host:port`s, tried in turn: the worker serves one at a time
    /// and moves to the next whenever it loses the one it serves (several dispatchers sharing
    /// one Redis make workers highly available).
    pub endpoints: Vec<String>,
    pub executors: usize,
    /// Pull mode: tasks asked for beyond the free executors, per executor, so the next task
    /// is at hand when one finishes (push mode: the dispatcher's --prefetch decides).
    pub prefetch: u32,
    /// What the executors are: Python processes, or simulated ones.
    pub executor_kind: ExecutorKind,
    /// The secret the dispatcher may require at registration.
    pub secret: Option<String>,
    /// CURVE keys, when the dispatcher's transport has them.
    pub curve: Option<crate::curve::ClientKeys>,
}

impl WorkerConfig {
    /// A socket of `kind` to the dispatcher at `endpoint`: secured with the CURVE keys if
    /// any, connected.
    pub(crate) fn connect(
        &self,
        ctx: &zmq::Context,
        kind: zmq::SocketType,
        endpoint: &str,
    ) -> Result<zmq::Socket, WorkerError> {
        let socket = ctx.socket(kind)?;
        if let Some(keys) = &self.curve {
            keys.secure(&socket)?;
        }
        socket.connect(endpoint)?;
        Ok(socket)
    }

    /// A unique default name: host, pid and a random suffix.
    #[must_use]
    pub fn default_name() -> String {
        let host = crate::host::hostname();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &suffix[..6])
    }
}

/// The exit status of a worker the dispatcher refused (sysexits' `EX_NOPERM`), so that a
/// supervisor can tell a refusal from a crash.
pub const EXIT_REJECTED: u8 = 77;

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("executors: {0}")]
    Executors(#[from] crate::executor::process::SpawnError),
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    #[error("worker transport security: {0}")]
    Curve(#[from] crate::curve::CurveError),
    #[error("the dispatcher refused this worker: {0}")]
    Rejected(String),
}

/// Which dispatch mode a worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Asks for work over REQ (`pull_worker`).
    Pull,
    /// Receives work over DEALER (`push_worker`).
    Push,
}

/// Runs a worker until `shutdown`, reconnecting whenever the dispatcher is lost; its executors
/// keep running (and their results are kept) across reconnections.
pub async fn run(
    kind: Kind,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let mut runner = runner::Runner::start(&config).await?;
    let ctx = zmq::Context::new();
    for turn in 0.. {
        let endpoint = &config.endpoints[turn % config.endpoints.len()];
        let session = Session {
            ctx: &ctx,
            config: &config,
            endpoint,
        };
        let end = match kind {
            Kind::Pull => pull::session(&session, &mut runner, &shutdown).await?,
            Kind::Push => push::session(&session, &mut runner, &shutdown).await?,
        };
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Reconnect(reason) => {
                let next = &config.endpoints[(turn + 1) % config.endpoints.len()];
                tracing::warn!(%reason, %endpoint, %next, "reconnecting to a dispatcher");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(RECONNECT_PAUSE) => {}
                }
            }
        }
    }
    runner.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// What one connection to a dispatcher is made with.
struct Session<'a> {
    ctx: &'a zmq::Context,
    config: &'a WorkerConfig,
    /// The dispatcher this connection serves.
    endpoint: &'a str,
}

impl Session<'_> {
    /// A socket of `kind` to this session's dispatcher.
    fn connect(&self, kind: zmq::SocketType) -> Result<zmq::Socket, WorkerError> {
        self.config.connect(self.ctx, kind, self.endpoint)
    }
}

/// How one connection to the dispatcher ended.
enum SessionEnd {
    /// Shutdown was requested and the work in hand is done (or abandoned after the grace).
    Shutdown,
    /// The dispatcher is gone or asked for a new registration: connect again.
    Reconnect(String),
}

/// Waits for the dispatcher's answer to `register`: its heartbeat interval and liveness window,
/// or how the session ends instead.
async fn await_welcome(
    inbox: &mut mpsc::UnboundedReceiver<Inbound>,
    shutdown: &CancellationToken,
) -> Result<Result<(Duration, Duration), SessionEnd>, WorkerError> {
    let reply = tokio::select! {
        () = shutdown.cancelled() => return Ok(Err(SessionEnd::Shutdown)),
        reply = tokio::time::timeout(REGISTER_TIMEOUT, inbox.recv()) => reply,
    };
    match reply.ok().flatten().as_ref().and_then(decode) {
        Some(ToWorker::Welcome {
            heartbeat_ms,
            misses,
        }) => {
            let beat = Duration::from_millis(heartbeat_ms.max(1));
            Ok(Ok((beat, beat * misses.max(1))))
        }
        Some(ToWorker::Rejected { reason }) => Err(WorkerError::Rejected(reason)),
        _ => Ok(Err(SessionEnd::Reconnect(
            "no welcome from the dispatcher".into(),
        ))),
    }
}

/// The message in an inbound event, if it is one of ours.
fn decode(event: &Inbound) -> Option<ToWorker> {
    match event {
        Inbound::Message { frames, .. } => frames.last().and_then(|f| protocol::decode(f).ok()),
        Inbound::SendFailed { .. } => None,
    }
}
