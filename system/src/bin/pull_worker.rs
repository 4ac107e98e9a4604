//! `pull_worker N tcp://HOST:PORT`: N executors that ask a pull-mode dispatcher for work.

use clap::Parser;
use faas::cli::WorkerArgs;

#[derive(Parser)]
#[command(
    version,
    about = "A FaaS pull worker: asks the dispatcher for tasks over ZeroMQ REQ"
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
    faas::worker::pull::run(config, shutdown).await?;
    tracing::info!("worker stopped");
    Ok(())
}
