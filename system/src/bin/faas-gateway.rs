//! `faas-gateway`: the REST API of the platform.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use faas::gateway::{self, AppState, DEFAULT_BIND, DEFAULT_MAX_BODY_BYTES, GatewayConfig};

#[derive(Parser)]
#[command(
    version,
    about = "The FaaS REST gateway: register functions, execute them, fetch results"
)]
struct Cli {
    /// Address to listen on. The default is loopback only; bind a public address only behind
    /// a proxy that authenticates.
    #[arg(long, default_value = DEFAULT_BIND)]
    bind: String,
    /// Redis holding functions, tasks and the queue.
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Largest request body accepted, in bytes; larger requests get 413.
    #[arg(long, env = "FAAS_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Require `Authorization: Bearer <token>` on every request (401 otherwise). Prefer the
    /// environment variable: command lines are visible to every local user.
    #[arg(long, env = "FAAS_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Seconds a client has to send a request's headers (and an idle connection stays open).
    #[arg(long, env = "FAAS_HEADER_TIMEOUT", default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client has to send a request's body; 408 otherwise.
    #[arg(long, env = "FAAS_BODY_TIMEOUT", default_value_t = 60.0)]
    body_timeout: f64,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "FAAS_MAX_CONNECTIONS", default_value_t = GatewayConfig::default().max_connections)]
    max_connections: usize,
    /// Requests waiting for results at once; more are answered 503.
    #[arg(long, env = "FAAS_MAX_WAITING", default_value_t = GatewayConfig::default().max_waiting)]
    max_waiting: usize,
    #[command(flatten)]
    retention: faas::cli::RetentionArgs,
    /// Acknowledge a submission only once this many Redis replicas have it (Redis WAIT, up
    /// to 2 s, else 503): a failover to a replica then loses no task that was accepted.
    #[arg(long, env = "FAAS_REDIS_REPLICAS", default_value_t = 0)]
    replicas: u32,
}

/// `seconds` as a duration, for a flag named `flag`.
fn seconds(flag: &str, seconds: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} must be a positive number of seconds, got {seconds}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    faas::memory::limit_retained_memory();
    faas::telemetry::init_tracing("info");
    let cli = Cli::parse();
    let shutdown = faas::shutdown::on_signal();
    let config = GatewayConfig {
        max_body_bytes: cli.max_body_bytes,
        auth_token: cli.auth_token,
        header_read_timeout: seconds("header-timeout", cli.header_timeout)?,
        body_read_timeout: seconds("body-timeout", cli.body_timeout)?,
        max_connections: cli.max_connections,
        max_waiting: cli.max_waiting,
        retention: cli.retention.retention()?,
        replicas: cli.replicas,
    };
    let state = AppState::connect(&cli.redis_url, &config, &shutdown)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Redis at {}",
                faas::cluster::redis::redact(&cli.redis_url)
            )
        })?;
    let listener = tokio::net::TcpListener::bind(&cli.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cli.bind))?;
    gateway::serve(listener, state, &config, shutdown)
        .await
        .context("gateway failed")?;
    tracing::info!("gateway stopped");
    Ok(())
}
