//! Reports written from run directories, never typed: `summary.md` in every run, and the
//! generated blocks of `report.md` (`loadgen report`), each rebuilt from the newest committed
//! run of an experiment.
//!
//! A block in `report.md` is an HTML comment naming what goes in it, up to `<!-- end -->`:
//!
//! ```text
//! <!-- loadgen: table weak_scaling -->      every point: means, 95% intervals, CPU, warnings
//! <!-- loadgen: ratios batch -->            each system's throughput over each reference's
//! <!-- loadgen: figure weak_scaling efficiency -->   a chart of the run
//! <!-- loadgen: run weak_scaling -->        which run, commit and machine
//! <!-- loadgen: compare results/a/RUN results/b/RUN -->   `loadgen compare` of two runs
//! <!-- loadgen: columns memory gateway_peak_rss_mb dispatcher_peak_rss_mb -->   any columns
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::export::csv::read_rows;
use crate::export::short;
use crate::stats;

/// Writes `summary.md` into a run directory, from its CSVs; returns its path.
pub fn write_summary(dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir
        .parent()
        .and_then(Path::file_name)
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut out = format!("# {name}: {}\n\n", dir.display());
    out.push_str(&provenance(dir)?);
    out.push_str("\n\n");
    out.push_str(&table(dir)?);
    if let Ok(ratios) = ratios(dir)
        && !ratios.is_empty()
    {
        out.push('\n');
        out.push_str(&ratios);
    }
    let mut charts: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    charts.sort();
    if !charts.is_empty() {
        out.push_str("\n## Charts\n\n");
        for chart in charts {
            let _ = writeln!(out, "![{chart}]({chart})\n");
        }
    }
    let path = dir.join("summary.md");
    std::fs::write(&path, out)?;
    Ok(path)
}

/// Which commit, machine and day a run comes from.
fn provenance(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("metadata.json"))
        .with_context(|| format!("no metadata.json in {}", dir.display()))?;
    let meta: serde_json::Value = serde_json::from_str(&text)?;
    let commit = meta["git_commit"].as_str().unwrap_or("unknown");
    let dirty = if meta["git_dirty"].as_bool().unwrap_or(false) {
        " (with uncommitted changes)"
    } else {
        ""
    };
    let machine = &meta["machine"];
    Ok(format!(
        "Run `{}` of commit `{}`{dirty} on {} core(s) ({}), {} GiB, {}.",
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        commit.get(..12).unwrap_or(commit),
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("unknown CPU"),
        machine["memory_gib"],
        machine["os"].as_str().unwrap_or("unknown OS"),
    ))
}

/// `mean [lo, hi]` of an estimated column, or `-`.
fn with_interval(row: &BTreeMap<String, String>, column: &str) -> String {
    let get = |c: &str| row.get(c).and_then(|v| v.parse::<f64>().ok());
    match (
        get(column),
        get(&format!("{column}_lo")),
        get(&format!("{column}_hi")),
    ) {
        (Some(mean), Some(lo), Some(hi)) if lo != hi => {
            format!("{} [{}, {}]", short(mean), short(lo), short(hi))
        }
        (Some(mean), _, _) => short(mean),
        _ => "-".to_owned(),
    }
}

/// Every point of a run: the means over repetitions with their 95% intervals.
fn table(dir: &Path) -> anyhow::Result<String> {
    let rows = read_rows(&dir.join("results.csv"))?;
    let mut out = String::from(
        "Means over repetitions [95% interval: Student's t below 10 repetitions, bootstrap \
         from 10]; CPU is µs per task over all components, client included.\n\n\
         | point | reps | tasks/s | p50 ms | p99 ms | efficiency | CPU µs/task | warnings |\n\
         | --- | ---: | --- | --- | --- | --- | ---: | --- |\n",
    );
    for row in &rows {
        let cell = |c: &str| row.get(c).cloned().unwrap_or_default();
        let cpu = cell("cpu_total_us");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            match cell("version").as_str() {
                "" => cell("label"),
                version => format!("{} ({version})", cell("label")),
            },
            cell("repetitions"),
            with_interval(row, "throughput"),
            with_interval(row, "p50_ms"),
            with_interval(row, "p99_ms"),
            with_interval(row, "efficiency"),
            if cpu.is_empty() { "-".to_owned() } else { cpu },
            cell("warnings").replace('|', "/"),
        );
    }
    Ok(out)
}

/// Chosen columns of every point of a run, as they are in `results.csv`.
fn columns_table(dir: &Path, columns: &[&str]) -> anyhow::Result<String> {
    let rows = read_rows(&dir.join("results.csv"))?;
    if let Some(first) = rows.first() {
        for column in columns {
            anyhow::ensure!(
                first.contains_key(*column),
                "{} has no column {column}",
                dir.join("results.csv").display()
            );
        }
    }
    let mut out = format!("| point | {} |\n| --- |", columns.join(" | "));
    out.push_str(&" ---: |".repeat(columns.len()));
    out.push('\n');
    for row in &rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match row.get(*c).and_then(|v| v.parse::<f64>().ok()) {
                Some(v) => short(v),
                None => "-".to_owned(),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} |",
            row.get("label").map_or("", String::as_str),
            cells.join(" | ")
        );
    }
    Ok(out)
}

/// A label without its `mode=` or `system=` part: what rows of different systems share.
fn workload_of(label: &str) -> String {
    label
        .split(' ')
        .filter(|part| !part.starts_with("mode=") && !part.starts_with("system="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Throughput of every system over each reference's at the same workload: the ratio of the
/// geometric means with its 95% interval (from `repetitions.csv`, see
/// [`stats::ratio_interval`]).
fn ratios(dir: &Path) -> anyhow::Result<String> {
    const REFERENCES: [&str; 6] = ["floor", "process_pool", "zmq", "ray", "celery", "dask"];
    let rows = read_rows(&dir.join("repetitions.csv"))?;
    // (workload, system) -> throughputs, in file order.
    let mut groups: Vec<(String, String, Vec<f64>)> = Vec::new();
    for row in &rows {
        let (Some(label), Some(system), Some(v)) = (
            row.get("label"),
            row.get("system"),
            row.get("throughput").and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let workload = workload_of(label);
        match groups
            .iter_mut()
            .find(|(w, s, _)| *w == workload && s == system)
        {
            Some(group) => group.2.push(v),
            None => groups.push((workload, system.clone(), vec![v])),
        }
    }
    let present: Vec<&str> = REFERENCES
        .into_iter()
        .filter(|r| groups.iter().any(|(_, s, _)| s == r))
        .collect();
    if present.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(
        "Throughput over each reference's at the same workload: ratio of the geometric means \
         of the repetitions [95% interval].\n\n| workload | system | tasks/s |",
    );
    for r in &present {
        let _ = write!(out, " × {r} |");
    }
    out.push_str("\n| --- | --- | ---: |");
    out.push_str(&" --- |".repeat(present.len()));
    out.push('\n');
    for (workload, system, values) in &groups {
        let _ = write!(
            out,
            "| {} | {system} | {} |",
            if workload.is_empty() { "-" } else { workload },
            short(stats::mean_std(values).0)
        );
        for reference in &present {
            if system == reference {
                out.push_str(" 1 |");
                continue;
            }
            let cell = groups
                .iter()
                .find(|(w, s, _)| w == workload && s == reference)
                .map_or_else(
                    || "-".to_owned(),
                    |(_, _, base)| {
                        let (ratio, lo, hi) = stats::ratio_interval(base, values);
                        if lo.is_nan() {
                            format!("{ratio:.2}")
                        } else {
                            format!("{ratio:.2} [{lo:.2}, {hi:.2}]")
                        }
                    },
                );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    Ok(out)
}

/// The newest finished run of `experiment` under `results` (run directories are named by UTC
/// time; a run is finished once it has written its `summary.md`, so an interrupted one is
/// never picked).
fn latest_run(results: &Path, experiment: &str) -> anyhow::Result<PathBuf> {
    let dir = results.join(experiment);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "no runs of {experiment} in {}: run `scripts/loadgen run experiments/{experiment}.toml`",
                dir.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("summary.md").exists())
        .collect();
    runs.sort();
    runs.pop().with_context(|| {
        format!(
            "no finished run of {experiment} in {} (one with a summary.md): run \
                 `scripts/loadgen run experiments/{experiment}.toml`",
            dir.display()
        )
    })
}

/// `path` relative to `base` when it lies under it (links in the report).
fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What one block holds, from its directive (the words after `loadgen:`).
fn block(directive: &str, results: &Path, root: &Path) -> anyhow::Result<String> {
    let words: Vec<&str> = directive.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["table", experiment] => table(&latest_run(results, experiment)?)?,
        ["ratios", experiment] => ratios(&latest_run(results, experiment)?)?,
        ["run", experiment] => provenance(&latest_run(results, experiment)?)? + "\n",
        ["figure", experiment, chart] => {
            let run = latest_run(results, experiment)?;
            let file = run.join(format!("{chart}.svg"));
            anyhow::ensure!(file.exists(), "{} does not exist", file.display());
            format!("![{experiment}: {chart}]({})\n", relative(&file, root))
        }
        ["columns", experiment, columns @ ..] if !columns.is_empty() => {
            columns_table(&latest_run(results, experiment)?, columns)?
        }
        ["compare", a, b] => {
            let comparison = crate::compare::compare(&root.join(a), &root.join(b))?;
            crate::compare::markdown(&comparison, a, b)
        }
        _ => anyhow::bail!(
            "unknown block {directive:?}: table|ratios|run EXPERIMENT, figure EXPERIMENT CHART, \
             compare RUN_A RUN_B, columns EXPERIMENT COLUMN..."
        ),
    })
}

const OPEN: &str = "<!-- loadgen:";
const CLOSE: &str = "<!-- end -->";

/// Rebuilds every generated block of the Markdown file at `report` from the runs under
/// `results`; returns how many blocks were written.
pub fn rebuild(report: &Path, results: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(report)
        .with_context(|| format!("cannot read {}", report.display()))?;
    let root = report.parent().unwrap_or(Path::new("."));
    let (out, blocks) = rebuild_text(&text, |directive| block(directive, results, root))?;
    std::fs::write(report, out)?;
    Ok(blocks)
}

/// Replaces the body of every block in `text` with what `fill` makes of its directive.
fn rebuild_text(
    text: &str,
    mut fill: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<(String, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut blocks = 0;
    while let Some(start) = rest.find(OPEN) {
        let after_open = &rest[start..];
        let header_end = after_open
            .find("-->")
            .map(|i| i + 3)
            .context("an unterminated loadgen comment")?;
        let directive = after_open[OPEN.len()..header_end - 3].trim();
        let body = &after_open[header_end..];
        let close = body
            .find(CLOSE)
            .with_context(|| format!("block {directive:?} has no {CLOSE}"))?;
        out.push_str(&rest[..start]);
        out.push_str(&after_open[..header_end]);
        out.push('\n');
        let filled = fill(directive).with_context(|| format!("block {directive:?}"))?;
        out.push_str(filled.trim_end());
        out.push('\n');
        out.push_str(CLOSE);
        rest = &body[close + CLOSE.len()..];
        blocks += 1;
    }
    out.push_str(rest);
    Ok((out, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_replaced_and_the_prose_kept() {
        let text = "# Report\n\nIntro.\n<!-- loadgen: table a -->\nold numbers\n<!-- end -->\n\
                    Between.\n<!-- loadgen: run b -->\n<!-- end -->\nEnd.\n";
        let (out, n) = rebuild_text(text, |d| Ok(format!("[{d}]\n"))).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "# Report\n\nIntro.\n<!-- loadgen: table a -->\n[table a]\n<!-- end -->\n\
             Between.\n<!-- loadgen: run b -->\n[run b]\n<!-- end -->\nEnd.\n"
        );
        let (again, _) = rebuild_text(&out, |d| Ok(format!("[{d}]\n"))).unwrap();
        assert_eq!(again, out, "rebuilding is idempotent");
        assert!(rebuild_text("<!-- loadgen: table a -->\nno end", |_| Ok(String::new())).is_err());
    }

    #[test]
    fn chosen_columns_make_a_table_and_a_missing_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("loadgen-columns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("results.csv"),
            "point,label,gateway_peak_rss_mb,warnings\n0,mode=local,31.5,\n1,mode=pull,,x\n",
        )
        .unwrap();
        let table = columns_table(&dir, &["gateway_peak_rss_mb"]).unwrap();
        assert_eq!(
            table,
            "| point | gateway_peak_rss_mb |\n| --- | ---: |\n| mode=local | 31.50 |\n| mode=pull | - |\n"
        );
        assert!(columns_table(&dir, &["nope"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ratios_pair_each_system_with_the_references_at_the_same_workload() {
        let dir = std::env::temp_dir().join(format!("loadgen-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("repetitions.csv"),
            "point,label,system,repetition,throughput\n\
             0,mode=local executors=2,local,1,900\n0,mode=local executors=2,local,2,1100\n\
             0,system=floor executors=2,floor,1,2000\n0,system=floor executors=2,floor,2,2000\n\
             1,mode=local executors=4,local,1,50\n",
        )
        .unwrap();
        let table = ratios(&dir).unwrap();
        assert!(
            table.contains("| executors=2 | local | 1000 | 0.50 ["),
            "{table}"
        );
        assert!(
            table.contains("| executors=2 | floor | 2000 | 1 |"),
            "{table}"
        );
        assert!(
            table.contains("| executors=4 | local | 50.00 | - |"),
            "{table}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
