//! `push_worker N tcp://HOST:PORT`: N executors that take tasks a push-mode dispatcher sends.

use clap::Parser;
use faas::cli::WorkerArgs;

#[derive(Parser)]
#[command(
    version,
    about = "A FaaS push worker: receives tasks from the dispatcher over ZeroMQ DEALER"
)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    faas::telemetry::init_tracing("info");
    let cli = Cli::parse();
    let shutdown = faas::shutdown::on_signal();
    let config = cli.worker.into_config().await?;
    faas::worker::push::run(config, shutdown).await?;
    tracing::info!("worker stopped");
    Ok(())
}
