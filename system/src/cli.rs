//! Command-line pieces the binaries share.

use std::path::PathBuf;

use crate::executor::python_env::{self, PythonEnvError};
use crate::executor::sandbox::SandboxSpec;
use crate::executor::{ExecutorKind, ExecutorSpec, SimulatedExecutor};

/// How long final tasks are kept: the gateway (cancellations) and the dispatchers (results,
/// failures) make tasks final, so both take it.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// Seconds a task is kept once final (COMPLETED or FAILED); then it expires, and its
    /// status and result answer 404. 0 keeps tasks forever.
    #[arg(long, env = "FAAS_RETENTION", default_value_t = crate::store::DEFAULT_RETENTION.as_secs_f64())]
    pub retention: f64,
}

impl RetentionArgs {
    /// The retention; `None` for forever.
    pub fn retention(&self) -> Result<Option<std::time::Duration>, BadRetention> {
        // Redis takes no expiry much further out.
        const MOST: std::time::Duration = std::time::Duration::from_secs(3650 * 24 * 3600);
        let retention = std::time::Duration::try_from_secs_f64(self.retention)
            .ok()
            .filter(|r| *r <= MOST)
            .ok_or(BadRetention(self.retention))?;
        Ok((!retention.is_zero()).then_some(retention))
    }
}

/// A `--retention` out of range.
#[derive(Debug, thiserror::Error)]
#[error("--retention must be a number of seconds from 0 to ten years, got {0}")]
pub struct BadRetention(f64);

/// How executors are started: shared by the dispatcher (local mode) and the workers.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorArgs {
    /// Address-space limit per executor in MiB (RLIMIT_AS); unlimited when absent.
    #[arg(long, env = "FAAS_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<u64>,
    /// Python with dill to run executors; by default a virtualenv is created in the cache
    /// directory (FAAS_CACHE_DIR, else ~/.cache/faas) on first use.
    #[arg(long, env = "FAAS_PYTHON")]
    pub python: Option<PathBuf>,
    /// Processes (threads included) all executors together may have, against fork bombs
    /// (RLIMIT_NPROC of the unprivileged user sandboxed executors run as when started as root).
    #[arg(long, env = "FAAS_MAX_PROCESSES", default_value_t = SandboxSpec::default().max_processes)]
    pub max_processes: u64,
    /// Executors get no network (a namespace with loopback only; needs bubblewrap).
    #[arg(long, env = "FAAS_NO_NETWORK")]
    pub no_network: bool,
    /// A directory functions may read and write, at the same path (repeat the flag, or
    /// separate with ':' in the variable); the rest of the host is read-only or hidden.
    #[arg(long = "share-dir", env = "FAAS_SHARE_DIRS", value_delimiter = ':')]
    pub share_dirs: Vec<PathBuf>,
    /// Benchmarks of the control plane only: executors are simulated in Rust and NO user code
    /// runs. No Python is looked for or started (--python, --memory-limit-mb and the sandbox
    /// flags are ignored); each executor takes a task, waits --simulated-run-us and completes
    /// it with the result of a function returning None, whatever the function. Capacity,
    /// heartbeats, deadlines, cancellation, timestamps and metrics work as with Python
    /// executors. Pull and push dispatchers run no executors and ignore it.
    #[arg(long)]
    pub simulate_executors: bool,
    /// With --simulate-executors: microseconds each simulated task takes (a tokio sleep,
    /// whose timer counts whole milliseconds, so 1 to 1000 last about 1 ms); 0 only yields
    /// to the scheduler once. A task deadline shorter than this fails the task as with a
    /// Python executor.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "simulate_executors"
    )]
    pub simulated_run_us: u64,
}

impl ExecutorArgs {
    /// The flags that give an executor host these simulated executors, for a supervisor to
    /// pass on; none for Python executors.
    #[must_use]
    pub fn simulated_flags(&self) -> Vec<String> {
        if !self.simulate_executors {
            return Vec::new();
        }
        vec![
            "--simulate-executors".to_owned(),
            "--simulated-run-us".to_owned(),
            self.simulated_run_us.to_string(),
        ]
    }

    /// What executors to run: simulated ones, or Python processes in the environment
    /// resolved (or created) here, off the async threads.
    pub async fn into_kind(self) -> Result<ExecutorKind, PythonEnvError> {
        if self.simulate_executors {
            return Ok(ExecutorKind::Simulated(SimulatedExecutor {
                run: std::time::Duration::from_micros(self.simulated_run_us),
            }));
        }
        let python = self.python;
        let env = tokio::task::spawn_blocking(move || python_env::resolve(python.as_deref()))
            .await
            .expect("python environment setup panicked")?;
        Ok(ExecutorKind::Python(ExecutorSpec {
            env,
            memory_limit: self.memory_limit_mb.map(|mb| mb * 1024 * 1024),
            sandbox: SandboxSpec {
                network: !self.no_network,
                max_processes: self.max_processes,
                shared: self.share_dirs,
            },
        }))
    }
}

/// The dispatcher's CURVE keys (pull and push): both or neither.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerCurveArgs {
    /// The dispatcher's CURVE secret key (Z85, from `faas keygen`); with it the worker
    /// transport is encrypted and only admitted workers can connect.
    #[arg(
        long = "curve-secret-key",
        env = "FAAS_CURVE_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// A file of the admitted workers' CURVE public keys, one per line (read again when an
    /// unknown key connects).
    #[arg(long = "worker-keys", env = "FAAS_WORKER_KEYS")]
    pub worker_keys: Option<PathBuf>,
}

impl ServerCurveArgs {
    /// The keys, if given (both must be).
    pub fn into_keys(self) -> anyhow::Result<Option<crate::curve::ServerKeys>> {
        match (self.secret_key, self.worker_keys) {
            (None, None) => Ok(None),
            (Some(secret), Some(admitted)) => {
                crate::curve::decode("--curve-secret-key", &secret)?;
                Ok(Some(crate::curve::ServerKeys { secret, admitted }))
            }
            _ => anyhow::bail!("--curve-secret-key and --worker-keys go together"),
        }
    }
}

/// A worker's CURVE keys: all three or none.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerCurveArgs {
    /// The dispatcher's CURVE public key (Z85).
    #[arg(long = "server-key", env = "FAAS_CURVE_SERVER_KEY")]
    pub server_key: Option<String>,
    /// This worker's CURVE public key (Z85, from `faas keygen`), admitted by the dispatcher.
    #[arg(long = "curve-public-key", env = "FAAS_CURVE_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// This worker's CURVE secret key (Z85).
    #[arg(
        long = "curve-secret-key",
        env = "FAAS_CURVE_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
}

impl WorkerCurveArgs {
    /// The keys, if given (all three must be).
    pub fn into_keys(self) -> anyhow::Result<Option<crate::curve::ClientKeys>> {
        match (self.server_key, self.public_key, self.secret_key) {
            (None, None, None) => Ok(None),
            (Some(server_public), Some(public), Some(secret)) => {
                crate::curve::decode("--server-key", &server_public)?;
                crate::curve::decode("--curve-public-key", &public)?;
                crate::curve::decode("--curve-secret-key", &secret)?;
                Ok(Some(crate::curve::ClientKeys {
                    server_public,
                    own: crate::curve::KeyPair { public, secret },
                }))
            }
            _ => {
                anyhow::bail!("--server-key, --curve-public-key and --curve-secret-key go together")
            }
        }
    }
}

/// `N tcp://HOST:PORT`: what both worker binaries take.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Executor processes this worker runs (simulated executors with --simulate-executors).
    pub executors: usize,
    /// The dispatcher's address, e.g. tcp://127.0.0.1:5555; several, comma-separated, for
    /// dispatchers sharing one Redis: the worker serves one and moves to the next when it
    /// loses it.
    pub endpoint: String,
    /// This worker's name in the dispatcher's logs and registry (default: host-pid-random).
    #[arg(long)]
    pub name: Option<String>,
    /// The secret the dispatcher requires at registration (its --worker-secret).
    #[arg(long, env = "FAAS_WORKER_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Pull mode: tasks to ask for beyond the free executors, per executor, once all are busy
    /// (idle executors are asked for first, which spreads a burst over every worker; 0: only
    /// those; push mode: the dispatcher's --prefetch decides).
    #[arg(long, env = "FAAS_WORKER_PREFETCH", default_value_t = crate::dispatcher::DEFAULT_PREFETCH)]
    pub prefetch: u32,
    #[command(flatten)]
    pub curve: WorkerCurveArgs,
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

impl WorkerArgs {
    /// The worker's configuration, with its Python environment ready.
    pub async fn into_config(self) -> anyhow::Result<crate::worker::WorkerConfig> {
        anyhow::ensure!(self.executors > 0, "N (executors) must be at least 1");
        let endpoints: Vec<String> = self.endpoint.split(',').map(str::to_owned).collect();
        for endpoint in &endpoints {
            anyhow::ensure!(
                endpoint.starts_with("tcp://"),
                "a dispatcher address must look like tcp://HOST:PORT, got {endpoint:?}"
            );
        }
        Ok(crate::worker::WorkerConfig {
            name: self
                .name
                .unwrap_or_else(crate::worker::WorkerConfig::default_name),
            endpoints,
            executors: self.executors,
            prefetch: self.prefetch,
            curve: self.curve.into_keys()?,
            executor_kind: self.executor.into_kind().await?,
            secret: self.secret,
        })
    }
}

/// The whole of `pull_worker` and `push_worker`: parse `N tcp://HOST:PORT [flags]`, prepare
/// the executors, serve until SIGINT/SIGTERM. A worker the dispatcher refuses exits with
/// [`crate::worker::EXIT_REJECTED`].
pub async fn worker_main(kind: crate::worker::Kind) -> anyhow::Result<std::process::ExitCode> {
    use clap::Parser;

    #[derive(clap::Parser)]
    #[command(
        version,
        about = "A FaaS worker: runs tasks for a pull- or push-mode dispatcher"
    )]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    crate::memory::limit_retained_memory();
    crate::telemetry::init_tracing("info");
    let cli = Cli::parse();
    let shutdown = crate::shutdown::on_signal();
    let config = cli.worker.into_config().await?;
    match crate::worker::run(kind, config, shutdown).await {
        Ok(()) => {
            tracing::info!("worker stopped");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e @ crate::worker::WorkerError::Rejected(_)) => {
            tracing::error!("{e}");
            Ok(std::process::ExitCode::from(crate::worker::EXIT_REJECTED))
        }
        Err(e) => Err(e.into()),
    }
}
