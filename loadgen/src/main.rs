//! `loadgen`: the benchmark harness. `loadgen run <experiment.toml>` brings the system up for
//! every configuration point, drives it, and leaves CSVs, metadata and charts in
//! `results/<experiment>/<run>/`; `loadgen plot <run dir>` redraws the charts from the CSVs.

mod breakdown;
mod driver;
mod experiment;
mod export;
mod functions;
mod launcher;
mod plot;
mod runner;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Declarative benchmarks for the FaaS platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment: bring the system up, drive it, write CSVs and charts.
    Run {
        /// The experiment file, e.g. experiments/weak_scaling.toml.
        experiment: PathBuf,
        /// Where results go (a directory per experiment and run is made inside).
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Redraw the charts of a run directory from its CSVs.
    Plot { run_dir: PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    faas::telemetry::init_tracing("warn");
    match Cli::parse().command {
        Command::Run { experiment, out } => {
            let interrupted = faas::shutdown::on_signal();
            tokio::select! {
                result = runner::run(&experiment, &out) => {
                    let dir = result?;
                    eprintln!("results in {}", dir.display());
                }
                () = interrupted.cancelled() => {
                    // Dropping the run stops every process it started.
                    anyhow::bail!("interrupted; the rows measured so far are in the run directory");
                }
            }
        }
        Command::Plot { run_dir } => {
            for file in plot::render(&run_dir)? {
                eprintln!("chart: {}", file.display());
            }
        }
    }
    Ok(())
}
