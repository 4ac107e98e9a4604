//! `loadgen run`: every point of an experiment, in order, against systems brought up for it;
//! each point's row is written as soon as it is measured.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use faas::client::Client;
use indicatif::{ProgressBar, ProgressStyle};

use tokio::sync::oneshot;

use crate::breakdown;
use crate::driver;
use crate::experiment::{Experiment, Function, Point, Shape};
use crate::export::csv::{CdfCsv, ResultsCsv, Row};
use crate::export::metadata;
use crate::functions;
use crate::launcher::{self, System};
use crate::stats::{self, Summary};

/// Runs the experiment at `path`, writing into `out/<name>/<run>/`; returns that directory.
pub async fn run(path: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let (experiment, points) = Experiment::load(path)?;
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let dir = out.join(&experiment.name).join(run_name(started));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = std::fs::read_to_string(path)?;
    std::fs::write(dir.join("experiment.toml"), &text)?;
    metadata::write(&dir, &text, started)?;
    let swept: Vec<String> = experiment.sweep.iter().map(|s| s.param.clone()).collect();
    let mut results = ResultsCsv::create(&dir.join("results.csv"), &swept)?;
    let mut cdf = CdfCsv::create(&dir.join("cdf.csv"))?;
    eprintln!(
        "{}: {} point(s) -> {}",
        experiment.name,
        points.len(),
        dir.display()
    );

    let mut system: Option<(String, System)> = None;
    let mut serialized = HashMap::new();
    let mut baselines = HashMap::new();
    let mut table = Vec::new();
    for point in &points {
        let config = &point.config;
        let topology_key = serde_json::to_string(&(&config.topology, &config.redis_url))?;
        if system.as_ref().is_none_or(|(key, _)| *key != topology_key) {
            // Stop the previous topology before starting the next.
            if let Some((_, previous)) = system.take() {
                previous.stop().await;
            }
            let logs = dir.join("logs").join(format!("point-{}", point.index));
            let launched =
                launcher::launch(&config.topology, config.redis_url.as_deref(), &logs).await?;
            system = Some((topology_key, launched));
        }
        let (_, live) = system.as_mut().expect("launched above");
        let workload_key = serde_json::to_string(&config.workload)?;
        if !serialized.contains_key(&workload_key) {
            let workload = config.workload.clone();
            let s = tokio::task::spawn_blocking(move || functions::serialize(&workload)).await??;
            serialized.insert(workload_key.clone(), s);
        }
        let payloads = &serialized[&workload_key];
        let target = Client::new(&live.url(), None)?;
        let function_id = target
            .register("loadgen", &payloads.function)
            .await?
            .function_id;

        if config.warmup_tasks > 0 {
            let warmup = crate::experiment::Load {
                shape: Shape::Closed,
                clients: config.load.clients,
                rate: None,
                batch_size: 1,
            };
            driver::run(
                &target,
                &function_id,
                &payloads.params,
                u64::from(config.warmup_tasks),
                &warmup,
                &config.collect,
                ProgressBar::hidden(),
                None,
            )
            .await;
        }
        let tasks = point.tasks();
        let mut runs = Vec::new();
        for rep in 0..config.repetitions {
            let bar = progress(point, rep, config.repetitions, tasks);
            let (submitted, all_submitted) = oneshot::channel();
            let measured = driver::run(
                &target,
                &function_id,
                &payloads.params,
                tasks,
                &config.load,
                &config.collect,
                bar,
                Some(submitted),
            );
            // Held executor hosts start once the workload waits in the queue.
            let start_held = async {
                if all_submitted.await.is_ok() {
                    live.start_executors().await
                } else {
                    Ok(())
                }
            };
            let (run, started) = tokio::join!(measured, start_held);
            started?;
            runs.push(run);
        }
        let samples: Vec<_> = runs
            .iter()
            .flat_map(|r| r.samples.iter().cloned())
            .collect();
        let breakdown = breakdown::measure(&target, &samples).await;
        let memory = live.memory();
        let summary = stats::summarize(tasks, &runs);
        let efficiency = efficiency(point, &summary, &mut baselines);
        let workers = match config.topology.mode {
            crate::experiment::Mode::Local => 0,
            _ => config.topology.worker_sizes().len(),
        };
        results.write(&Row {
            point,
            workers,
            summary: &summary,
            efficiency,
            breakdown: &breakdown,
            memory,
        })?;
        cdf.write(point, &stats::cdf(&runs))?;
        table.push((point.label(), summary, efficiency));
    }
    if let Some((_, last)) = system {
        last.stop().await;
    }
    print_table(&experiment.name, &table);
    match crate::plot::render(&dir) {
        Ok(files) => {
            for file in files {
                eprintln!("chart: {}", file.display());
            }
        }
        Err(e) => eprintln!("charts not drawn: {e:#}"),
    }
    Ok(dir)
}

/// Weak-scaling efficiency: for sleep tasks the ideal makespan (tasks per executor × sleep)
/// over the measured one; for other burst workloads the first point's makespan (of the same
/// mode and function, normally the fewest executors) over this one's.
fn efficiency(
    point: &Point,
    summary: &Summary,
    baselines: &mut HashMap<String, f64>,
) -> Option<f64> {
    let c = &point.config;
    if summary.makespan_s <= 0.0 || c.load.shape != Shape::Burst {
        return None;
    }
    if c.workload.function == Function::Sleep
        && let Some(per_executor) = c.workload.tasks_per_executor
    {
        return Some(per_executor as f64 * c.workload.sleep_s / summary.makespan_s);
    }
    let key = format!("{} {:?}", c.topology.mode.as_str(), c.workload.function);
    let baseline = *baselines.entry(key).or_insert(summary.makespan_s);
    Some(baseline / summary.makespan_s)
}

fn progress(point: &Point, rep: u32, reps: u32, tasks: u64) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(tasks)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:40} [{bar:30}] {pos}/{len} {per_sec:>12} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} ({}/{reps})", point.label(), rep + 1));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_table(name: &str, rows: &[(String, Summary, Option<f64>)]) {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "\n{name}\n{:<width$} {:>7} {:>11} {:>9} {:>9} {:>9} {:>10} {:>6} {:>7}\n",
        "point", "tasks", "tasks/s", "p50 ms", "p99 ms", "max ms", "makespan", "eff", "errors"
    );
    for (label, s, eff) in rows {
        out.push_str(&format!(
            "{label:<width$} {:>7} {:>11.1} {:>9.2} {:>9.2} {:>9.2} {:>9.3}s {:>6} {:>7}\n",
            s.tasks,
            s.throughput,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.makespan_s,
            eff.map_or_else(|| "-".to_owned(), |e| format!("{e:.3}")),
            s.failed + s.lost
        ));
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) for a Unix time.
fn run_name(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_names_are_utc_timestamps() {
        assert_eq!(super::run_name(0), "19700101-000000");
        assert_eq!(super::run_name(1_795_322_158), "20261122-043558");
        assert_eq!(super::run_name(951_782_400), "20000229-000000");
    }
}
