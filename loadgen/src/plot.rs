//! Charts, rendered from a run directory's CSVs alone (`loadgen plot <run dir>`), as SVG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::experiment::{Chart, Experiment};

type Rows = Vec<BTreeMap<String, String>>;

fn read_csv(path: &Path) -> anyhow::Result<Rows> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
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

fn num(row: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    row.get(key)?.parse().ok()
}

/// Series name → points, sorted by x.
type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// Renders the charts the run's experiment asks for; returns the files written.
pub fn render(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let (experiment, _) = Experiment::load(&dir.join("experiment.toml"))?;
    let results = read_csv(&dir.join("results.csv"))?;
    let mut written = Vec::new();
    for chart in &experiment.charts {
        let path = match chart {
            Chart::Efficiency => {
                let series = group(
                    &results,
                    |r| format!("{} {}", r["mode"], r["function"]),
                    "executors",
                    "efficiency",
                );
                let path = dir.join("efficiency.svg");
                line_chart(
                    &path,
                    &format!("{}: weak-scaling efficiency", experiment.name),
                    "executors",
                    "efficiency",
                    &series,
                    true,
                    false,
                )?;
                path
            }
            Chart::Throughput => {
                let series = group(
                    &results,
                    |r| r["mode"].clone(),
                    "offered_rate",
                    "throughput",
                );
                let path = dir.join("throughput.svg");
                line_chart(
                    &path,
                    &format!("{}: throughput vs offered load", experiment.name),
                    "offered tasks/s",
                    "completed tasks/s",
                    &series,
                    false,
                    false,
                )?;
                path
            }
            Chart::LatencyCdf => {
                let cdf = read_csv(&dir.join("cdf.csv"))?;
                let series = group(&cdf, |r| r["label"].clone(), "latency_ms", "quantile");
                let path = dir.join("latency_cdf.svg");
                line_chart(
                    &path,
                    &format!("{}: round-trip latency CDF", experiment.name),
                    "latency (ms, log)",
                    "fraction of tasks",
                    &series,
                    false,
                    true,
                )?;
                path
            }
        };
        written.push(path);
    }
    Ok(written)
}

fn group(
    rows: &Rows,
    name: impl Fn(&BTreeMap<String, String>) -> String,
    x: &str,
    y: &str,
) -> Series {
    let mut series = Series::new();
    for row in rows {
        if let (Some(xv), Some(yv)) = (num(row, x), num(row, y)) {
            series.entry(name(row)).or_default().push((xv, yv));
        }
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

#[allow(clippy::too_many_arguments)]
fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &Series,
    log2_x: bool,
    log10_x: bool,
) -> anyhow::Result<()> {
    let all: Vec<(f64, f64)> = series.values().flatten().copied().collect();
    anyhow::ensure!(!all.is_empty(), "no data for {}", path.display());
    let (mut x_min, mut x_max) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y_max = all.iter().fold(0.0f64, |m, p| m.max(p.1)) * 1.1;
    if x_min == x_max {
        x_min -= 1.0;
        x_max += 1.0;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let to_x = |x: f64| {
        if log2_x {
            x.max(1e-9).log2()
        } else if log10_x {
            x.max(1e-6).log10()
        } else {
            x
        }
    };
    let (lo, hi) = (
        to_x(x_min.max(if log2_x || log10_x { 1e-6 } else { f64::MIN })),
        to_x(x_max),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi + (hi - lo) * 0.02, 0.0..y_max.max(1e-9))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| {
            if log2_x {
                format!("{:.0}", 2f64.powf(*v))
            } else if log10_x {
                let real = 10f64.powf(*v);
                if real < 10.0 {
                    format!("{real:.2}")
                } else {
                    format!("{real:.0}")
                }
            } else {
                format!("{v:.0}")
            }
        })
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mapped: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (to_x(x), y)).collect();
        chart
            .draw_series(LineSeries::new(mapped.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            mapped
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
