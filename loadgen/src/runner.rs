//! `loadgen run`: every point of an experiment, in order, against systems brought up for it;
//! each point's row is written as soon as it is measured.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use faas::client::Client;
use indicatif::{ProgressBar, ProgressStyle};

use tokio::sync::oneshot;

use crate::breakdown::{self, Breakdown};
use crate::cpu;
use crate::driver;
use crate::experiment::{Experiment, Function, Mode, Point, Reference, Shape};
use crate::export::csv::{CdfCsv, RepetitionsCsv, ResultsCsv, Row};
use crate::export::metadata;
use crate::functions::{self, Serialized};
use crate::instructions::{Callgrind, PerTask};
use crate::launcher::{self, System};
use crate::reference::{self, Unavailable};
use crate::stats::{self, Run, Summary};

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
    let mut recorder = Recorder {
        results: ResultsCsv::create(&dir.join("results.csv"), &swept)?,
        repetitions: RepetitionsCsv::create(&dir.join("repetitions.csv"))?,
        cdf: CdfCsv::create(&dir.join("cdf.csv"))?,
        baselines: HashMap::new(),
        table: Vec::new(),
    };
    eprintln!(
        "{}: {} point(s){} -> {}",
        experiment.name,
        points.len(),
        if experiment.references.is_empty() {
            String::new()
        } else {
            format!(" and references {:?}", experiment.references)
        },
        dir.display()
    );

    let callgrind = if experiment.instructions {
        let real = std::env::current_exe()?
            .parent()
            .context("loadgen has no directory")?
            .to_owned();
        Some(Callgrind::prepare(&real, &dir.join("logs"))?)
    } else {
        None
    };
    let mut payloads = Payloads::default();
    let mut system: Option<(String, System)> = None;
    for point in &points {
        let config = &point.config;
        let topology_key = serde_json::to_string(&(&config.topology, &config.redis_url))?;
        if system.as_ref().is_none_or(|(key, _)| *key != topology_key) {
            // Stop the previous topology before starting the next.
            if let Some((_, previous)) = system.take() {
                previous.stop().await;
            }
            let logs = dir.join("logs").join(format!("point-{}", point.index));
            let launched = launcher::launch(
                &config.topology,
                config.redis_url.as_deref(),
                &logs,
                callgrind.as_ref().map(Callgrind::bin),
            )
            .await?;
            system = Some((topology_key, launched));
        }
        let (_, live) = system.as_mut().expect("launched above");
        let payloads = payloads.of(&config.workload).await?;
        measure_platform(point, live, payloads, callgrind.as_ref(), &mut recorder).await?;
    }
    if let Some((_, last)) = system {
        last.stop().await;
    }

    // References, once per distinct workload (the platform's mode aside).
    let mut measured = HashSet::new();
    for point in &points {
        for &reference in &experiment.references {
            let key = serde_json::to_string(&(reference, reference_key(&point.config)))?;
            if !measured.insert(key) {
                continue;
            }
            let row_point = reference_point(point, reference);
            let payloads = payloads.of(&point.config.workload).await?;
            let logs = dir.join("logs").join(format!("reference-{}", point.index));
            eprintln!("{}", row_point.label());
            let outcome =
                reference::measure(reference, &point.config, point.tasks(), payloads, &logs).await;
            recorder.record_reference(&row_point, reference, outcome)?;
        }
    }

    print_table(&experiment.name, &recorder.table);
    // Charts first: the summary links those that exist.
    match crate::plot::render(&dir) {
        Ok(files) => {
            for file in files {
                eprintln!("chart: {}", file.display());
            }
        }
        Err(e) => eprintln!("charts not drawn: {e:#}"),
    }
    match crate::report::write_summary(&dir) {
        Ok(summary) => eprintln!("summary: {}", summary.display()),
        Err(e) => eprintln!("no summary: {e:#}"),
    }
    Ok(dir)
}

/// Serialized functions and arguments, made once per workload.
#[derive(Default)]
struct Payloads(HashMap<String, Serialized>);

impl Payloads {
    async fn of(&mut self, workload: &crate::experiment::Workload) -> anyhow::Result<&Serialized> {
        let key = serde_json::to_string(workload)?;
        if !self.0.contains_key(&key) {
            let workload = workload.clone();
            let s = tokio::task::spawn_blocking(move || functions::serialize(&workload)).await??;
            self.0.insert(key.clone(), s);
        }
        Ok(&self.0[&key])
    }
}

/// Measures one point on the live platform: warm-up, then each repetition with the CPU time
/// of every component (and, under callgrind, the instructions) around it.
async fn measure_platform(
    point: &Point,
    live: &mut System,
    payloads: &Serialized,
    callgrind: Option<&Callgrind>,
    recorder: &mut Recorder,
) -> anyhow::Result<()> {
    let config = &point.config;
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
            duration_s: None,
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
    let mut cpu_us = Vec::new();
    let mut instructions = Vec::new();
    for rep in 0..config.repetitions {
        let bar = progress(point, rep, config.repetitions, tasks);
        let (submitted, all_submitted) = oneshot::channel();
        // Held executor hosts start during the first repetition: probe once they are up.
        let probe = live.cpu_probe();
        if callgrind.is_some() {
            let pids: Vec<i32> = live.counted().into_iter().map(|(_, pid)| pid).collect();
            Callgrind::zero(&pids)?;
        }
        let before = probe.sample();
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
        let after = live.cpu_probe().sample();
        let done = run.completed + run.failed;
        match callgrind {
            // Times under valgrind are valgrind's: only the counts are kept.
            Some(callgrind) => instructions.push(callgrind.dump(&live.counted(), done)?),
            None => cpu_us.push(cpu::per_task_us(&before, &after, done)),
        }
        runs.push(run);
    }
    let samples: Vec<_> = runs
        .iter()
        .flat_map(|r| r.samples.iter().cloned())
        .collect();
    let breakdown = breakdown::measure(&target, &samples).await;
    let workers = match config.topology.mode {
        Mode::Local => 0,
        _ => config.topology.worker_sizes().len(),
    };
    recorder.record(Measurement {
        point,
        system: config.topology.mode.as_str(),
        workers,
        runs: &runs,
        breakdown: &breakdown,
        memory: Some(live.memory()),
        cpu_us: &cpu_us,
        instructions: &instructions,
        version: String::new(),
        notes: Vec::new(),
    })
}

/// What identifies a reference's workload: the point's configuration without what only the
/// platform has.
fn reference_key(config: &Experiment) -> String {
    let mut neutral = config.clone();
    neutral.topology.mode = Mode::Local;
    neutral.topology.dispatcher_args.clear();
    neutral.topology.worker_args.clear();
    neutral.topology.max_executors_per_worker = 0;
    neutral.topology.start_after_submission = false;
    neutral.references.clear();
    // How the platform's results are collected does not apply to the references.
    neutral.collect.method = crate::experiment::CollectMethod::Fastest;
    neutral.collect.interval_ms = 0.0;
    neutral.collect.window_ms = 0.0;
    serde_json::to_string(&(
        &neutral.topology,
        &neutral.workload,
        &neutral.load,
        &neutral.collect,
        neutral.repetitions,
        neutral.warmup_tasks,
    ))
    .unwrap_or_default()
}

/// The row a reference measured at `point` gets: its parameters without the platform's
/// mode and collection method, led by `system=<reference>`.
fn reference_point(point: &Point, reference: Reference) -> Point {
    let mut params = vec![("system".to_owned(), reference.as_str().to_owned())];
    params.extend(
        point
            .params
            .iter()
            // Neither the mode nor how the platform's results are collected applies.
            .filter(|(k, _)| k != "topology.mode" && !k.starts_with("collect."))
            .cloned(),
    );
    Point {
        index: point.index,
        params,
        config: point.config.clone(),
    }
}

/// One point's measured repetitions, before they are summarized.
struct Measurement<'a> {
    point: &'a Point,
    system: &'a str,
    workers: usize,
    runs: &'a [Run],
    breakdown: &'a Breakdown,
    memory: Option<launcher::Memory>,
    cpu_us: &'a [cpu::PerComponent],
    /// Instructions per task of the platform's processes, per repetition (under callgrind).
    instructions: &'a [PerTask],
    /// What a reference ran.
    version: String,
    /// Warnings that are not about the figures (a reference that could not run).
    notes: Vec<String>,
}

/// Summarizes measured points and writes their rows.
struct Recorder {
    results: ResultsCsv,
    repetitions: RepetitionsCsv,
    cdf: CdfCsv,
    /// The first makespan of each system and function (efficiency of non-sleep bursts).
    baselines: HashMap<String, f64>,
    table: Vec<TableRow>,
}

struct TableRow {
    label: String,
    summary: Summary,
    efficiency: Option<f64>,
    cpu_total_us: Option<f64>,
    warnings: usize,
}

impl Recorder {
    fn record(&mut self, m: Measurement<'_>) -> anyhow::Result<()> {
        let tasks = m.point.tasks();
        let summary = stats::summarize(tasks, m.runs);
        let efficiency = efficiency(m.point, m.system, &summary, &mut self.baselines);
        let mut warnings = m.notes;
        warnings.extend(figure_warnings(&m.point.config, &summary));
        let row = Row {
            point: m.point,
            system: m.system,
            version: &m.version,
            workers: m.workers,
            summary: &summary,
            efficiency: &efficiency,
            breakdown: m.breakdown,
            memory: m.memory,
            cpu_us: m.cpu_us,
            instructions: m.instructions,
            warnings: &warnings,
        };
        self.results.write(&row)?;
        self.repetitions.write(&row)?;
        self.cdf.write(m.point, m.system, &stats::cdf(m.runs))?;
        for warning in &warnings {
            eprintln!("warning: {}: {warning}", m.point.label());
        }
        self.table.push(TableRow {
            label: m.point.label(),
            efficiency: (!efficiency.is_empty()).then(|| stats::mean_std(&efficiency).0),
            cpu_total_us: crate::export::csv::mean_of_each(m.cpu_us).map(|c| c.iter().sum()),
            warnings: warnings.len(),
            summary,
        });
        Ok(())
    }

    fn record_reference(
        &mut self,
        point: &Point,
        reference: Reference,
        outcome: Result<reference::Measured, Unavailable>,
    ) -> anyhow::Result<()> {
        let (runs, cpu_us, version, notes) = match outcome {
            Ok(measured) => {
                let (runs, cpu_us): (Vec<Run>, Vec<cpu::PerComponent>) =
                    measured.runs.into_iter().unzip();
                (runs, cpu_us, measured.version, Vec::new())
            }
            Err(e) => {
                eprintln!("{}: {e:#}", point.label());
                (Vec::new(), Vec::new(), String::new(), vec![e.to_string()])
            }
        };
        self.record(Measurement {
            point,
            system: reference.as_str(),
            workers: 0,
            runs: &runs,
            breakdown: &Breakdown::default(),
            memory: None,
            cpu_us: &cpu_us,
            instructions: &[],
            version,
            notes,
        })
    }
}

/// What deserves a reader's attention in a point's figures.
fn figure_warnings(config: &Experiment, summary: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    if summary.repetitions == 0 {
        return out;
    }
    if summary.repetitions == 1 {
        out.push("1 repetition: no confidence interval".to_owned());
    }
    out.extend(summary.throughput.warning("throughput"));
    if config.load.shape != Shape::Burst {
        out.extend(summary.p50_ms.warning("p50"));
    }
    if summary.failed > 0 {
        out.push(format!("{} task(s) failed", summary.failed));
    }
    if summary.lost > 0 {
        out.push(format!("{} task(s) lost", summary.lost));
    }
    out
}

/// Weak-scaling efficiency of each repetition: for sleep tasks the ideal makespan (tasks per
/// executor × sleep) over the measured one; for other burst workloads that sweep
/// `topology.executors`, the mean makespan of the first point of the same system and
/// function (normally the fewest executors) over this one's.
fn efficiency(
    point: &Point,
    system: &str,
    summary: &Summary,
    baselines: &mut HashMap<String, f64>,
) -> Vec<f64> {
    let c = &point.config;
    if summary.makespan_s.mean <= 0.0 || c.load.shape != Shape::Burst {
        return Vec::new();
    }
    // One value per repetition, NaN where one measured nothing, so they stay aligned with
    // the repetitions.
    let makespans = summary.per_repetition.iter().map(|f| {
        if f.makespan_s > 0.0 && f.completed + f.failed > 0 {
            f.makespan_s
        } else {
            f64::NAN
        }
    });
    if c.workload.function == Function::Sleep
        && let Some(per_executor) = c.workload.tasks_per_executor
    {
        let ideal = per_executor as f64 * c.workload.sleep_s;
        return makespans.map(|m| ideal / m).collect();
    }
    // Against the first point only where there is a scaling sweep to be the first of.
    if !point.params.iter().any(|(k, _)| k == "topology.executors") {
        return Vec::new();
    }
    let key = format!("{system} {:?}", c.workload.function);
    let baseline = *baselines.entry(key).or_insert(summary.makespan_s.mean);
    makespans.map(|m| baseline / m).collect()
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

fn print_table(name: &str, rows: &[TableRow]) {
    let width = rows.iter().map(|r| r.label.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "\n{name} (means over repetitions; ± is half the 95% interval)\n{:<width$} {:>7} {:>20} {:>9} {:>9} {:>10} {:>6} {:>9} {:>7} {:>5}\n",
        "point",
        "tasks",
        "tasks/s",
        "p50 ms",
        "p99 ms",
        "makespan",
        "eff",
        "cpu µs/t",
        "errors",
        "warn"
    );
    for r in rows {
        let s = &r.summary;
        if s.repetitions == 0 {
            out.push_str(&format!("{:<width$} unavailable\n", r.label));
            continue;
        }
        let half = (s.throughput.hi - s.throughput.lo) / 2.0;
        out.push_str(&format!(
            "{:<width$} {:>7} {:>11.1} ± {:>6.1} {:>9.2} {:>9.2} {:>9.3}s {:>6} {:>9} {:>7} {:>5}\n",
            r.label,
            s.tasks,
            s.throughput.mean,
            half,
            s.p50_ms.mean,
            s.p99_ms.mean,
            s.makespan_s.mean,
            r.efficiency
                .map_or_else(|| "-".to_owned(), |e| format!("{e:.3}")),
            r.cpu_total_us
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
            s.failed + s.lost,
            r.warnings,
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

    #[test]
    fn a_reference_runs_once_per_workload_and_is_labelled_by_what_applies_to_it() {
        let text = r#"
name = "t"
[topology]
mode = "local"
executors = 2
[workload]
function = "noop"
tasks = 10
[load]
shape = "closed"
[collect]
method = "fastest"
[[sweep]]
param = "topology.mode"
values = ["local", "push"]
[[sweep]]
param = "collect.method"
values = ["fastest", "poll"]
[[sweep]]
param = "topology.executors"
values = [2, 4]
"#;
        let (_, points) = crate::experiment::Experiment::parse(text, "t.toml").unwrap();
        let keys: std::collections::HashSet<String> = points
            .iter()
            .map(|p| super::reference_key(&p.config))
            .collect();
        assert_eq!(keys.len(), 2, "one workload per executor count");
        let row = super::reference_point(&points[1], crate::experiment::Reference::Floor);
        assert_eq!(row.label(), "system=floor executors=4");
    }
}
