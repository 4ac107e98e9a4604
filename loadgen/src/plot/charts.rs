//! One function per chart: the run's records in, a [`Figure`] out (nothing is drawn here).

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure};

use super::Run;
use super::data::{Facet, Record, SeriesKey, Shown, facets, natural_cmp, varying_params};
use super::figure::{
    Axis, Bar, Figure, Guide, LegendEntry, Line, Note, PANEL, Panel, Point, Scale, Swatch, number,
};
use super::style::{SeriesStyle, is_platform};

/// The order functions' panels appear in.
const FUNCTIONS: [&str; 4] = ["sleep", "noop", "cpu", "payload"];
/// Peak RSS bars: gateway dark, dispatcher light (apart from the systems' colours).
const GATEWAY: plotters::style::RGBColor = plotters::style::RGBColor(0x3b, 0x5b, 0x92);
const DISPATCHER: plotters::style::RGBColor = plotters::style::RGBColor(0x9e, 0xc5, 0xe8);
/// Above this max/min ratio a y axis of positive values is drawn logarithmic.
const LOG_RATIO: f64 = 30.0;

/// Weak scaling: one column per function kind. Sleep tasks: efficiency (ideal makespan over
/// measured) with the ideal line at 1. Other kinds: throughput, since their efficiency (the
/// one-executor makespan over the measured one) must fall as executors outnumber cores.
pub fn efficiency(run: &Run) -> anyhow::Result<Figure> {
    let rows: Vec<&Record> = run
        .results
        .iter()
        .filter(|r| r.num("executors").is_some())
        .collect();
    ensure!(!rows.is_empty(), "results.csv has no rows with executors");
    let mut functions: Vec<&str> = rows.iter().filter_map(|r| r.text("function")).collect();
    functions.sort_by_key(|f| (FUNCTIONS.iter().position(|k| k == f).unwrap_or(9), *f));
    functions.dedup();
    if functions.is_empty() {
        functions.push("");
    }
    let params = varying_params(&rows, &["executors", "function"]);
    let measured: Vec<&Record> = rows
        .iter()
        .copied()
        .filter(|r| r.num(metric_of(r.text("function").unwrap_or(""))).is_some())
        .collect();
    let keys: Vec<SeriesKey> = measured.iter().map(|r| SeriesKey::of(r, &params)).collect();
    let facets = facets(&keys);
    let styles = Styles::new(&facets);
    let max_x = rows
        .iter()
        .filter_map(|r| r.num("executors"))
        .fold(0.0, f64::max);
    let mut panels = Vec::new();
    for facet in &facets {
        for function in &functions {
            let of_function: Vec<&Record> = measured
                .iter()
                .copied()
                .filter(|r| r.text("function").unwrap_or("") == *function)
                .collect();
            let metric = metric_of(function);
            let y = if metric == "efficiency" {
                Axis::from_zero("efficiency (ideal makespan / measured)")
            } else {
                value_axis("completed tasks/s", &of_function, metric)
            };
            let kind = if function.is_empty() {
                "all tasks".to_owned()
            } else {
                format!("{function} tasks")
            };
            let what = if metric == "efficiency" {
                "efficiency"
            } else {
                "throughput"
            };
            let mut panel = Panel::new(
                with_facet(&format!("{kind}: {what}"), facet, facets.len()),
                Axis::new("executors (log scale)", Scale::Log2),
                y,
            );
            panel.lines = lines(
                facet,
                &of_function,
                &params,
                "executors",
                metric,
                &styles,
                true,
            );
            if metric == "efficiency" {
                panel.guides.push(Guide::Level {
                    y: 1.0,
                    label: "ideal (efficiency 1)".into(),
                });
            }
            panel.guides.extend(cores_guide(run, max_x));
            panels.push(panel);
        }
    }
    Ok(Figure {
        title: format!("{}: weak scaling", run.name),
        columns: functions.len(),
        share_y: true,
        legend_title: Some("system".into()),
        legend: styles.entries(true),
        notes: unavailable(&run.results),
        ..figure(run, panels)
    })
}

/// Sleep tasks are judged by efficiency, everything else by throughput.
fn metric_of(function: &str) -> &'static str {
    if function == "sleep" {
        "efficiency"
    } else {
        "throughput"
    }
}

/// Open loop: achieved against offered throughput with the achieved = offered diagonal, and
/// p99 latency against offered load.
pub fn throughput(run: &Run) -> anyhow::Result<Figure> {
    let rows: Vec<&Record> = run
        .results
        .iter()
        .filter(|r| r.num("offered_rate").is_some() && r.num("throughput").is_some())
        .collect();
    ensure!(
        !rows.is_empty(),
        "results.csv has no rows with both offered_rate and throughput"
    );
    let params = varying_params(&rows, &["rate"]);
    let keys: Vec<SeriesKey> = rows.iter().map(|r| SeriesKey::of(r, &params)).collect();
    let facets = facets(&keys);
    let styles = Styles::new(&facets);
    let with_p99 = rows.iter().any(|r| r.num("p99_ms").is_some());
    let mut panels = Vec::new();
    for facet in &facets {
        let mut achieved = Panel::new(
            with_facet("achieved vs offered load", facet, facets.len()),
            Axis::from_zero("offered tasks/s"),
            Axis::from_zero("completed tasks/s"),
        );
        achieved.lines = lines(
            facet,
            &rows,
            &params,
            "offered_rate",
            "throughput",
            &styles,
            true,
        );
        achieved.guides.push(Guide::Diagonal {
            label: "achieved = offered".into(),
        });
        panels.push(achieved);
        if with_p99 {
            let mut p99 = Panel::new(
                with_facet("p99 latency vs offered load", facet, facets.len()),
                Axis::from_zero("offered tasks/s"),
                Axis::new("p99 latency (ms, log scale)", Scale::Log10),
            );
            p99.lines = lines(
                facet,
                &rows,
                &params,
                "offered_rate",
                "p99_ms",
                &styles,
                true,
            );
            panels.push(p99);
        }
    }
    Ok(Figure {
        title: format!("{}: throughput against offered load", run.name),
        columns: if with_p99 { 2 } else { 1 },
        share_y: true,
        legend_title: Some(legend_title(&facets)),
        legend: styles.entries(true),
        notes: unavailable(&run.results),
        ..figure(run, panels)
    })
}

/// Round-trip latency CDFs from `cdf.csv`, one line per point, at most six per panel.
pub fn latency_cdf(run: &Run) -> anyhow::Result<Figure> {
    let Some(cdf) = &run.cdf else {
        bail!("the run has no cdf.csv");
    };
    let by_point: HashMap<&str, &Record> = run
        .results
        .iter()
        .filter_map(|r| Some((r.text("point")?, r)))
        .collect();
    // Each point's quantiles, in file order of the points.
    let mut curves: Vec<(&str, Vec<Point>)> = Vec::new();
    for row in cdf {
        let (Some(point), Some(q), Some(ms)) = (
            row.text("point"),
            row.num("quantile"),
            row.num("latency_ms"),
        ) else {
            continue;
        };
        if ms <= 0.0 {
            continue;
        }
        let at = match curves.iter().position(|(p, _)| *p == point) {
            Some(i) => i,
            None => {
                curves.push((point, Vec::new()));
                curves.len() - 1
            }
        };
        curves[at].1.push(Point {
            x: ms,
            y: q,
            interval: None,
        });
    }
    ensure!(!curves.is_empty(), "cdf.csv has no positive latencies");
    // A point's parameters come from results.csv; its system from either file.
    let fallback: HashMap<&str, Record> = cdf
        .iter()
        .filter_map(|r| {
            let point = r.text("point")?;
            let label = r.text("label").unwrap_or(point);
            Some((
                point,
                Record::new([("system", r.system()), ("param_point", label)]),
            ))
        })
        .collect();
    let described: Vec<&Record> = curves
        .iter()
        .map(|(p, _)| by_point.get(p).copied().unwrap_or(&fallback[p]))
        .collect();
    let params = varying_params(&described, &[]);
    let keyed: Vec<(SeriesKey, Vec<Point>)> = curves
        .into_iter()
        .zip(&described)
        .map(|((point, mut points), record)| {
            let mut key = SeriesKey::of(record, &params);
            if let Some(system) = cdf
                .iter()
                .find(|r| r.text("point") == Some(point))
                .and_then(|r| r.text("system"))
            {
                system.clone_into(&mut key.system);
            }
            points.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
            (key, points)
        })
        .collect();
    let keys: Vec<SeriesKey> = keyed.iter().map(|(k, _)| k.clone()).collect();
    let facets = facets(&keys);
    let styles = Styles::new(&facets);
    let mut panels = Vec::new();
    for facet in &facets {
        let mut panel = Panel::new(
            facet.title.clone().unwrap_or_default(),
            Axis::new("round-trip latency (ms, log scale)", Scale::Log10),
            Axis::new("fraction of tasks", Scale::Linear).limits(0.0, 1.02),
        );
        for shown in &facet.series {
            if let Some((_, points)) = keyed.iter().find(|(k, _)| *k == shown.key) {
                panel.lines.push(Line {
                    style: styles.of(&shown.label),
                    points: points.clone(),
                    markers: false,
                });
            }
        }
        panels.push(panel);
    }
    let columns = panels.len().min(3);
    Ok(Figure {
        title: format!("{}: round-trip latency CDF", run.name),
        columns,
        share_y: false,
        legend_title: Some(legend_title(&facets)),
        legend: styles.entries(false),
        notes: unavailable(&run.results),
        ..figure(run, panels)
    })
}

/// Peak resident memory of the gateway and the dispatcher, grouped per system.
pub fn memory(run: &Run) -> anyhow::Result<Figure> {
    const COLUMNS: [(&str, &str, plotters::style::RGBColor); 2] = [
        ("gateway_peak_rss_mb", "gateway", GATEWAY),
        ("dispatcher_peak_rss_mb", "dispatcher", DISPATCHER),
    ];
    let rows: Vec<&Record> = run
        .results
        .iter()
        .filter(|r| COLUMNS.iter().any(|(c, _, _)| r.num(c).is_some()))
        .collect();
    ensure!(
        !rows.is_empty(),
        "results.csv has no gateway_peak_rss_mb or dispatcher_peak_rss_mb"
    );
    let categories = categories(&rows);
    let mut panel = Panel::new(
        "peak resident set size (VmHWM)",
        Axis::categories(
            "",
            categories.iter().map(|(label, _)| label.clone()).collect(),
        ),
        Axis::from_zero("peak RSS (MB)"),
    );
    for (i, (_, row)) in (0u32..).zip(&categories) {
        for (j, (column, _, color)) in (0u32..).zip(COLUMNS) {
            if let Some(value) = row.num(column) {
                panel.bars.push(Bar {
                    x: f64::from(i) + (f64::from(j) - 0.5) * 0.4,
                    width: 0.36,
                    value,
                    interval: None,
                    color,
                    text: vec![format!("{value:.1}")],
                });
            }
        }
    }
    let wide = categories.len() > 4;
    Ok(Figure {
        title: format!("{}: peak memory of the platform's services", run.name),
        columns: 1,
        share_y: false,
        legend_title: None,
        legend: COLUMNS
            .iter()
            .map(|(_, label, color)| LegendEntry {
                label: (*label).to_owned(),
                swatch: Swatch::Bar(*color),
            })
            .collect(),
        notes: unavailable(&run.results),
        panel_size: if wide {
            (bar_panel_width(categories.len()), PANEL.1)
        } else {
            PANEL
        },
        ..figure(run, vec![panel])
    })
}

/// Throughput per system with its confidence interval, and the ratio to `floor` (this
/// platform's executors fed directly) on every bar when the run has a floor row.
pub fn systems(run: &Run) -> anyhow::Result<Figure> {
    let rows: Vec<&Record> = run.results.iter().collect();
    ensure!(!rows.is_empty(), "results.csv has no rows");
    let categories = categories(&rows);
    let params = varying_params(&rows, &[]);
    let floors: Vec<(SeriesKey, f64)> = rows
        .iter()
        .filter(|r| r.system() == "floor")
        .filter_map(|r| Some((SeriesKey::of(r, &params), r.num("throughput")?)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let floor_of = |key: &SeriesKey| -> Option<f64> {
        match floors.as_slice() {
            [(_, only)] => Some(*only),
            all => all
                .iter()
                .find(|(k, _)| k.rest == key.rest)
                .map(|(_, v)| *v),
        }
    };
    let mut panel = Panel::new(
        "throughput per system",
        Axis::categories(
            "",
            categories.iter().map(|(label, _)| label.clone()).collect(),
        ),
        Axis::from_zero("completed tasks/s"),
    );
    for (i, (_, row)) in (0u32..).zip(&categories) {
        let x = f64::from(i);
        let Some(measure) = row.measure("throughput") else {
            panel.notes.push(Note {
                x,
                text: if row.unavailable() {
                    "unavailable"
                } else {
                    "no data"
                }
                .into(),
            });
            continue;
        };
        let key = SeriesKey::of(row, &params);
        let mut text = vec![number(measure.mean)];
        if key.system == "floor" {
            text.push("(floor)".into());
        } else if let Some(floor) = floor_of(&key) {
            text.push(format!("{:.2}× floor", measure.mean / floor));
        }
        panel.bars.push(Bar {
            x,
            width: 0.62,
            value: measure.mean,
            interval: measure.interval,
            color: SeriesStyle::system(&key.system).color,
            text,
        });
    }
    ensure!(!panel.bars.is_empty(), "no row has a throughput");
    Ok(Figure {
        title: format!("{}: throughput per system", run.name),
        columns: 1,
        share_y: false,
        legend_title: None,
        legend: Vec::new(),
        notes: unavailable(&run.results),
        panel_size: (bar_panel_width(categories.len()), PANEL.1),
        ..figure(run, vec![panel])
    })
}

/// The operating envelope: throughput and the dispatcher's CPU time per task against
/// executors (or workers, when only they vary), per system.
pub fn envelope(run: &Run) -> anyhow::Result<Figure> {
    let all: Vec<&Record> = run.results.iter().collect();
    let varies = |column: &str| {
        let mut values: Vec<f64> = all.iter().filter_map(|r| r.num(column)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        values.len() > 1
    };
    let x = if !varies("executors") && varies("workers") {
        "workers"
    } else {
        "executors"
    };
    let rows: Vec<&Record> = all.iter().copied().filter(|r| r.num(x).is_some()).collect();
    ensure!(!rows.is_empty(), "results.csv has no rows with {x}");
    let params = varying_params(&rows, &[x]);
    let keys: Vec<SeriesKey> = rows
        .iter()
        .filter(|r| r.num("throughput").is_some() || r.num("cpu_dispatcher_us").is_some())
        .map(|r| SeriesKey::of(r, &params))
        .collect();
    ensure!(
        !keys.is_empty(),
        "no row has throughput or cpu_dispatcher_us"
    );
    let facets = facets(&keys);
    let styles = Styles::new(&facets);
    let values: Vec<f64> = rows.iter().filter_map(|r| r.num(x)).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let x_axis = if lo > 0.0 && hi / lo >= 4.0 {
        Axis::new(format!("{x} (log scale)"), Scale::Log2)
    } else {
        Axis::from_zero(x)
    };
    let with_cpu = rows.iter().any(|r| r.num("cpu_dispatcher_us").is_some());
    let mut panels = Vec::new();
    for facet in &facets {
        let mut tput = Panel::new(
            with_facet("throughput", facet, facets.len()),
            x_axis.clone(),
            value_axis("completed tasks/s", &rows, "throughput"),
        );
        tput.lines = lines(facet, &rows, &params, x, "throughput", &styles, true);
        if x == "executors" {
            tput.guides.extend(cores_guide(run, hi));
        }
        panels.push(tput);
        if with_cpu {
            let mut cpu = Panel::new(
                with_facet("dispatcher CPU time per task", facet, facets.len()),
                x_axis.clone(),
                value_axis("µs per task", &rows, "cpu_dispatcher_us"),
            );
            cpu.lines = lines(facet, &rows, &params, x, "cpu_dispatcher_us", &styles, true);
            if x == "executors" {
                cpu.guides.extend(cores_guide(run, hi));
            }
            panels.push(cpu);
        }
    }
    Ok(Figure {
        title: format!("{}: operating envelope", run.name),
        columns: if with_cpu { 2 } else { 1 },
        share_y: true,
        legend_title: Some(legend_title(&facets)),
        legend: styles.entries(true),
        notes: unavailable(&run.results),
        ..figure(run, panels)
    })
}

/// A figure with the defaults the chart functions override.
fn figure(run: &Run, panels: Vec<Panel>) -> Figure {
    Figure {
        title: run.name.clone(),
        subtitle: String::new(),
        columns: 1,
        panels,
        panel_size: PANEL,
        legend_title: None,
        legend: Vec::new(),
        notes: Vec::new(),
        share_y: false,
    }
}

fn bar_panel_width(categories: usize) -> u32 {
    let categories = u32::try_from(categories).unwrap_or(u32::MAX / 200);
    PANEL.0.max(110 * categories + 110)
}

/// A panel title, with the facet's when the series are split over several.
fn with_facet(title: &str, facet: &Facet, facets: usize) -> String {
    match &facet.title {
        Some(t) if facets > 1 => format!("{title} ({t})"),
        _ => title.to_owned(),
    }
}

/// What the legend's labels are: systems, or the parameter the panels do not split by.
fn legend_title(facets: &[Facet]) -> String {
    if facets
        .iter()
        .flat_map(|f| &f.series)
        .all(|s| s.names_system && s.label == s.key.system)
    {
        "system".into()
    } else {
        "series".into()
    }
}

/// A y axis for positive values: logarithmic when they span more than [`LOG_RATIO`],
/// otherwise linear from zero.
fn value_axis(label: &str, rows: &[&Record], metric: &str) -> Axis {
    let values: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.num(metric))
        .filter(|v| *v > 0.0)
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if !values.is_empty() && hi / lo > LOG_RATIO {
        Axis::new(format!("{label} (log scale)"), Scale::Log10)
    } else {
        Axis::from_zero(label)
    }
}

/// The dashed marker at the machine's core count, when some points have more executors.
fn cores_guide(run: &Run, max_x: f64) -> Option<Guide> {
    let cores = run.cores?;
    (cores < max_x).then(|| Guide::Beyond {
        x: cores,
        label: "executors > cores".into(),
    })
}

/// One row per category (bar charts): in series order, labelled by system and the varying
/// parameters.
fn categories<'a>(rows: &[&'a Record]) -> Vec<(String, &'a Record)> {
    let params = varying_params(rows, &[]);
    let mut keyed: Vec<(SeriesKey, &Record)> = rows
        .iter()
        .map(|r| (SeriesKey::of(r, &params), *r))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
        .into_iter()
        .map(|(key, row)| {
            let rest: Vec<String> = key
                .rest
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let label = std::iter::once(key.system.clone())
                .chain(rest)
                .collect::<Vec<_>>()
                .join(" ");
            (label, row)
        })
        .collect()
}

/// Each shown series' points `(x, metric)` with their confidence intervals, sorted by x.
fn lines(
    facet: &Facet,
    rows: &[&Record],
    params: &[String],
    x: &str,
    metric: &str,
    styles: &Styles,
    markers: bool,
) -> Vec<Line> {
    facet
        .series
        .iter()
        .filter_map(|shown| {
            let mut points: Vec<Point> = rows
                .iter()
                .filter(|r| SeriesKey::of(r, params) == shown.key)
                .filter_map(|r| {
                    let m = r.measure(metric)?;
                    Some(Point {
                        x: r.num(x)?,
                        y: m.mean,
                        interval: m.interval,
                    })
                })
                .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            (!points.is_empty()).then(|| Line {
                style: styles.of(&shown.label),
                points,
                markers,
            })
        })
        .collect()
}

/// `system: reason` for each reference that could not run.
fn unavailable(rows: &[Record]) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for row in rows.iter().filter(|r| r.unavailable()) {
        let reason = row
            .text("warnings")
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .find(|w| w.starts_with("unavailable:"))
            .unwrap_or("unavailable:");
        let note = format!("{} {reason}", row.system());
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    notes
}

/// One look per legend label, shared by every panel of a figure.
struct Styles {
    /// Labels in legend order, with their style.
    entries: Vec<(String, SeriesStyle)>,
}

impl Styles {
    /// Legend order is series order (systems, then natural order of the values); series that
    /// are systems alone keep their system's fixed look, others take the palette in order.
    fn new(facets: &[Facet]) -> Self {
        let mut first: BTreeMap<String, &Shown> = BTreeMap::new();
        for shown in facets.iter().flat_map(|f| &f.series) {
            first
                .entry(shown.label.clone())
                .and_modify(|s| {
                    if shown.key < s.key {
                        *s = shown;
                    }
                })
                .or_insert(shown);
        }
        let mut shown: Vec<&Shown> = first.into_values().collect();
        shown.sort_by(|a, b| {
            if a.names_system && b.names_system {
                a.key
                    .cmp(&b.key)
                    .then_with(|| natural_cmp(&a.label, &b.label))
            } else {
                natural_cmp(&a.label, &b.label)
            }
        });
        let systems_only = shown
            .iter()
            .all(|s| s.names_system && s.label == s.key.system);
        let entries = shown
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let style = if systems_only {
                    SeriesStyle::system(&s.key.system)
                } else {
                    let mut style = SeriesStyle::nth(i);
                    if s.names_system && !is_platform(&s.key.system) {
                        style.dashed = true;
                        style.hollow = true;
                    }
                    style
                };
                (s.label.clone(), style)
            })
            .collect();
        Self { entries }
    }

    fn of(&self, label: &str) -> SeriesStyle {
        self.entries
            .iter()
            .find(|(l, _)| l == label)
            // Every shown label is in the legend; grey would mark one that is not.
            .map_or(SeriesStyle::nth(7), |(_, s)| *s)
    }

    fn entries(&self, markers: bool) -> Vec<LegendEntry> {
        self.entries
            .iter()
            .map(|(label, style)| LegendEntry {
                label: label.clone(),
                swatch: Swatch::Line {
                    style: *style,
                    markers,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::style::MAX_SERIES;

    fn run(results: Vec<Record>, cdf: Option<Vec<Record>>) -> Run {
        Run {
            name: "t".into(),
            id: "20260101-000000".into(),
            results,
            cdf,
            cores: Some(2.0),
        }
    }

    fn row(cells: &[(&str, String)]) -> Record {
        Record::new(cells.iter().map(|(k, v)| (*k, v.as_str())))
    }

    fn weak_scaling(systems: &[&str]) -> Vec<Record> {
        let mut rows = Vec::new();
        for system in systems {
            for executors in [1, 2, 4, 8] {
                for function in ["sleep", "noop"] {
                    rows.push(row(&[
                        ("system", (*system).to_owned()),
                        ("param_topology_mode", (*system).to_owned()),
                        ("param_topology_executors", executors.to_string()),
                        ("param_workload_function", function.to_owned()),
                        ("executors", executors.to_string()),
                        ("function", function.to_owned()),
                        ("efficiency", "0.9".into()),
                        ("efficiency_lo", "0.85".into()),
                        ("efficiency_hi", "0.95".into()),
                        ("throughput", (100 * executors).to_string()),
                    ]));
                }
            }
        }
        rows
    }

    #[test]
    fn weak_scaling_shows_efficiency_for_sleep_and_throughput_for_noop() {
        let figure = efficiency(&run(weak_scaling(&["push", "local", "floor"]), None)).unwrap();
        assert_eq!(figure.columns, 2);
        assert_eq!(figure.panels.len(), 2);
        let (sleep, noop) = (&figure.panels[0], &figure.panels[1]);
        assert!(sleep.title.starts_with("sleep"), "{}", sleep.title);
        assert!(
            sleep
                .guides
                .iter()
                .any(|g| matches!(g, Guide::Level { y, .. } if *y == 1.0))
        );
        assert_eq!(sleep.lines[0].points[0].interval, Some((0.85, 0.95)));
        // No-op panels plot throughput (no interval in these rows), never efficiency.
        assert_eq!(noop.lines[0].points[3].y, 800.0);
        assert_eq!(noop.lines[0].points[3].interval, None);
        for panel in &figure.panels {
            assert!(
                panel
                    .guides
                    .iter()
                    .any(|g| matches!(g, Guide::Beyond { x, .. } if *x == 2.0))
            );
        }
        let legend: Vec<&str> = figure.legend.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(legend, ["local", "push", "floor"]);
    }

    #[test]
    fn nine_systems_take_two_rows_of_at_most_six() {
        let systems = [
            "local",
            "pull",
            "push",
            "floor",
            "process_pool",
            "zmq",
            "ray",
            "celery",
            "dask",
        ];
        let figure = efficiency(&run(weak_scaling(&systems), None)).unwrap();
        assert_eq!(figure.panels.len(), 4);
        assert!(figure.panels.iter().all(|p| p.lines.len() <= MAX_SERIES));
        assert_eq!(figure.legend.len(), 9);
    }

    #[test]
    fn latency_cdfs_are_split_with_a_numeric_legend() {
        let mut results = Vec::new();
        let mut cdf = Vec::new();
        for (point, (system, rate)) in ["local", "pull", "push"]
            .iter()
            .flat_map(|s| ["5000.0", "500.0", "1000.0"].map(|r| (s, r)))
            .chain([("floor", "500.0")].iter().map(|(s, r)| (s, *r)))
            .enumerate()
        {
            let point = point.to_string();
            results.push(row(&[
                ("point", point.clone()),
                ("system", (*system).to_owned()),
                ("param_load_rate", rate.to_owned()),
            ]));
            for q in ["0.0", "0.5", "1.0"] {
                cdf.push(row(&[
                    ("point", point.clone()),
                    ("system", (*system).to_owned()),
                    ("quantile", q.to_owned()),
                    ("latency_ms", format!("1{q}")),
                ]));
            }
        }
        let figure = latency_cdf(&run(results, Some(cdf))).unwrap();
        assert!(figure.panels.iter().all(|p| p.lines.len() <= MAX_SERIES));
        let titles: Vec<&str> = figure.panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["rate=500", "rate=1000", "rate=5000"]);
        let legend: Vec<&str> = figure.legend.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(legend, ["local", "pull", "push", "floor"]);
        let colors: Vec<_> = figure
            .legend
            .iter()
            .map(|e| match e.swatch {
                Swatch::Line { style, .. } => style.color,
                Swatch::Bar(color) => color,
            })
            .collect();
        for (i, c) in colors.iter().enumerate() {
            assert!(!colors[i + 1..].contains(c), "{colors:?}");
        }
    }

    #[test]
    fn systems_bars_carry_the_ratio_to_floor_and_mark_what_did_not_run() {
        let results = vec![
            row(&[("system", "push".into()), ("throughput", "1500".into())]),
            row(&[
                ("system", "floor".into()),
                ("throughput", "6000".into()),
                ("throughput_lo", "5800".into()),
                ("throughput_hi", "6100".into()),
            ]),
            row(&[
                ("system", "ray".into()),
                ("warnings", "slow start; unavailable: no ray".into()),
            ]),
        ];
        let figure = systems(&run(results, None)).unwrap();
        let panel = &figure.panels[0];
        assert_eq!(panel.x.categories, ["push", "floor", "ray"]);
        assert_eq!(panel.bars[0].text, ["1500", "0.25× floor"]);
        assert_eq!(panel.bars[1].interval, Some((5800.0, 6100.0)));
        assert_eq!(panel.notes[0].text, "unavailable");
        assert_eq!(figure.notes, ["ray unavailable: no ray"]);
    }

    #[test]
    fn charts_without_their_columns_are_refused() {
        let old = vec![row(&[("mode", "push".into()), ("throughput", "10".into())])];
        assert!(throughput(&run(old.clone(), None)).is_err());
        assert!(memory(&run(old.clone(), None)).is_err());
        assert!(latency_cdf(&run(old.clone(), None)).is_err());
        // The old `mode` column names the system.
        let figure = systems(&run(old, None)).unwrap();
        assert_eq!(figure.panels[0].x.categories, ["push"]);
        assert_eq!(figure.panels[0].bars[0].interval, None);
    }
}
