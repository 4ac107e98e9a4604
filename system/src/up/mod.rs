//! `faas up`: a whole cluster on this machine, in the foreground, for development.
//!
//! [`run`] turns the command line into a [`ClusterSpec`] and has the cluster supervisor
//! ([`crate::cluster`]) start a private `redis-server` (unless given a Redis URL), the
//! gateway, the dispatcher and, in pull and push modes, its workers, each ready before the
//! next; hands a [`Summary`] to the caller; then watches them until SIGINT, SIGTERM or
//! SIGHUP, or until one of them exits on its own. Everything is stopped in reverse start
//! order, each with SIGTERM and a timeout before SIGKILL; a second signal kills everything
//! at once.
//!
//! Run it on a current-thread runtime on the main thread: the children are spawned from the
//! thread that runs it, and `PR_SET_PDEATHSIG` ties them to that thread (see
//! [`crate::cluster::member`]).
//!
//! - [`args`]: the command-line options.
//! - [`signals`]: listening for SIGINT, SIGTERM and SIGHUP.
//! - [`summary`]: what is printed once everything is ready.

pub mod args;
pub mod signals;
pub mod summary;

use std::process::ExitStatus;
use std::time::Duration;

pub use args::{Mode, UpArgs};
use signals::Signals;
pub use summary::Summary;

use crate::cluster::output::child_filter;
use crate::cluster::redis::redact;
use crate::cluster::{
    Binaries, Cluster, ClusterError, ClusterSpec, Output, Persistence, RedisSpec, Stopped, ports,
};
use crate::executor::python_env::{self, PythonEnvError};
use crate::readiness::{self, Ready};

/// How long the dispatcher (local mode: with its executors) and the workers may take to be
/// ready: they start Python processes.
const EXECUTORS_READY: Duration = Duration::from_secs(120);

/// Why `faas up` could not start or keep the cluster running. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Usage(String),
    #[error("port {port} on 127.0.0.1 is taken ({source}); choose another with {flag}")]
    PortTaken {
        port: u16,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Python(#[from] PythonEnvError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{name} exited unexpectedly ({status})")]
    Exited { name: String, status: ExitStatus },
}

/// Runs the cluster `args` describes with the binaries in `binaries` until a signal or a
/// failure; `on_ready` gets the summary once everything is ready. Everything started is
/// stopped (and the private Redis's directory removed) before this returns, error or not.
pub async fn run(
    args: UpArgs,
    binaries: &Binaries,
    on_ready: impl FnOnce(&Summary),
) -> Result<Stopped, UpError> {
    args.check().map_err(UpError::Usage)?;
    // Before anything slow: a missing redis-server is said at once.
    if args.redis_url.is_none() {
        crate::cluster::binaries::redis_server().map_err(ClusterError::from)?;
    }
    check_port(args.port, "--port")?;
    if let Some(port) = args.worker_port {
        check_port(port, "--worker-port")?;
    }
    // Before the signal handlers: Ctrl-C while a first run builds the environment just
    // ends the process.
    let explicit = args.executor.python.clone();
    let python = if args.executor.simulate_executors {
        // Simulated executors run no Python: none is looked for, and the children ignore
        // the one they are told (which must not be empty, or their FAAS_PYTHON is refused).
        explicit.unwrap_or_else(|| "none (simulated executors)".into())
    } else {
        tokio::task::spawn_blocking(move || python_env::resolve(explicit.as_deref()))
            .await
            .expect("resolving the Python environment panicked")?
            .python
    };
    let mut signals = Signals::install().map_err(UpError::Signals)?;
    let mut cluster = Cluster::new(spec(&args, binaries, python))?;
    let summary = summary(&args, &cluster);
    let served = start_and_serve(&mut cluster, &mut signals, || on_ready(&summary)).await;
    if let Err(e) = &served {
        tracing::error!("{e}; stopping everything");
    }
    let stopped = cluster
        .stop(async {
            let signal = signals.recv().await;
            tracing::warn!("{signal} received again");
        })
        .await;
    served.map(|()| stopped)
}

/// Fails with the flag to change when `port` is taken.
fn check_port(port: u16, flag: &'static str) -> Result<(), UpError> {
    ports::check_free(port).map_err(|source| UpError::PortTaken { port, flag, source })
}

/// The cluster the command line asks for.
fn spec(args: &UpArgs, binaries: &Binaries, python: std::path::PathBuf) -> ClusterSpec {
    let executors = match args.mode {
        Mode::Local => vec![args.procs],
        Mode::Pull | Mode::Push => vec![args.procs; args.worker_count() as usize],
    };
    ClusterSpec {
        redis: args
            .redis_url
            .clone()
            .map_or(RedisSpec::Private(Persistence::None), RedisSpec::External),
        gateway_port: Some(args.port),
        worker_port: args.worker_port,
        token: args.token().map(str::to_owned),
        executors,
        dispatcher_args: args.executor.simulated_flags(),
        worker_args: args.executor.simulated_flags(),
        memory_limit_mb: args.executor.memory_limit_mb,
        rust_log: child_filter(std::env::var("RUST_LOG").ok().as_deref()),
        output: Output::Prefixed,
        executors_ready: EXECUTORS_READY,
        ..ClusterSpec::new(binaries.clone(), args.mode, python)
    }
}

/// What is running, for the user.
fn summary(args: &UpArgs, cluster: &Cluster) -> Summary {
    Summary {
        gateway_url: cluster.gateway_url(),
        mode: args.mode,
        workers: args.worker_count(),
        procs: args.procs,
        redis_url: redact(cluster.redis_url()),
        private_redis: cluster.has_private_redis(),
        worker_port: (args.mode != Mode::Local).then(|| cluster.worker_port()),
        auth: cluster.spec().token.is_some(),
    }
}

/// Starts everything in order, each part ready before the next; then serves until a signal
/// (`Ok`) or a member's unexpected exit (`Err`).
async fn start_and_serve(
    cluster: &mut Cluster,
    signals: &mut Signals,
    on_ready: impl FnOnce(),
) -> Result<(), UpError> {
    let mut exits = cluster
        .take_exits()
        .expect("a new cluster's exits are not taken");
    let start = async {
        cluster.start_control_plane().await?;
        cluster.start_executor_hosts().await
    };
    tokio::select! {
        started = start => started?,
        exit = exits.next_unexpected() => return Err(UpError::Exited {
            name: exit.name,
            status: exit.status,
        }),
        signal = signals.recv() => {
            tracing::info!("{signal} received while starting: stopping");
            return Ok(());
        }
    }
    on_ready();
    readiness::notify(Ready::ClusterUp);
    tokio::select! {
        exit = exits.next_unexpected() => Err(UpError::Exited {
            name: exit.name,
            status: exit.status,
        }),
        signal = signals.recv() => {
            tracing::info!("{signal} received: stopping");
            Ok(())
        }
    }
}
