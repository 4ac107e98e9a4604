//! `loadgen`: the benchmark harness. `loadgen run <experiment.toml>` brings the system up for
//! every configuration point, drives it, measures the reference targets beside it, and leaves
//! CSVs, metadata, a summary and charts in `results/<experiment>/<run>/`; `loadgen plot`
//! redraws the charts, `loadgen compare` tells two runs apart, `loadgen report` rebuilds the
//! generated parts of `report.md`.

mod breakdown;
mod compare;
mod cpu;
mod driver;
mod experiment;
mod export;
mod floor;
mod functions;
mod instructions;
mod launcher;
mod plot;
mod reference;
mod report;
mod runner;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Redraw the charts and the summary of a run directory from its CSVs.
    Plot { run_dir: PathBuf },
    /// Compare run B with run A, point by point: the change of each figure, its 95% bootstrap
    /// interval and whether it is beyond noise. Exits with 3 when a --fail-on gate breaks.
    Compare {
        run_a: PathBuf,
        run_b: PathBuf,
        /// Fail (exit 3) when FIGURE gets significantly worse by more than PERCENT, e.g.
        /// `throughput:5` or `p99_ms:10` (repeat for several).
        #[arg(long = "fail-on", value_name = "FIGURE:PERCENT")]
        fail_on: Vec<compare::Gate>,
        /// Also write the table as Markdown into this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Rebuild the generated blocks of a report (tables, ratios, figures, comparisons) from
    /// the newest committed run of each experiment.
    Report {
        #[arg(default_value = "report.md")]
        report: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

/// The exit code of a comparison whose gate broke (errors exit with 1).
const REGRESSION: u8 = 3;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
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
            eprintln!("summary: {}", report::write_summary(&run_dir)?.display());
        }
        Command::Compare {
            run_a,
            run_b,
            fail_on,
            markdown,
        } => {
            let comparison = compare::compare(&run_a, &run_b)?;
            compare::check_gates(&comparison.changes, &fail_on)?;
            let table = compare::markdown(
                &comparison,
                &run_a.display().to_string(),
                &run_b.display().to_string(),
            );
            #[allow(clippy::print_stdout)]
            {
                print!("{table}");
            }
            if let Some(path) = markdown {
                std::fs::write(&path, &table)?;
            }
            let broken = compare::regressions(&comparison.changes, &fail_on);
            if !broken.is_empty() {
                for c in &broken {
                    eprintln!(
                        "regression: {} {} is at least {:.1}% worse ({:.3} [{:.3}, {:.3}])",
                        c.point,
                        c.figure.column,
                        c.worse_by_percent(),
                        c.ratio,
                        c.lo,
                        c.hi
                    );
                }
                return Ok(ExitCode::from(REGRESSION));
            }
        }
        Command::Report { report, results } => {
            let blocks = report::rebuild(&report, &results)?;
            eprintln!("{}: {blocks} block(s) rebuilt", report.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
