//! `task_dispatcher -m local|pull|push -p PORT -w N`: moves tasks from the queue to executors.
//! `-w N` keeps the spec's name ("workers") but means N executor processes in local mode.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use faas::cli::{ExecutorArgs, RetentionArgs, ServerCurveArgs};
use faas::dispatcher::remote::{DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MISSES, RemoteConfig};
use faas::dispatcher::{
    self, DEFAULT_LIVENESS_TTL, DEFAULT_MAX_RETRIES, DEFAULT_PREFETCH, DEFAULT_RECLAIM_AFTER,
    DispatcherConfig, Mode,
};

#[derive(Parser)]
#[command(version, about = "The FaaS task dispatcher")]
struct Cli {
    /// Dispatch mode.
    #[arg(short = 'm', long, value_enum)]
    mode: Mode,
    /// Port workers connect to (pull and push modes).
    #[arg(short = 'p', long, required_if_eq_any = [("mode", "pull"), ("mode", "push")])]
    port: Option<u16>,
    /// Executor processes in local mode. The spec calls them "workers" (hence `-w`); each is
    /// one Python executor process of the dispatcher's own pool (or one simulated executor,
    /// with --simulate-executors). Pull and push ignore it: there each worker's N sets its
    /// executors.
    #[arg(
        short = 'w',
        long = "workers",
        value_name = "EXECUTORS",
        default_value_t = 2
    )]
    executors: usize,
    /// Address workers connect to (pull and push). Loopback by default; bind a routable
    /// address only on a network you trust.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Redis holding functions, tasks and the queue.
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Per-task deadline in seconds: a task running longer is FAILED with WorkerFailure and
    /// its executor is killed and replaced. 0 disables the deadline.
    #[arg(long, env = "FAAS_TASK_TIMEOUT", default_value_t = 300.0)]
    task_timeout: f64,
    /// Attempts beyond the first for a task whose worker or dispatcher was lost; 0 fails it
    /// with WorkerFailure at once.
    #[arg(long, default_value_t = DEFAULT_MAX_RETRIES)]
    max_retries: u32,
    /// Seconds this dispatcher's liveness marker lives unless refreshed (three times per
    /// period): once it lapses, the other dispatchers requeue the tasks it held.
    #[arg(long, default_value_t = DEFAULT_LIVENESS_TTL.as_secs_f64())]
    liveness_ttl: f64,
    /// Seconds an entry may stay pending for this dispatcher without it holding the task
    /// (a read whose reply was lost, a start or record that failed for good) before it is
    /// put back on the queue.
    #[arg(long, default_value_t = DEFAULT_RECLAIM_AFTER.as_secs_f64())]
    reclaim_after: f64,
    /// Seconds between heartbeats (push) and keep-alives of parked asks (pull).
    #[arg(long, default_value_t = 1.0)]
    heartbeat: f64,
    /// Heartbeat intervals a worker may stay silent before it is declared dead.
    #[arg(long, default_value_t = DEFAULT_MISSES)]
    heartbeat_misses: u32,
    /// Tasks kept waiting per executor beyond the one it runs: in the pool's queue (local)
    /// or at each worker (push; pull workers take their own --prefetch).
    #[arg(long, default_value_t = DEFAULT_PREFETCH)]
    prefetch: u32,
    /// Serve GET /health and GET /metrics (Prometheus) on this address, e.g. 127.0.0.1:9100.
    #[arg(long, env = "FAAS_DISPATCHER_HTTP")]
    http: Option<String>,
    /// Pull and push: workers must present this secret when they register (their
    /// --secret / FAAS_WORKER_SECRET); others receive no task.
    #[arg(long, env = "FAAS_WORKER_SECRET", hide_env_values = true)]
    worker_secret: Option<String>,
    #[command(flatten)]
    curve: ServerCurveArgs,
    /// Largest message a worker may send, in MiB; a larger one drops its connection.
    #[arg(long, env = "FAAS_MAX_MESSAGE_MB", default_value_t = DEFAULT_MAX_MESSAGE_BYTES >> 20)]
    max_message_mb: usize,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Hand a task to an executor only once this many Redis replicas have its start (Redis
    /// WAIT, up to 2 s, else retried): a failover to a replica then cannot lose the attempt
    /// of a task that runs, and run it again under the same attempt.
    #[arg(long, env = "FAAS_REDIS_REPLICAS", default_value_t = 0)]
    replicas: u32,
    #[command(flatten)]
    executor: ExecutorArgs,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{name} must be a number of seconds, 0 or more"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    faas::memory::limit_retained_memory();
    faas::telemetry::init_tracing("info");
    let cli = Cli::parse();
    anyhow::ensure!(cli.executors > 0, "-w (executors) must be at least 1");
    let task_timeout = seconds("--task-timeout", cli.task_timeout)?;
    let heartbeat = seconds("--heartbeat", cli.heartbeat)?;
    anyhow::ensure!(
        heartbeat >= Duration::from_millis(10),
        "--heartbeat must be at least 0.01 s"
    );
    anyhow::ensure!(
        cli.heartbeat_misses > 0,
        "--heartbeat-misses must be at least 1"
    );
    let reclaim_after = seconds("--reclaim-after", cli.reclaim_after)?;
    anyhow::ensure!(
        (Duration::from_millis(100)..=DAY).contains(&reclaim_after),
        "--reclaim-after must be between 0.1 s and a day"
    );
    let liveness_ttl = seconds("--liveness-ttl", cli.liveness_ttl)?;
    anyhow::ensure!(
        (Duration::from_millis(300)..=DAY).contains(&liveness_ttl),
        "--liveness-ttl must be between 0.3 s and a day"
    );
    anyhow::ensure!(
        task_timeout <= 3650 * DAY && heartbeat <= DAY,
        "--task-timeout must be at most ten years, --heartbeat at most a day"
    );
    let shutdown = faas::shutdown::on_signal();

    let mut config = DispatcherConfig::new(cli.redis_url);
    config.max_retries = cli.max_retries;
    config.reclaim_after = reclaim_after;
    config.liveness_ttl = liveness_ttl;
    config.retention = cli.retention.retention()?;
    config.replicas = cli.replicas;
    config.http = cli.http;
    config.task_timeout = (!task_timeout.is_zero()).then_some(task_timeout);
    let remote = RemoteConfig {
        bind: cli.bind,
        port: cli.port.unwrap_or_default(),
        heartbeat,
        misses: cli.heartbeat_misses,
        prefetch: cli.prefetch,
        secret: cli.worker_secret.filter(|s| !s.is_empty()),
        curve: cli.curve.into_keys()?,
        max_message_bytes: cli.max_message_mb.saturating_mul(1 << 20),
    };
    match cli.mode {
        Mode::Local => {
            let kind = cli.executor.into_kind().await?;
            let prefetch = cli.prefetch as usize;
            dispatcher::local::run(config, kind, cli.executors, prefetch, shutdown).await
        }
        Mode::Pull => dispatcher::pull::run(config, remote, shutdown).await,
        Mode::Push => dispatcher::push::run(config, remote, shutdown).await,
    }
    .context("dispatcher failed")?;
    tracing::info!("dispatcher stopped");
    Ok(())
}
