//! `pull_worker N tcp://HOST:PORT`: N executors; the worker asks a pull-mode dispatcher for tasks over ZeroMQ REQ.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    faas::cli::worker_main(faas::worker::Kind::Pull).await
}
