//! `push_worker N tcp://HOST:PORT`: N executors; the worker receives tasks from a push-mode dispatcher over ZeroMQ DEALER.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    faas::cli::worker_main(faas::worker::Kind::Push).await
}
