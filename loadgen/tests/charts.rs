//! `loadgen plot` on hand-written run directories: every chart of the current CSV schema
//! (references included, one of them unavailable), and a run written before it (no `system`
//! column, no confidence intervals), each drawn as a non-empty SVG and PNG.
//!
//! The runs are left in `$CARGO_TARGET_TMPDIR/charts/` to be looked at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const METRICS: [&str; 6] = [
    "makespan_s",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "efficiency",
];
const PLATFORM: [&str; 3] = ["local", "pull", "push"];
const REFERENCES: [&str; 6] = ["floor", "process_pool", "zmq", "ray", "celery", "dask"];

/// The `results.csv` header of the current schema after the `param_*` columns.
fn columns() -> Vec<String> {
    let mut columns: Vec<String> = [
        "system",
        "mode",
        "function",
        "executors",
        "workers",
        "tasks",
        "repetitions",
        "completed",
        "failed",
        "lost",
        "offered_rate",
    ]
    .map(String::from)
    .to_vec();
    for metric in METRICS {
        columns.push(metric.to_owned());
        for suffix in ["lo", "hi", "median", "min", "max", "cv"] {
            columns.push(format!("{metric}_{suffix}"));
        }
    }
    columns.extend(
        [
            "makespan_std_s",
            "throughput_std",
            "p999_ms",
            "max_ms",
            "gateway_peak_rss_mb",
            "dispatcher_peak_rss_mb",
            "cpu_client_us",
            "cpu_gateway_us",
            "cpu_dispatcher_us",
            "cpu_redis_us",
            "cpu_workers_us",
            "cpu_executors_us",
            "warnings",
            "breakdown_samples",
        ]
        .map(String::from),
    );
    columns
}

/// One row: named cells; a metric given as `(mean, spread)` also gets its interval.
#[derive(Default)]
struct Row(BTreeMap<String, String>);

impl Row {
    fn new(system: &str) -> Self {
        let mut row = Self::default();
        row.set("system", system);
        row.set(
            "mode",
            if PLATFORM.contains(&system) {
                system
            } else {
                ""
            },
        );
        row.set("repetitions", "3");
        row
    }

    fn set(&mut self, column: &str, value: impl ToString) -> &mut Self {
        self.0.insert(column.to_owned(), value.to_string());
        self
    }

    fn metric(&mut self, name: &str, mean: f64, spread: f64) -> &mut Self {
        self.set(name, format!("{mean:.6}"));
        self.set(&format!("{name}_lo"), format!("{:.6}", mean - spread));
        self.set(&format!("{name}_hi"), format!("{:.6}", mean + spread * 1.3));
        self.set(&format!("{name}_cv"), format!("{:.4}", spread / mean));
        self
    }

    fn unavailable(&mut self, package: &str) -> &mut Self {
        self.set(
            "warnings",
            format!("unavailable: the {package} package is not installed; reference skipped"),
        )
    }
}

/// A run directory as `loadgen run` leaves it.
struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    fn new(name: &str, charts: &[&str]) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("charts")
            .join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let charts = charts
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            dir.join("experiment.toml"),
            format!(
                "name = \"{name}\"\ncharts = [{charts}]\n\n[topology]\nmode = \"local\"\n\
                 executors = 2\n\n[workload]\nfunction = \"noop\"\ntasks = 10\n\n[load]\n\
                 shape = \"burst\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("metadata.json"),
            r#"{"machine": {"cores": 2, "cpu": "test"}, "git_commit": "0"}"#,
        )
        .unwrap();
        Self { dir }
    }

    fn results(&self, params: &[&str], rows: &[Row]) {
        let mut writer = csv::Writer::from_path(self.dir.join("results.csv")).unwrap();
        let mut header = vec!["point".to_owned(), "label".to_owned()];
        header.extend(
            params
                .iter()
                .map(|p| format!("param_{}", p.replace('.', "_"))),
        );
        header.extend(columns());
        writer.write_record(&header).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let record: Vec<String> = header
                .iter()
                .map(|column| match column.as_str() {
                    "point" => i.to_string(),
                    "label" => row.0.get("label").cloned().unwrap_or_default(),
                    other => row.0.get(other).cloned().unwrap_or_default(),
                })
                .collect();
            writer.write_record(&record).unwrap();
        }
        writer.flush().unwrap();
    }

    /// A log-normal-ish latency CDF per point whose row has a `p50_ms`.
    fn cdf(&self, rows: &[Row]) {
        let mut writer = csv::Writer::from_path(self.dir.join("cdf.csv")).unwrap();
        writer
            .write_record(["point", "label", "system", "quantile", "latency_ms"])
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            let Some(p50) = row.0.get("p50_ms").and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            for step in 0..=50 {
                let q = f64::from(step) / 50.0;
                let ms = p50 * (3.0 * (q - 0.5)).exp() * if q > 0.95 { 2.0 } else { 1.0 };
                writer
                    .write_record([
                        i.to_string(),
                        row.0.get("label").cloned().unwrap_or_default(),
                        row.0["system"].clone(),
                        format!("{q:.4}"),
                        format!("{ms:.6}"),
                    ])
                    .unwrap();
            }
        }
        writer.flush().unwrap();
    }

    /// Runs `loadgen plot` and checks that each chart was drawn as SVG and PNG.
    fn plot(&self, name: &str, charts: &[&str]) {
        for chart in charts {
            for ext in ["svg", "png"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{chart}.{ext}")));
            }
        }
        let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("plot")
            .arg(&self.dir)
            .output()
            .expect("run loadgen plot");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        for chart in charts {
            let svg = std::fs::read_to_string(self.dir.join(format!("{chart}.svg")))
                .unwrap_or_else(|e| panic!("{chart}.svg: {e}\n{stderr}"));
            assert!(svg.contains("<svg") && svg.contains(name), "{chart}.svg");
            let png = std::fs::read(self.dir.join(format!("{chart}.png")))
                .unwrap_or_else(|e| panic!("{chart}.png: {e}\n{stderr}"));
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2_000,
                "{chart}.png is not a drawn PNG"
            );
        }
    }
}

/// How fast each system runs no-ops here, tasks/s (made up, distinct).
fn speed(system: &str) -> f64 {
    match system {
        "local" => 2600.0,
        "pull" => 1000.0,
        "push" => 1500.0,
        "floor" => 6000.0,
        "process_pool" => 4000.0,
        "zmq" => 9000.0,
        "celery" => 400.0,
        "dask" => 1800.0,
        _ => 1000.0,
    }
}

#[test]
fn weak_scaling_with_references_draws_one_panel_per_function() {
    let run = RunDir::new("weak_scaling", &["efficiency"]);
    let mut rows = Vec::new();
    for system in PLATFORM.iter().chain(&REFERENCES) {
        for k in 0..9 {
            let executors = 1u32 << k;
            for function in ["sleep", "noop"] {
                let mut row = Row::new(system);
                row.set(
                    "label",
                    format!("mode={system} executors={executors} function={function}"),
                )
                .set("param_topology_mode", system)
                .set("param_topology_executors", executors)
                .set("param_workload_function", function)
                .set("function", function)
                .set("executors", executors)
                .set("tasks", 5 * executors);
                if *system == "ray" {
                    row.unavailable("ray");
                } else if function == "sleep" {
                    let e =
                        0.98 - f64::from(k) * 0.02 * speed("zmq") / speed(system).max(500.0) / 4.0;
                    row.metric("efficiency", e.max(0.2), 0.01 + f64::from(k) * 0.004);
                } else {
                    let t = speed(system) * (1.0 - (-f64::from(executors) / 4.0).exp());
                    row.metric("throughput", t, t * 0.06);
                    row.metric("efficiency", 1.0 / f64::from(executors), 0.01);
                }
                rows.push(row);
            }
        }
    }
    run.results(
        &["topology.mode", "topology.executors", "workload.function"],
        &rows,
    );
    run.plot("weak_scaling", &["efficiency"]);
}

#[test]
fn throughput_and_its_latency_cdfs() {
    let run = RunDir::new("throughput", &["throughput", "latency_cdf"]);
    let mut rows = Vec::new();
    for system in PLATFORM {
        for rate in [500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0] {
            let achieved = f64::min(rate, speed(system));
            let mut row = Row::new(system);
            row.set("label", format!("mode={system} rate={rate:.1}"))
                .set("param_topology_mode", system)
                .set("param_load_rate", format!("{rate:.1}"))
                .set("offered_rate", rate)
                .metric("throughput", achieved, achieved * 0.03)
                .metric("p50_ms", 2.0 + 5000.0 * (rate / speed(system)).powi(4), 0.5)
                .metric("p99_ms", 9.0 + 9000.0 * (rate / speed(system)).powi(4), 3.0);
            rows.push(row);
        }
    }
    run.results(&["topology.mode", "load.rate"], &rows);
    run.cdf(&rows);
    run.plot("throughput", &["throughput", "latency_cdf"]);
}

#[test]
fn latency_per_collection_method() {
    let run = RunDir::new("latency", &["latency_cdf"]);
    let mut rows = Vec::new();
    for system in PLATFORM.iter().chain(&["floor"]) {
        for method in ["fastest", "poll"] {
            let mut row = Row::new(system);
            let p50 = 3000.0 / speed(system) + if method == "poll" { 12.0 } else { 0.0 };
            row.set("label", format!("mode={system} method={method}"))
                .set("param_topology_mode", system)
                .set("param_collect_method", method)
                .metric("p50_ms", p50, 0.1);
            rows.push(row);
        }
    }
    run.results(&["topology.mode", "collect.method"], &rows);
    run.cdf(&rows);
    run.plot("latency", &["latency_cdf"]);
}

#[test]
fn batch_against_the_references() {
    let charts = ["systems", "latency_cdf"];
    let run = RunDir::new("batch", &charts);
    let mut rows = Vec::new();
    for system in PLATFORM.iter().chain(&REFERENCES) {
        let mut row = Row::new(system);
        row.set("label", format!("system={system}"))
            .set("function", "noop")
            .set("tasks", 20_000);
        if *system == "ray" {
            row.unavailable("ray");
        } else {
            let t = speed(system);
            row.metric("throughput", t, t * 0.05)
                .metric("p50_ms", 20_000.0 / t * 400.0, 10.0)
                .set("cpu_executors_us", 300.0)
                .set("cpu_client_us", 40.0);
        }
        rows.push(row);
    }
    run.results(&[], &rows);
    run.cdf(&rows);
    run.plot("batch", &charts);
}

#[test]
fn memory_per_mode() {
    let run = RunDir::new("memory", &["memory"]);
    let rows: Vec<Row> = PLATFORM
        .iter()
        .zip([(29.9, 7.3), (32.6, 8.5), (31.5, 8.4)])
        .map(|(system, (gateway, dispatcher))| {
            let mut row = Row::new(system);
            row.set("label", format!("mode={system}"))
                .set("param_topology_mode", system)
                .set("gateway_peak_rss_mb", gateway)
                .set("dispatcher_peak_rss_mb", dispatcher);
            row
        })
        .collect();
    run.results(&["topology.mode"], &rows);
    run.plot("memory", &["memory"]);
}

#[test]
fn envelope_of_simulated_executors() {
    let run = RunDir::new("envelope", &["envelope"]);
    let mut rows = Vec::new();
    for system in PLATFORM {
        for k in 0..8 {
            let executors = 1u32 << k;
            let t = speed(system) * 4.0 * (1.0 - (-f64::from(executors) / 16.0).exp());
            let mut row = Row::new(system);
            row.set("label", format!("mode={system} executors={executors}"))
                .set("param_topology_mode", system)
                .set("param_topology_executors", executors)
                .set("executors", executors)
                .set("workers", executors.div_ceil(8))
                .metric("throughput", t, t * 0.04)
                .set(
                    "cpu_dispatcher_us",
                    format!("{:.1}", 200_000.0 / speed(system) + f64::from(k) * 3.0),
                );
            rows.push(row);
        }
    }
    run.results(&["topology.mode", "topology.executors"], &rows);
    run.plot("envelope", &["envelope"]);
}

/// A run written before `system`, the intervals and the references: `mode` says who ran,
/// and `cdf.csv` has `mode` where it now has `system`. The throughput chart has no
/// `offered_rate` to draw and is skipped, not an error.
#[test]
fn a_run_in_the_old_schema_still_draws() {
    let run = RunDir::new("old_schema", &["efficiency", "latency_cdf", "throughput"]);
    let header = "point,label,param_topology_mode,param_topology_executors,\
                  param_workload_function,mode,function,executors,workers,tasks,repetitions,\
                  completed,failed,lost,makespan_s,makespan_std_s,throughput,throughput_std,\
                  offered_rate,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,efficiency,\
                  gateway_peak_rss_mb,dispatcher_peak_rss_mb";
    let mut csv = format!("{header}\n");
    let mut cdf = String::from("point,label,mode,quantile,latency_ms\n");
    let mut point = 0;
    for mode in PLATFORM {
        for executors in [1, 2, 4, 8] {
            for function in ["sleep", "noop"] {
                let label = format!("mode={mode} executors={executors} function={function}");
                let (efficiency, throughput) = if function == "sleep" {
                    (
                        0.98 - f64::from(executors) * 0.01,
                        f64::from(executors) * 9.8,
                    )
                } else {
                    (2.0 / f64::from(executors), speed(mode) * 0.8)
                };
                csv.push_str(&format!(
                    "{point},{label},{mode},{executors},{function},{mode},{function},\
                     {executors},1,{tasks},3,{tasks},0,0,0.5,0.001,{throughput},1.0,,3.0,4.0,\
                     5.0,5.5,6.0,{efficiency},8.0,7.3\n",
                    tasks = executors * 5
                ));
                for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                    cdf.push_str(&format!(
                        "{point},{label},{mode},{q},{}\n",
                        1.0 + q * 4.0 + f64::from(point)
                    ));
                }
                point += 1;
            }
        }
    }
    std::fs::write(run.dir.join("results.csv"), csv).unwrap();
    std::fs::write(run.dir.join("cdf.csv"), cdf).unwrap();
    run.plot("old_schema", &["efficiency", "latency_cdf"]);
    assert!(!run.dir.join("throughput.svg").exists());
}
