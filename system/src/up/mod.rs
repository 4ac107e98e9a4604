//! `faas up`: a whole cluster on this machine, in the foreground, for development.
//!
//! [`run`] starts a private `redis-server` (unless given a Redis URL), the gateway, the
//! dispatcher and, in pull and push modes, its workers, in that order; waits until each is
//! ready; hands a [`Summary`] to the caller; then supervises them until SIGINT, SIGTERM or
//! SIGHUP, or until one of them exits on its own. Everything is stopped in reverse start order
//! (workers first, Redis last), each with SIGTERM and a timeout before SIGKILL; a second
//! signal kills everything at once.
//!
//! Run it on a current-thread runtime on the main thread: the children are spawned from the
//! thread that runs it, and `PR_SET_PDEATHSIG` ties them to that thread (see [`process`]).
//!
//! - [`args`]: the command-line options.
//! - [`binaries`]: finding the sibling binaries and redis-server.
//! - [`process`]: one supervised child.
//! - [`logs`]: prefixed relaying of the children's output; their `RUST_LOG`.
//! - [`redis`]: the private Redis.
//! - [`probe`]: ports and health checks.
//! - [`signals`]: listening for SIGINT, SIGTERM and SIGHUP.
//! - [`summary`]: what is printed once everything is ready.

pub mod args;
pub mod binaries;
pub mod logs;
pub mod probe;
pub mod process;
pub mod redis;
pub mod signals;
pub mod summary;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use args::{Mode, UpArgs};
use binaries::{Binaries, BinaryError};
use logs::{ReadyLine, Style};
use process::{Child, Exit};
use redis::PrivateRedis;
use signals::Signals;
pub use summary::Summary;

use crate::executor::python_env::{self, PythonEnvError};

/// How long each part may take to become ready.
const REDIS_READY: Duration = Duration::from_secs(10);
const GATEWAY_READY: Duration = Duration::from_secs(30);
/// The dispatcher (local mode: with its executors) and the workers start Python processes.
const EXECUTORS_READY: Duration = Duration::from_secs(120);

/// How long each part may take to stop after SIGTERM before it is killed.
const WORKER_STOP: Duration = Duration::from_secs(10);
const DISPATCHER_STOP: Duration = Duration::from_secs(10);
/// The gateway lets requests in progress (long polls) finish for up to 10 s.
const GATEWAY_STOP: Duration = Duration::from_secs(15);
const REDIS_STOP: Duration = Duration::from_secs(5);
/// After SIGKILL, how long to wait for the kernel to report the exits.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Why `faas up` could not start or keep the cluster running. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("port {port} on 127.0.0.1 is taken ({source}); choose another with {flag}")]
    PortTaken {
        port: u16,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error("cannot find a free port: {0}")]
    NoFreePort(std::io::Error),
    #[error(transparent)]
    Python(#[from] PythonEnvError),
    #[error("cannot create a directory for Redis: {0}")]
    RedisDir(std::io::Error),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready (its output is above)")]
    ExitedEarly { name: String, status: ExitStatus },
    #[error("{name} was not ready within {} s", timeout.as_secs())]
    NotReady { name: String, timeout: Duration },
    #[error("{name} exited unexpectedly ({status})")]
    Exited { name: String, status: ExitStatus },
}

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Stopped in order after a signal.
    Clean,
    /// A second signal: everything was killed at once.
    Killed,
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
    let plan = Plan::new(&args, binaries)?;
    // Before the signal handlers: Ctrl-C while a first run builds the environment just
    // ends the process.
    let explicit = args.executor.python.clone();
    let python = tokio::task::spawn_blocking(move || python_env::resolve(explicit.as_deref()))
        .await
        .expect("resolving the Python environment panicked")?
        .python;
    let mut signals = Signals::install().map_err(UpError::Signals)?;
    let mut cluster = Cluster::new(&plan);
    let served = cluster
        .start_and_serve(&plan, &python, &mut signals, on_ready)
        .await;
    if let Err(e) = &served {
        tracing::error!("{e}; stopping everything");
    }
    let stopped = cluster.stop(&mut signals).await;
    drop(plan); // removes the private Redis's directory
    served.map(|()| stopped)
}

/// Everything decided before anything starts.
struct Plan {
    mode: Mode,
    gateway: PathBuf,
    dispatcher: PathBuf,
    /// The worker binary and how many to start.
    workers: Option<(PathBuf, u32)>,
    procs: u32,
    port: u16,
    worker_port: u16,
    /// `redis-server` and its port, when the Redis is ours.
    redis: Option<(PathBuf, PrivateRedis)>,
    redis_url: String,
    token: Option<String>,
    memory_limit_mb: Option<u64>,
    rust_log: String,
}

impl Plan {
    fn new(args: &UpArgs, binaries: &Binaries) -> Result<Self, UpError> {
        let gateway = binaries.require("faas-gateway")?;
        let dispatcher = binaries.require("task_dispatcher")?;
        let workers = match args.mode.worker_binary() {
            Some(name) => Some((binaries.require(name)?, args.worker_count())),
            None => None,
        };
        probe::check_free(args.port).map_err(|source| UpError::PortTaken {
            port: args.port,
            flag: "--port",
            source,
        })?;
        let worker_port = match args.worker_port {
            Some(port) => {
                probe::check_free(port).map_err(|source| UpError::PortTaken {
                    port,
                    flag: "--worker-port",
                    source,
                })?;
                port
            }
            None => probe::free_port().map_err(UpError::NoFreePort)?,
        };
        let (redis, redis_url) = match &args.redis_url {
            Some(url) => (None, url.clone()),
            None => {
                let server = binaries::redis_server()?;
                let port = probe::free_port().map_err(UpError::NoFreePort)?;
                let private = PrivateRedis::prepare(port).map_err(UpError::RedisDir)?;
                let url = private.url();
                (Some((server, private)), url)
            }
        };
        Ok(Self {
            mode: args.mode,
            gateway,
            dispatcher,
            workers,
            procs: args.procs,
            port: args.port,
            worker_port,
            redis,
            redis_url,
            token: args.token().map(str::to_owned),
            memory_limit_mb: args.executor.memory_limit_mb,
            rust_log: logs::child_filter(std::env::var("RUST_LOG").ok().as_deref()),
        })
    }

    fn worker_names(&self) -> Vec<String> {
        let count = self.workers.as_ref().map_or(0, |(_, n)| *n);
        (1..=count).map(|i| format!("worker-{i}")).collect()
    }

    fn summary(&self) -> Summary {
        Summary {
            gateway_url: format!("http://127.0.0.1:{}", self.port),
            mode: self.mode,
            workers: self.workers.as_ref().map_or(0, |(_, n)| *n),
            procs: self.procs,
            redis_url: redis::redact(&self.redis_url),
            private_redis: self.redis.is_some(),
            worker_port: self.workers.is_some().then_some(self.worker_port),
            auth: self.token.is_some(),
        }
    }

    /// A command for one of the platform's binaries: our `RUST_LOG`, and no secret it does
    /// not need.
    fn command(&self, binary: &Path) -> Command {
        let mut cmd = Command::new(binary);
        cmd.env("RUST_LOG", &self.rust_log)
            .env_remove("FAAS_AUTH_TOKEN");
        cmd
    }

    /// [`Self::command`] for a binary that runs executors: the Python and memory limit.
    fn executor_host(&self, binary: &Path, python: &Path) -> Command {
        let mut cmd = self.command(binary);
        cmd.env("FAAS_PYTHON", python);
        if let Some(mb) = self.memory_limit_mb {
            cmd.env("FAAS_MEMORY_LIMIT_MB", mb.to_string());
        }
        cmd
    }
}

/// A group of children started together and stopped together.
struct Stage {
    children: Vec<Child>,
    stop_timeout: Duration,
}

/// The running children, in start order.
struct Cluster {
    stages: Vec<Stage>,
    style: Style,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits: mpsc::UnboundedReceiver<Exit>,
}

/// What a wait for readiness ended with, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ready,
    /// A signal asked to stop.
    Stop,
}

impl Cluster {
    fn new(plan: &Plan) -> Self {
        let workers = plan.worker_names();
        let names = ["redis", "gateway", "dispatcher"]
            .into_iter()
            .chain(workers.iter().map(String::as_str));
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Self {
            stages: Vec::new(),
            style: Style::for_names(names),
            exits_tx,
            exits,
        }
    }

    /// Starts everything in order, waiting for each part to be ready; then serves until a
    /// signal (`Ok`) or a child's exit (`Err`).
    async fn start_and_serve(
        &mut self,
        plan: &Plan,
        python: &Path,
        signals: &mut Signals,
        on_ready: impl FnOnce(&Summary),
    ) -> Result<(), UpError> {
        if let Some((server, private)) = &plan.redis
            && self.start_redis(server, private, signals).await? == Step::Stop
        {
            return Ok(());
        }
        if self.start_gateway(plan, signals).await? == Step::Stop
            || self.start_dispatcher(plan, python, signals).await? == Step::Stop
            || self.start_workers(plan, python, signals).await? == Step::Stop
        {
            return Ok(());
        }
        on_ready(&plan.summary());
        tokio::select! {
            Some(exit) = self.exits.recv() => Err(UpError::Exited {
                name: exit.name,
                status: exit.status,
            }),
            signal = signals.recv() => {
                tracing::info!("{signal} received: stopping");
                Ok(())
            }
        }
    }

    /// The private redis-server; ready when its port accepts connections.
    async fn start_redis(
        &mut self,
        server: &Path,
        private: &PrivateRedis,
        signals: &mut Signals,
    ) -> Result<Step, UpError> {
        let mut cmd = private.command(server);
        cmd.env_remove("FAAS_AUTH_TOKEN");
        self.spawn_stage("redis", 5, &mut cmd, None, REDIS_STOP)?;
        let port = private.port();
        let up = async move {
            while !probe::accepts(port).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        self.wait_ready("redis", up, REDIS_READY, Instant::now(), signals)
            .await
    }

    /// The gateway; ready when it logs that it listens or its `/health` answers 200.
    async fn start_gateway(&mut self, plan: &Plan, signals: &mut Signals) -> Result<Step, UpError> {
        let mut cmd = plan.command(&plan.gateway);
        cmd.args(["--bind", &format!("127.0.0.1:{}", plan.port)])
            .env("FAAS_REDIS_URL", &plan.redis_url);
        if let Some(token) = &plan.token {
            cmd.env("FAAS_AUTH_TOKEN", token);
        }
        let (line, mut seen) = ReadyLine::new("gateway listening");
        self.spawn_stage("gateway", 2, &mut cmd, Some(line), GATEWAY_STOP)?;
        let (port, token) = (plan.port, plan.token.clone());
        let up = async move {
            let healthy = async {
                while !probe::healthy(port, token.as_deref()).await {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                () = logged(&mut seen) => {}
                () = healthy => {}
            }
        };
        self.wait_ready("gateway", up, GATEWAY_READY, Instant::now(), signals)
            .await
    }

    /// The dispatcher (in local mode with its executors); ready when it reads the queue.
    async fn start_dispatcher(
        &mut self,
        plan: &Plan,
        python: &Path,
        signals: &mut Signals,
    ) -> Result<Step, UpError> {
        let mut cmd = plan.executor_host(&plan.dispatcher, python);
        cmd.args(["-m", plan.mode.as_str()])
            .env("FAAS_REDIS_URL", &plan.redis_url);
        match plan.mode {
            Mode::Local => cmd.args(["-w", &plan.procs.to_string()]),
            Mode::Pull | Mode::Push => cmd.args(["-p", &plan.worker_port.to_string()]),
        };
        let (line, mut seen) = ReadyLine::new("dispatcher running");
        self.spawn_stage("dispatcher", 3, &mut cmd, Some(line), DISPATCHER_STOP)?;
        let up = async move { logged(&mut seen).await };
        self.wait_ready("dispatcher", up, EXECUTORS_READY, Instant::now(), signals)
            .await
    }

    /// The workers (none in local mode), all at once; ready when each has registered.
    async fn start_workers(
        &mut self,
        plan: &Plan,
        python: &Path,
        signals: &mut Signals,
    ) -> Result<Step, UpError> {
        let Some((binary, _)) = &plan.workers else {
            return Ok(Step::Ready);
        };
        let names = plan.worker_names();
        let mut stage = Stage {
            children: Vec::new(),
            stop_timeout: WORKER_STOP,
        };
        let mut seen = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut cmd = plan.executor_host(binary, python);
            cmd.arg(plan.procs.to_string())
                .arg(format!("tcp://127.0.0.1:{}", plan.worker_port))
                .args(["--name", name])
                .env_remove("FAAS_REDIS_URL");
            let (line, rx) = ReadyLine::new("registered with the dispatcher");
            match self.spawn(name, [0, 1, 4][i % 3], &mut cmd, Some(line)) {
                Ok(child) => stage.children.push(child),
                Err(e) => {
                    self.stages.push(stage); // those already started are stopped too
                    return Err(e);
                }
            }
            seen.push(rx);
        }
        self.stages.push(stage);
        // Started together, so they share one deadline; waited for one by one, so a timeout
        // names the one that did not register.
        let since = Instant::now();
        for (name, mut rx) in names.iter().zip(seen) {
            let up = async move { logged(&mut rx).await };
            if self
                .wait_ready(name, up, EXECUTORS_READY, since, signals)
                .await?
                == Step::Stop
            {
                return Ok(Step::Stop);
            }
        }
        Ok(Step::Ready)
    }

    /// Starts one child (see [`Child::spawn`]); `color` picks its prefix's color.
    fn spawn(
        &self,
        name: &str,
        color: usize,
        cmd: &mut Command,
        ready: Option<ReadyLine>,
    ) -> Result<Child, UpError> {
        tracing::info!("starting {name}");
        Child::spawn(
            name,
            cmd,
            &self.style.prefix(name, color),
            ready,
            &self.exits_tx,
        )
        .map_err(|source| UpError::Spawn {
            name: name.to_owned(),
            source,
        })
    }

    /// Starts one child as a stage of its own.
    fn spawn_stage(
        &mut self,
        name: &str,
        color: usize,
        cmd: &mut Command,
        ready: Option<ReadyLine>,
        stop_timeout: Duration,
    ) -> Result<(), UpError> {
        let child = self.spawn(name, color, cmd, ready)?;
        self.stages.push(Stage {
            children: vec![child],
            stop_timeout,
        });
        Ok(())
    }

    /// Waits for `ready`, failing if any child exits first or `timeout` passes `since`.
    async fn wait_ready(
        &mut self,
        what: &str,
        ready: impl Future<Output = ()>,
        timeout: Duration,
        since: Instant,
        signals: &mut Signals,
    ) -> Result<Step, UpError> {
        tokio::select! {
            () = ready => {
                tracing::debug!("{what} ready");
                Ok(Step::Ready)
            }
            Some(exit) = self.exits.recv() => Err(UpError::ExitedEarly {
                name: exit.name,
                status: exit.status,
            }),
            signal = signals.recv() => {
                tracing::info!("{signal} received while starting: stopping");
                Ok(Step::Stop)
            }
            () = tokio::time::sleep_until(since + timeout) => Err(UpError::NotReady {
                name: what.to_owned(),
                timeout,
            }),
        }
    }

    /// Stops every stage, last started first: SIGTERM, then SIGKILL after the stage's
    /// timeout. A signal meanwhile kills everything left at once.
    async fn stop(&mut self, signals: &mut Signals) -> Stopped {
        let mut killed = false;
        for stage in self.stages.iter_mut().rev() {
            let running: Vec<&str> = stage
                .children
                .iter()
                .filter(|c| c.exited().is_none())
                .map(Child::name)
                .collect();
            if running.is_empty() {
                continue;
            }
            tracing::info!("stopping {}", running.join(", "));
            for child in &stage.children {
                child.signal(libc::SIGTERM);
            }
            let timeout = stage.stop_timeout;
            let all_stopped = async {
                for child in &mut stage.children {
                    let already = child.exited();
                    let status = child.wait_or_kill(timeout).await;
                    if already.is_none() && !stopped_well(status) {
                        tracing::warn!("{} exited ({status}) while stopping", child.name());
                    }
                }
            };
            tokio::select! {
                () = all_stopped => {}
                signal = signals.recv() => {
                    tracing::warn!("{signal} received again: killing everything");
                    killed = true;
                }
            }
            if killed {
                break;
            }
        }
        if killed {
            for child in self.stages.iter().flat_map(|s| &s.children) {
                child.signal(libc::SIGKILL);
            }
            for child in self.stages.iter_mut().flat_map(|s| &mut s.children) {
                let _ = tokio::time::timeout(KILL_WAIT, child.wait()).await;
            }
            return Stopped::Killed;
        }
        tracing::info!("all stopped");
        Stopped::Clean
    }
}

/// Whether a child asked to stop ended as expected: success, or the SIGTERM itself.
fn stopped_well(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.success() || status.signal() == Some(libc::SIGTERM)
}

/// Resolves once the ready line was seen; never, if the child's output ended without it
/// (its exit is reported separately).
async fn logged(seen: &mut watch::Receiver<bool>) {
    if seen.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
