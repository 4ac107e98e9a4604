//! Charts, rendered from a run directory alone (`loadgen plot <run dir>`): `results.csv`,
//! `cdf.csv`, `metadata.json` and `experiment.toml` in, `<chart>.svg` and `<chart>.png` out.
//!
//! - `data`: records addressed by column name, series keys, the split into panels;
//! - `charts`: one function per [`Chart`], records in and a [`figure::Figure`] out;
//! - `figure`: panels, legend and guides, drawn with plotters to SVG and PNG alike;
//! - `style`: the palette and each system's fixed look.

mod charts;
mod data;
mod figure;
mod style;

use std::path::{Path, PathBuf};

use crate::experiment::{Chart, Experiment};
use data::Record;

/// What the charts read from a run directory.
pub struct Run {
    /// The experiment's name, in every title.
    pub name: String,
    /// The run directory's name.
    pub id: String,
    pub results: Vec<Record>,
    /// `cdf.csv`, when the run wrote one.
    pub cdf: Option<Vec<Record>>,
    /// The machine's cores (`metadata.json`), for the executors > cores marker.
    pub cores: Option<f64>,
}

impl Run {
    /// Reads `dir`; `results.csv` is required, the rest optional.
    pub fn load(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let results = data::read_csv(&dir.join("results.csv"))?;
        let cdf_path = dir.join("cdf.csv");
        let cdf = if cdf_path.is_file() {
            Some(data::read_csv(&cdf_path)?)
        } else {
            None
        };
        let cores = std::fs::read_to_string(dir.join("metadata.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|meta| meta["machine"]["cores"].as_f64());
        Ok(Self {
            name: name.to_owned(),
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            results,
            cdf,
            cores,
        })
    }
}

/// The file name (without extension) of a chart.
#[must_use]
pub fn stem(chart: Chart) -> &'static str {
    match chart {
        Chart::Efficiency => "efficiency",
        Chart::LatencyCdf => "latency_cdf",
        Chart::Throughput => "throughput",
        Chart::Memory => "memory",
        Chart::Systems => "systems",
        Chart::Envelope => "envelope",
    }
}

/// Renders the charts the run's experiment asks for; returns the files written. A chart
/// whose data the run lacks is skipped with a warning.
pub fn render(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let (experiment, _) = Experiment::load(&dir.join("experiment.toml"))?;
    let run = Run::load(dir, &experiment.name)?;
    let mut written = Vec::new();
    for chart in &experiment.charts {
        match build(*chart, &run) {
            Ok(figure) => written.extend(figure::save(&figure, dir, stem(*chart))?),
            Err(e) => tracing::warn!(chart = stem(*chart), "chart not drawn: {e:#}"),
        }
    }
    Ok(written)
}

fn build(chart: Chart, run: &Run) -> anyhow::Result<figure::Figure> {
    let mut figure = match chart {
        Chart::Efficiency => charts::efficiency(run),
        Chart::LatencyCdf => charts::latency_cdf(run),
        Chart::Throughput => charts::throughput(run),
        Chart::Memory => charts::memory(run),
        Chart::Systems => charts::systems(run),
        Chart::Envelope => charts::envelope(run),
    }?;
    figure.subtitle = subtitle(run, &figure);
    Ok(figure)
}

/// The run, the machine and what the error bars are.
fn subtitle(run: &Run, figure: &figure::Figure) -> String {
    let mut parts = vec![format!("run {}", run.id)];
    if let Some(cores) = run.cores {
        parts.push(format!("{cores} cores"));
    }
    let repetitions = run
        .results
        .iter()
        .filter_map(|r| r.num("repetitions"))
        .fold(0.0, f64::max);
    if repetitions == 1.0 {
        parts.push("1 repetition per point".into());
    } else if repetitions > 1.0 {
        parts.push(format!("{repetitions} repetitions per point"));
    }
    let intervals = figure.panels.iter().any(|p| {
        p.lines
            .iter()
            .flat_map(|l| &l.points)
            .any(|pt| pt.interval.is_some())
            || p.bars.iter().any(|b| b.interval.is_some())
    });
    if intervals {
        parts.push("error bars: 95% CI of the mean".into());
    }
    parts.join(" · ")
}
