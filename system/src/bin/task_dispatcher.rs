//! `task_dispatcher -m local|pull|push -p PORT -w N`: moves tasks from the queue to executors.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use faas::dispatcher::{self, DEFAULT_MAX_RETRIES, DispatcherConfig};
use faas::executor::{ExecutorSpec, python_env};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Run tasks on this process's own pool of `-w` executors.
    Local,
}

#[derive(Parser)]
#[command(version, about = "The FaaS task dispatcher")]
struct Cli {
    /// Dispatch mode.
    #[arg(short = 'm', long, value_enum)]
    mode: Mode,
    /// Port workers connect to (pull and push modes).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Executor processes (local mode).
    #[arg(short = 'w', long, default_value_t = 2)]
    workers: usize,
    /// Redis holding functions, tasks and the queue.
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Per-task deadline in seconds: a task running longer is FAILED with WorkerFailure and
    /// its executor is killed and replaced. 0 disables the deadline.
    #[arg(long, env = "FAAS_TASK_TIMEOUT", default_value_t = 300.0)]
    task_timeout: f64,
    /// Attempts beyond the first for a task whose executor host was lost; 0 fails it at once.
    #[arg(long, default_value_t = DEFAULT_MAX_RETRIES)]
    max_retries: u32,
    /// Address-space limit per executor in MiB (RLIMIT_AS); unlimited when absent.
    #[arg(long, env = "FAAS_MEMORY_LIMIT_MB")]
    memory_limit_mb: Option<u64>,
    /// Python with dill to run executors; by default a virtualenv is created in the cache
    /// directory (FAAS_CACHE_DIR, else ~/.cache/faas) on first use.
    #[arg(long, env = "FAAS_PYTHON")]
    python: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    faas::telemetry::init_tracing("info");
    let cli = Cli::parse();
    anyhow::ensure!(cli.workers > 0, "-w must be at least 1");
    anyhow::ensure!(
        cli.task_timeout.is_finite() && cli.task_timeout >= 0.0,
        "--task-timeout must be a number of seconds, 0 or more"
    );
    let shutdown = faas::shutdown::on_signal();
    let explicit = cli.python.clone();
    let env = tokio::task::spawn_blocking(move || python_env::resolve(explicit.as_deref()))
        .await
        .context("python environment setup panicked")??;
    let spec = ExecutorSpec {
        env,
        memory_limit: cli.memory_limit_mb.map(|mb| mb * 1024 * 1024),
        task_timeout: (cli.task_timeout > 0.0).then(|| Duration::from_secs_f64(cli.task_timeout)),
    };
    let mut config = DispatcherConfig::new(cli.redis_url);
    config.max_retries = cli.max_retries;
    match cli.mode {
        Mode::Local => dispatcher::local::run(config, spec, cli.workers, shutdown)
            .await
            .context("local dispatcher failed")?,
    }
    tracing::info!("dispatcher stopped");
    Ok(())
}
