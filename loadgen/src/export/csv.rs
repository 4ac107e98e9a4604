//! The CSV files: rows written (and flushed) after every point, so an interrupted run keeps
//! what it measured.

use std::fs::File;
use std::path::Path;

use crate::breakdown::{Breakdown, PHASES};
use crate::experiment::Point;
use crate::launcher::Memory;
use crate::stats::Summary;

/// One finished point, as exported.
pub struct Row<'a> {
    pub point: &'a Point,
    pub workers: usize,
    pub summary: &'a Summary,
    /// Ideal or first-point makespan over this makespan (see `efficiency` in the README).
    pub efficiency: Option<f64>,
    pub breakdown: &'a Breakdown,
    pub memory: Memory,
}

/// The fixed columns after the `param_*` ones.
pub const COLUMNS: &[&str] = &[
    "mode",
    "function",
    "executors",
    "workers",
    "tasks",
    "repetitions",
    "completed",
    "failed",
    "lost",
    "makespan_s",
    "makespan_std_s",
    "throughput",
    "throughput_std",
    "offered_rate",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "efficiency",
    "gateway_peak_rss_mb",
    "dispatcher_peak_rss_mb",
    "breakdown_samples",
];

/// The per-phase columns that end each row: `phase_<name>_mean_us`, then `phase_<name>_p50_us`.
fn phase_columns() -> Vec<String> {
    let mean = PHASES.iter().map(|p| format!("phase_{p}_mean_us"));
    let p50 = PHASES.iter().map(|p| format!("phase_{p}_p50_us"));
    mean.chain(p50).collect()
}

/// Writes `results.csv`.
pub struct ResultsCsv {
    writer: ::csv::Writer<File>,
}

impl ResultsCsv {
    /// Creates the file with its header: `point`, one `param_*` column per swept parameter,
    /// then [`COLUMNS`].
    pub fn create(path: &Path, swept: &[String]) -> anyhow::Result<Self> {
        let mut writer = ::csv::Writer::from_path(path)?;
        let mut header = vec!["point".to_owned(), "label".to_owned()];
        header.extend(
            swept
                .iter()
                .map(|p| format!("param_{}", p.replace('.', "_"))),
        );
        header.extend(COLUMNS.iter().map(|c| (*c).to_owned()));
        header.extend(phase_columns());
        writer.write_record(&header)?;
        writer.flush()?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        let (p, s) = (row.point, row.summary);
        let c = &p.config;
        let mut record = vec![p.index.to_string(), p.label()];
        record.extend(p.params.iter().map(|(_, v)| v.clone()));
        let f = |v: f64| format!("{v:.6}");
        record.extend([
            c.topology.mode.as_str().to_owned(),
            format!("{:?}", c.workload.function).to_lowercase(),
            c.topology.executors.to_string(),
            row.workers.to_string(),
            s.tasks.to_string(),
            s.repetitions.to_string(),
            s.completed.to_string(),
            s.failed.to_string(),
            s.lost.to_string(),
            f(s.makespan_s),
            f(s.makespan_std_s),
            f(s.throughput),
            f(s.throughput_std),
            c.load.rate.map(f).unwrap_or_default(),
            f(s.p50_ms),
            f(s.p90_ms),
            f(s.p99_ms),
            f(s.p999_ms),
            f(s.max_ms),
            row.efficiency.map(f).unwrap_or_default(),
            format!("{:.1}", row.memory.gateway_peak_mb),
            format!("{:.1}", row.memory.dispatcher_peak_mb),
            row.breakdown.samples.to_string(),
        ]);
        let b = row.breakdown;
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

/// Writes `cdf.csv`: `point,label,mode,quantile,latency_ms`.
pub struct CdfCsv {
    writer: ::csv::Writer<File>,
}

impl CdfCsv {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut writer = ::csv::Writer::from_path(path)?;
        writer.write_record(["point", "label", "mode", "quantile", "latency_ms"])?;
        writer.flush()?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, point: &Point, cdf: &[(f64, f64)]) -> anyhow::Result<()> {
        for (q, ms) in cdf {
            self.writer.write_record([
                point.index.to_string(),
                point.label(),
                point.config.topology.mode.as_str().to_owned(),
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

    #[test]
    fn rows_have_param_columns_and_are_on_disk_after_each_write() {
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
        let summary = crate::stats::summarize(10, &[]);
        csv.write(&Row {
            point: &points[1],
            workers: 1,
            summary: &summary,
            efficiency: Some(0.5),
            breakdown: &Breakdown {
                samples: 2,
                mean_us: [1.0, 2.0, 3.0, 4.0, 5.0],
                p50_us: [1.5; 5],
            },
            memory: Memory {
                gateway_peak_mb: 12.3,
                dispatcher_peak_mb: 30.0,
            },
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("point,label,param_topology_mode,mode,function"),
            "{header}"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("1,mode=push,push,push,noop,1,1,10,"),
            "{row}"
        );
        assert!(header.ends_with(",phase_result_p50_us"), "{header}");
        assert_eq!(header.split(',').count(), row.split(',').count());
        assert!(
            row.ends_with(",0.500000,12.3,30.0,2,1.0,2.0,3.0,4.0,5.0,1.5,1.5,1.5,1.5,1.5"),
            "{row}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
