//! What a cluster is made of, decided before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use super::binaries::Binaries;
use super::output::Output;
use super::redis::Persistence;
use crate::dispatcher::Mode;

/// Where the cluster's Redis comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisSpec {
    /// A private `redis-server` started (and discarded) with the cluster.
    Private(Persistence),
    /// A server that runs already, by URL; the cluster never stops or restarts it.
    External(String),
}

/// How long an executor host (local dispatcher, worker) may take to be ready by default: it
/// starts its Python executors, hundreds of them in the largest benchmarks on 2 cores.
pub const EXECUTORS_READY: Duration = Duration::from_secs(300);

/// A cluster: which processes, with which options. Build it with [`ClusterSpec::new`] and
/// struct update syntax for the rest.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Where `faas-gateway`, `task_dispatcher` and the workers are.
    pub binaries: Binaries,
    pub mode: Mode,
    pub redis: RedisSpec,
    /// The gateway's port on 127.0.0.1; a free one when `None`.
    pub gateway_port: Option<u16>,
    /// The port workers connect to (pull and push); a free one when `None`.
    pub worker_port: Option<u16>,
    /// The bearer token the gateway requires, if any. Only the gateway is given it.
    pub token: Option<String>,
    /// Extra `faas-gateway` flags.
    pub gateway_args: Vec<String>,
    /// Extra flags of every dispatcher started from this spec.
    pub dispatcher_args: Vec<String>,
    /// Executors. Local mode: the dispatcher's one pool of their sum. Pull and push: one
    /// worker process per entry, with that many executors.
    pub executors: Vec<u32>,
    /// Extra flags of every worker started from this spec.
    pub worker_args: Vec<String>,
    /// The executors' Python (see [`crate::executor::python_env`]).
    pub python: PathBuf,
    /// The executors' memory limit (`FAAS_MEMORY_LIMIT_MB`).
    pub memory_limit_mb: Option<u64>,
    /// Directories the executors' sandbox shares with functions (`FAAS_SHARE_DIRS`).
    pub share_dirs: Vec<PathBuf>,
    /// The executor hosts' working directory, from which dill's by-reference functions are
    /// imported; the supervisor's own when `None`.
    pub workdir: Option<PathBuf>,
    /// Every child's `RUST_LOG`.
    pub rust_log: String,
    pub output: Output,
    /// How long an executor host may take to be ready.
    pub executors_ready: Duration,
}

impl ClusterSpec {
    /// A `mode` cluster of the binaries in `binaries` whose executors run `python`: a private
    /// Redis without persistence, free ports, no token, one executor (local) or one worker
    /// with one executor, children logging at `info` into the test harness's stderr.
    #[must_use]
    pub fn new(binaries: Binaries, mode: Mode, python: PathBuf) -> Self {
        Self {
            binaries,
            mode,
            redis: RedisSpec::Private(Persistence::None),
            gateway_port: None,
            worker_port: None,
            token: None,
            gateway_args: Vec::new(),
            dispatcher_args: Vec::new(),
            executors: vec![1],
            worker_args: Vec::new(),
            python,
            memory_limit_mb: None,
            share_dirs: Vec::new(),
            workdir: None,
            rust_log: "info".to_owned(),
            output: Output::Captured,
            executors_ready: EXECUTORS_READY,
        }
    }

    /// The dispatcher's pool size in local mode: every executor in one pool.
    #[must_use]
    pub fn local_executors(&self) -> u32 {
        self.executors.iter().sum()
    }
}
