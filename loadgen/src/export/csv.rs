//! The CSV files: rows written (and flushed) after every point, so an interrupted run keeps
//! what it measured.

use std::fs::File;
use std::path::Path;

use crate::breakdown::{Breakdown, PHASES};
use crate::cpu::{self, COMPONENTS};
use crate::experiment::Point;
use crate::instructions::{COUNTED, PerTask};
use crate::launcher::Memory;
use crate::stats::{Estimate, Summary};

/// One finished point, as exported.
pub struct Row<'a> {
    pub point: &'a Point,
    /// Who ran it: the platform's mode (`local`, `pull`, `push`) or a reference's name.
    pub system: &'a str,
    /// What a reference ran (e.g. `ray 2.40.0`); empty for the platform (see `metadata.json`).
    pub version: &'a str,
    pub workers: usize,
    pub summary: &'a Summary,
    /// Ideal or first-point makespan over this makespan, per repetition (see `efficiency` in
    /// the README); empty where it does not apply.
    pub efficiency: &'a [f64],
    pub breakdown: &'a Breakdown,
    pub memory: Option<Memory>,
    /// CPU µs per task of each component, per repetition (empty: not measured).
    pub cpu_us: &'a [cpu::PerComponent],
    /// Instructions per task of the platform's processes, per repetition (empty: not
    /// counted).
    pub instructions: &'a [PerTask],
    pub warnings: &'a [String],
}

/// The figures estimated over repetitions; each gets a column per [`ESTIMATE_SUFFIXES`].
pub const ESTIMATED: &[&str] = &[
    "makespan_s",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "efficiency",
];

/// After the mean (the column named as the figure): the 95% bootstrap interval of the mean,
/// the median, the range and the coefficient of variation.
pub const ESTIMATE_SUFFIXES: &[&str] = &["lo", "hi", "median", "min", "max", "cv"];

/// The columns after the `param_*` ones.
fn columns() -> Vec<String> {
    let mut out: Vec<String> = [
        "system",
        "version",
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
    .iter()
    .map(|c| (*c).to_owned())
    .collect();
    for figure in ESTIMATED {
        out.push((*figure).to_owned());
        out.extend(ESTIMATE_SUFFIXES.iter().map(|s| format!("{figure}_{s}")));
    }
    out.extend(
        [
            "makespan_std_s",
            "throughput_std",
            "p999_ms",
            "max_ms",
            "gateway_peak_rss_mb",
            "dispatcher_peak_rss_mb",
        ]
        .iter()
        .map(|c| (*c).to_owned()),
    );
    out.extend(cpu_columns());
    out.extend(COMPONENTS.iter().map(|c| format!("util_{c}")));
    out.extend(instruction_columns());
    out.push("warnings".to_owned());
    out.push("breakdown_samples".to_owned());
    out.extend(PHASES.iter().map(|p| format!("phase_{p}_mean_us")));
    out.extend(PHASES.iter().map(|p| format!("phase_{p}_p50_us")));
    out
}

fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        String::new()
    }
}

/// The mean and [`ESTIMATE_SUFFIXES`] columns of one figure (empty when it has no values).
fn estimate_fields(e: &Estimate) -> Vec<String> {
    if e.n == 0 {
        return vec![String::new(); 1 + ESTIMATE_SUFFIXES.len()];
    }
    [e.mean, e.lo, e.hi, e.median, e.min, e.max, e.cv]
        .into_iter()
        .map(f)
        .collect()
}

/// Every row of a CSV file as column → value (what charts and reports read: columns are
/// looked up by name, so older runs with fewer columns still load).
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<std::collections::BTreeMap<String, String>>> {
    use anyhow::Context;
    let mut reader = ::csv::Reader::from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        rows.push(
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    Ok(rows)
}

/// The cores each component kept busy during each repetition (CPU time over the repetition's
/// wall time): with idle workers connected, the dispatcher's share over the workers is what
/// heartbeats cost per worker.
fn utilization(row: &Row<'_>) -> Vec<cpu::PerComponent> {
    row.cpu_us
        .iter()
        .zip(&row.summary.per_repetition)
        .filter(|(_, f)| f.makespan_s > 0.0)
        .map(|(per_task, f)| {
            let done = (f.completed + f.failed) as f64;
            per_task.map(|us| us * done / 1e6 / f.makespan_s)
        })
        .collect()
}

/// `instr_<component>` per [`COUNTED`], then `instr_total`.
fn instruction_columns() -> impl Iterator<Item = String> {
    COUNTED
        .iter()
        .map(|c| format!("instr_{c}"))
        .chain(std::iter::once("instr_total".to_owned()))
}

/// The instruction columns of one set of counts (empty when not counted).
fn instruction_fields(counts: &Option<PerTask>) -> Vec<String> {
    match counts {
        Some(c) => c
            .iter()
            .chain(std::iter::once(&c.iter().sum::<f64>()))
            .map(|v| format!("{v:.0}"))
            .collect(),
        None => vec![String::new(); COUNTED.len() + 1],
    }
}

/// The mean of each position over the repetitions, if any.
#[must_use]
pub fn mean_of_each<const N: usize>(per_repetition: &[[f64; N]]) -> Option<[f64; N]> {
    if per_repetition.is_empty() {
        return None;
    }
    let mut out = [0.0; N];
    for rep in per_repetition {
        for (slot, v) in out.iter_mut().zip(rep) {
            *slot += v / per_repetition.len() as f64;
        }
    }
    Some(out)
}

/// Writes `results.csv`, one row per point.
pub struct ResultsCsv {
    writer: ::csv::Writer<File>,
    swept: Vec<String>,
}

impl ResultsCsv {
    /// Creates the file with its header: `point`, `label`, one `param_*` column per swept
    /// parameter, then the figures.
    pub fn create(path: &Path, swept: &[String]) -> anyhow::Result<Self> {
        let mut writer = ::csv::Writer::from_path(path)?;
        let mut header = vec!["point".to_owned(), "label".to_owned()];
        header.extend(
            swept
                .iter()
                .map(|p| format!("param_{}", p.replace('.', "_"))),
        );
        header.extend(columns());
        writer.write_record(&header)?;
        writer.flush()?;
        Ok(Self {
            writer,
            swept: swept.to_vec(),
        })
    }

    pub fn write(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        let (p, s) = (row.point, row.summary);
        let c = &p.config;
        let mut record = vec![p.index.to_string(), p.label()];
        // A reference row has no value for the swept mode: its column stays empty.
        record.extend(self.swept.iter().map(|param| {
            p.params
                .iter()
                .find(|(k, _)| k == param)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }));
        let measured = s.repetitions > 0;
        let count = |v: u64| {
            if measured {
                v.to_string()
            } else {
                String::new()
            }
        };
        record.extend([
            row.system.to_owned(),
            row.version.to_owned(),
            c.topology.mode.as_str().to_owned(),
            crate::functions::kind(c.workload.function).to_owned(),
            c.topology.executors.to_string(),
            row.workers.to_string(),
            count(s.tasks),
            s.repetitions.to_string(),
            count(s.completed),
            count(s.failed),
            count(s.lost),
            c.load.rate.map(f).unwrap_or_default(),
        ]);
        for estimate in [
            &s.makespan_s,
            &s.throughput,
            &s.p50_ms,
            &s.p90_ms,
            &s.p99_ms,
        ] {
            record.extend(estimate_fields(estimate));
        }
        record.extend(estimate_fields(&Estimate::of(row.efficiency)));
        let legacy = |v: f64| if measured { f(v) } else { String::new() };
        record.extend([
            legacy(s.makespan_s.std),
            legacy(s.throughput.std),
            legacy(s.p999_ms),
            legacy(s.max_ms),
        ]);
        record.extend(match row.memory {
            Some(m) => [
                format!("{:.1}", m.gateway_peak_mb),
                format!("{:.1}", m.dispatcher_peak_mb),
            ],
            None => [String::new(), String::new()],
        });
        match mean_of_each(row.cpu_us) {
            Some(cpu) => {
                record.extend(cpu.iter().map(|v| format!("{v:.1}")));
                record.push(format!("{:.1}", cpu.iter().sum::<f64>()));
            }
            None => record.extend(vec![String::new(); COMPONENTS.len() + 1]),
        }
        match mean_of_each(&utilization(row)) {
            Some(shares) => record.extend(shares.iter().map(|v| f(*v))),
            None => record.extend(vec![String::new(); COMPONENTS.len()]),
        }
        record.extend(instruction_fields(&mean_of_each(row.instructions)));
        record.push(row.warnings.join("; "));
        let b = row.breakdown;
        record.push(b.samples.to_string());
        let phase = |v: f64| {
            if b.samples == 0 {
                String::new()
            } else {
                format!("{v:.1}")
            }
        };
        record.extend(b.mean_us.iter().chain(&b.p50_us).map(|v| phase(*v)));
        self.writer.write_record(&record)?;
        self.writer.flush()?;
        Ok(())
    }
}

/// The columns of `repetitions.csv`, one row per repetition of every point: what
/// `loadgen compare` reads.
pub fn repetition_columns() -> Vec<String> {
    let mut out: Vec<String> = [
        "point",
        "label",
        "system",
        "repetition",
        "tasks",
        "completed",
        "failed",
        "lost",
    ]
    .iter()
    .chain(ESTIMATED)
    .map(|c| (*c).to_owned())
    .collect();
    out.extend(cpu_columns());
    out.extend(instruction_columns());
    out
}

/// `cpu_<component>_us` per [`COMPONENTS`], then `cpu_total_us`.
fn cpu_columns() -> impl Iterator<Item = String> {
    COMPONENTS
        .iter()
        .map(|c| format!("cpu_{c}_us"))
        .chain(std::iter::once("cpu_total_us".to_owned()))
}

/// Writes `repetitions.csv`.
pub struct RepetitionsCsv {
    writer: ::csv::Writer<File>,
}

impl RepetitionsCsv {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut writer = ::csv::Writer::from_path(path)?;
        writer.write_record(repetition_columns())?;
        writer.flush()?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        for (i, figures) in row.summary.per_repetition.iter().enumerate() {
            let mut record = vec![
                row.point.index.to_string(),
                row.point.label(),
                row.system.to_owned(),
                (i + 1).to_string(),
                figures.tasks.to_string(),
                figures.completed.to_string(),
                figures.failed.to_string(),
                figures.lost.to_string(),
                f(figures.makespan_s),
                f(figures.throughput),
                f(figures.p50_ms),
                f(figures.p90_ms),
                f(figures.p99_ms),
                row.efficiency.get(i).copied().map(f).unwrap_or_default(),
            ];
            match row.cpu_us.get(i) {
                Some(cpu) => {
                    record.extend(cpu.iter().map(|v| format!("{v:.1}")));
                    record.push(format!("{:.1}", cpu.iter().sum::<f64>()));
                }
                None => record.extend(vec![String::new(); COMPONENTS.len() + 1]),
            }
            record.extend(instruction_fields(&row.instructions.get(i).copied()));
            self.writer.write_record(&record)?;
        }
        self.writer.flush()?;
        Ok(())
    }
}

/// Writes `cdf.csv`: `point,label,system,quantile,latency_ms`.
pub struct CdfCsv {
    writer: ::csv::Writer<File>,
}

impl CdfCsv {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut writer = ::csv::Writer::from_path(path)?;
        writer.write_record(["point", "label", "system", "quantile", "latency_ms"])?;
        writer.flush()?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, point: &Point, system: &str, cdf: &[(f64, f64)]) -> anyhow::Result<()> {
        for (q, ms) in cdf {
            self.writer.write_record([
                point.index.to_string(),
                point.label(),
                system.to_owned(),
                format!("{q:.4}"),
                format!("{ms:.6}"),
            ])?;
        }
        self.writer.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Experiment;
    use crate::stats::{Run, new_histogram};

    #[test]
    fn rows_have_param_columns_estimates_and_are_on_disk_after_each_write() {
        let text = r#"
name = "t"
[topology]
mode = "local"
executors = 1
[workload]
function = "noop"
tasks = 10
[load]
shape = "closed"
[[sweep]]
param = "topology.mode"
values = ["local", "push"]
"#;
        let (exp, points) = Experiment::parse(text, "t.toml").unwrap();
        let dir = std::env::temp_dir().join(format!("loadgen-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.csv");
        let swept: Vec<String> = exp.sweep.iter().map(|s| s.param.clone()).collect();
        let mut csv = ResultsCsv::create(&path, &swept).unwrap();
        let runs: Vec<Run> = [2.0, 2.5, 3.0]
            .iter()
            .map(|&makespan_s| {
                let mut latency = new_histogram();
                latency.record(1000).unwrap();
                Run {
                    completed: 10,
                    failed: 0,
                    lost: 0,
                    makespan_s,
                    latency,
                    samples: Vec::new(),
                }
            })
            .collect();
        let summary = crate::stats::summarize(10, &runs);
        let row = Row {
            point: &points[1],
            system: "push",
            version: "",
            workers: 1,
            summary: &summary,
            efficiency: &[0.5, 0.4, 0.6],
            breakdown: &Breakdown {
                samples: 2,
                mean_us: [1.0, 2.0, 3.0, 4.0, 5.0],
                p50_us: [1.5; 5],
            },
            memory: Some(Memory {
                gateway_peak_mb: 12.3,
                dispatcher_peak_mb: 30.0,
            }),
            cpu_us: &[
                [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                [3.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ],
            instructions: &[[100.0, 200.0, 0.0], [300.0, 200.0, 0.0]],
            warnings: &["throughput varies".to_owned()],
        };
        csv.write(&row).unwrap();
        let mut reader = ::csv::Reader::from_path(&path).unwrap();
        let header = reader.headers().unwrap().clone();
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(header.len(), record.len());
        let get = |name: &str| {
            let i = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{name}"));
            record[i].to_owned()
        };
        assert_eq!(get("param_topology_mode"), "push");
        assert_eq!(get("system"), "push");
        assert_eq!(get("tasks"), "10");
        assert_eq!(get("repetitions"), "3");
        assert_eq!(get("makespan_s"), "2.500000");
        assert_eq!(get("makespan_s_min"), "2.000000");
        assert_eq!(get("makespan_s_max"), "3.000000");
        let (lo, hi): (f64, f64) = (
            get("throughput_lo").parse().unwrap(),
            get("throughput_hi").parse().unwrap(),
        );
        let mean: f64 = get("throughput").parse().unwrap();
        // Three repetitions: Student's t, wider than their range.
        assert!(
            lo < 10.0 / 3.0 && lo < mean && mean < hi && hi > 5.0,
            "{lo} {mean} {hi}"
        );
        assert_eq!(get("efficiency"), "0.500000");
        assert_eq!(get("cpu_client_us"), "2.0");
        assert_eq!(get("cpu_total_us"), "22.0");
        assert_eq!(get("gateway_peak_rss_mb"), "12.3");
        assert_eq!(get("warnings"), "throughput varies");
        assert_eq!(get("instr_gateway"), "200");
        // Client CPU: 1 and 3 µs per task in the first two repetitions (10 tasks in 2 and 2.5 s).
        let share: f64 = get("util_client").parse().unwrap();
        assert!((share - (1.0 * 10.0 / 2.0 + 3.0 * 10.0 / 2.5) / 2.0 / 1e6).abs() < 1e-6);
        assert_eq!(get("instr_total"), "400");
        assert_eq!(get("phase_result_p50_us"), "1.5");

        let mut reps = RepetitionsCsv::create(&dir.join("repetitions.csv")).unwrap();
        reps.write(&row).unwrap();
        let text = std::fs::read_to_string(dir.join("repetitions.csv")).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines()
                .nth(3)
                .unwrap()
                .starts_with("1,mode=push,push,3,10,10,0,0,3.000000,")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
