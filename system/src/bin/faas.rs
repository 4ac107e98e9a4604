//! `faas`: the developer's front door. `faas up` runs a whole cluster in the foreground.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faas::cluster::{Binaries, Stopped};
use faas::up::{self, UpArgs};

#[derive(Parser)]
#[command(
    name = "faas",
    version,
    about = "Developer tools for the faas Function-as-a-Service platform",
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Up(UpArgs),
    /// Print a new CURVE key pair for the worker transport (Z85): the dispatcher takes its
    /// secret key (FAAS_CURVE_SECRET_KEY) and workers its public key (FAAS_CURVE_SERVER_KEY);
    /// a worker takes a pair of its own, whose public key goes into the dispatcher's
    /// admitted-keys file (FAAS_WORKER_KEYS).
    Keygen,
}

// One thread: children are spawned from the main thread, which lives for the whole run, so
// their PR_SET_PDEATHSIG fires only when faas itself ends.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    faas::telemetry::init_tracing("info");
    let outcome = match cli.command {
        Command::Up(args) => up(args).await,
        Command::Keygen => keygen(),
    };
    outcome.unwrap_or_else(|e| {
        // Our errors say everything in their own message, causes included.
        tracing::error!("faas failed: {e}");
        ExitCode::FAILURE
    })
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let binaries = Binaries::next_to_self()?;
    let stopped = up::run(args, &binaries, |summary| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\n{summary}\n");
        let _ = out.flush();
    })
    .await?;
    Ok(match stopped {
        Stopped::Clean => ExitCode::SUCCESS,
        // A part that hangs on SIGTERM is a defect worth a non-zero status.
        Stopped::Forced => ExitCode::FAILURE,
        Stopped::Killed => ExitCode::from(130),
    })
}

fn keygen() -> anyhow::Result<ExitCode> {
    let pair = faas::curve::KeyPair::generate()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "public-key: {}", pair.public)?;
    writeln!(out, "secret-key: {}", pair.secret)?;
    Ok(ExitCode::SUCCESS)
}
