//! `loadgen compare RUN_A RUN_B`: per point and figure, how B differs from A and whether the
//! difference is beyond noise, from each run's `repetitions.csv`. The change is the ratio of
//! the geometric means with its 95% interval (Welch's t on the logarithms, so a 3-against-3
//! comparison of the same code calls about one figure in twenty a change); it is significant
//! when that interval excludes 1. The Mann–Whitney p-value of the repetitions is shown
//! beside it. With `--fail-on`, a change that is worse than a threshold even at the
//! interval's most favourable end makes the command fail, so it can gate performance work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::export::short;
use crate::stats;

/// A figure `compare` knows, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    pub column: &'static str,
    pub higher_is_better: bool,
}

/// The figures compared by default, in table order.
pub const FIGURES: &[Figure] = &[
    Figure {
        column: "throughput",
        higher_is_better: true,
    },
    Figure {
        column: "makespan_s",
        higher_is_better: false,
    },
    Figure {
        column: "p50_ms",
        higher_is_better: false,
    },
    Figure {
        column: "p99_ms",
        higher_is_better: false,
    },
    Figure {
        column: "cpu_total_us",
        higher_is_better: false,
    },
    Figure {
        column: "instr_total",
        higher_is_better: false,
    },
];

/// A gate: fail when `figure` gets significantly worse by more than `percent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub figure: Figure,
    pub percent: f64,
}

impl std::str::FromStr for Gate {
    type Err = String;

    /// `throughput:5` fails on a significant throughput drop of more than 5%.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, percent) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected FIGURE:PERCENT, e.g. throughput:5"))?;
        let figure = *FIGURES.iter().find(|f| f.column == name).ok_or_else(|| {
            let known: Vec<&str> = FIGURES.iter().map(|f| f.column).collect();
            format!("unknown figure {name:?}; one of {}", known.join(", "))
        })?;
        let percent: f64 = percent
            .parse()
            .ok()
            .filter(|p: &f64| *p >= 0.0 && p.is_finite())
            .ok_or_else(|| format!("{percent:?} is not a percentage >= 0"))?;
        Ok(Self { figure, percent })
    }
}

/// One figure of one point in both runs.
#[derive(Debug, Clone)]
pub struct Change {
    pub point: String,
    pub figure: Figure,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    /// B over A (geometric means), with its 95% interval (NaN: too few repetitions).
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
    pub p_value: f64,
}

impl Change {
    /// The interval excludes 1.
    #[must_use]
    pub fn significant(&self) -> bool {
        self.lo > 1.0 || self.hi < 1.0
    }

    /// Significant and for the better.
    #[must_use]
    pub fn better(&self) -> bool {
        self.significant() && ((self.ratio > 1.0) == self.figure.higher_is_better)
    }

    /// How much worse B is at least, in percent: at the interval's most favourable end (0
    /// when B may not be worse at all).
    #[must_use]
    pub fn worse_by_percent(&self) -> f64 {
        let worse = if self.figure.higher_is_better {
            1.0 - self.hi
        } else {
            self.lo - 1.0
        };
        if worse.is_nan() {
            0.0
        } else {
            (worse * 100.0).max(0.0)
        }
    }

    fn verdict(&self) -> &'static str {
        if self.lo.is_nan() {
            return "too few repetitions";
        }
        match (self.significant(), self.better()) {
            (false, _) => "within noise",
            (true, true) => "better",
            (true, false) => "worse",
        }
    }
}

/// Each point's values of every figure, by `label (system)`, in file order.
type Repetitions = Vec<(String, BTreeMap<&'static str, Vec<f64>>)>;

fn read(dir: &Path) -> anyhow::Result<Repetitions> {
    let path = dir.join("repetitions.csv");
    let mut reader = csv::Reader::from_path(&path).with_context(|| {
        format!(
            "cannot read {} (runs made before `loadgen compare` existed have none)",
            path.display()
        )
    })?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let label = column("label").context("repetitions.csv has no label column")?;
    let system = column("system");
    let mut out = Repetitions::new();
    for record in reader.records() {
        let record = record?;
        // The system too: a label names only what was swept, so a local run and a push
        // run of the same experiment could share one.
        let name = match system {
            Some(s) => format!("{} ({})", &record[label], &record[s]),
            None => record[label].to_owned(),
        };
        let name = &name;
        let at = match out.iter().position(|(l, _)| l == name) {
            Some(at) => at,
            None => {
                out.push((name.to_owned(), BTreeMap::new()));
                out.len() - 1
            }
        };
        for figure in FIGURES {
            if let Some(v) = column(figure.column).and_then(|i| record[i].parse::<f64>().ok()) {
                out[at].1.entry(figure.column).or_default().push(v);
            }
        }
    }
    Ok(out)
}

/// What two runs say of the points they share.
#[derive(Debug)]
pub struct Comparison {
    pub changes: Vec<Change>,
    /// Points only one run has: `(point, "A" or "B")`.
    pub unmatched: Vec<(String, &'static str)>,
}

/// Compares the points both runs have (matched by label and system), figure by figure.
pub fn compare(a: &Path, b: &Path) -> anyhow::Result<Comparison> {
    let (a_reps, b_reps) = (read(a)?, read(b)?);
    let mut out = Vec::new();
    let mut unmatched: Vec<(String, &'static str)> = b_reps
        .iter()
        .filter(|(l, _)| !a_reps.iter().any(|(m, _)| m == l))
        .map(|(l, _)| (l.clone(), "B"))
        .collect();
    for (label, a_figures) in &a_reps {
        let Some((_, b_figures)) = b_reps.iter().find(|(l, _)| l == label) else {
            unmatched.push((label.clone(), "A"));
            continue;
        };
        for figure in FIGURES {
            let (Some(av), Some(bv)) = (a_figures.get(figure.column), b_figures.get(figure.column))
            else {
                continue;
            };
            if stats::mean_std(av).0 == 0.0 {
                continue;
            }
            let (ratio, lo, hi) = stats::ratio_interval(av, bv);
            out.push(Change {
                point: label.clone(),
                figure: *figure,
                a: av.clone(),
                b: bv.clone(),
                ratio,
                lo,
                hi,
                p_value: stats::mann_whitney_p(av, bv),
            });
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "the runs have no point in common (points are matched by label and system)"
    );
    Ok(Comparison {
        changes: out,
        unmatched,
    })
}

/// Checks that every gated figure was compared somewhere: a gate on a figure neither run
/// measured (say `instr_total` without `instructions = true`) would otherwise always pass.
pub fn check_gates(changes: &[Change], gates: &[Gate]) -> anyhow::Result<()> {
    for gate in gates {
        anyhow::ensure!(
            changes.iter().any(|c| c.figure == gate.figure),
            "--fail-on {}: neither run has that figure for a common point",
            gate.figure.column
        );
    }
    Ok(())
}

/// The changes that break a gate.
#[must_use]
pub fn regressions<'a>(changes: &'a [Change], gates: &[Gate]) -> Vec<&'a Change> {
    changes
        .iter()
        .filter(|c| {
            gates.iter().any(|g| {
                g.figure == c.figure
                    && c.significant()
                    && !c.better()
                    && c.worse_by_percent() > g.percent
            })
        })
        .collect()
}

/// The comparison as a Markdown table (also readable in a terminal).
#[must_use]
pub fn markdown(comparison: &Comparison, a: &str, b: &str) -> String {
    let mut out = format!(
        "B = `{b}` against A = `{a}`: mean of the repetitions; B/A of the geometric means \
         with its 95% interval (Welch's t on the logarithms); the Mann–Whitney p of the \
         repetitions.\n\n\
         | point | figure | A | B | B/A [95% CI] | p | verdict |\n\
         | --- | --- | ---: | ---: | --- | ---: | --- |\n"
    );
    for c in &comparison.changes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} [{:.3}, {:.3}] | {:.2} | {} |",
            c.point,
            c.figure.column,
            short(stats::mean_std(&c.a).0),
            short(stats::mean_std(&c.b).0),
            c.ratio,
            c.lo,
            c.hi,
            c.p_value,
            c.verdict()
        );
    }
    for (point, only) in &comparison.unmatched {
        let _ = writeln!(out, "\nOnly run {only} has {point}.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(name: &str, throughputs: &[(&str, &[f64])]) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("loadgen-compare-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = "point,label,system,repetition,throughput,p50_ms\n".to_owned();
        for (i, (label, values)) in throughputs.iter().enumerate() {
            for (rep, v) in values.iter().enumerate() {
                let _ = writeln!(text, "{i},{label},local,{},{v},{}", rep + 1, 1000.0 / v);
            }
        }
        std::fs::write(dir.join("repetitions.csv"), text).unwrap();
        dir
    }

    #[test]
    fn a_real_difference_is_significant_and_noise_is_not() {
        let a = run_dir(
            "a",
            &[
                ("mode=local", &[1000.0, 1010.0, 990.0, 1005.0, 995.0]),
                ("mode=push", &[500.0, 600.0, 400.0]),
                ("mode=gone", &[1.0, 1.0]),
            ],
        );
        let b = run_dir(
            "b",
            &[
                ("mode=local", &[800.0, 810.0, 790.0, 805.0, 795.0]),
                ("mode=push", &[520.0, 380.0, 610.0]),
                ("mode=pull", &[1.0]),
            ],
        );
        let comparison = compare(&a, &b).unwrap();
        let changes = &comparison.changes;
        let find = |point: &str, figure: &str| {
            changes
                .iter()
                .find(|c| c.point == format!("{point} (local)") && c.figure.column == figure)
                .unwrap()
        };
        let local = find("mode=local", "throughput");
        assert!((local.ratio - 0.8).abs() < 0.001, "{local:?}");
        assert!(local.significant() && !local.better(), "{local:?}");
        assert!(local.p_value < 0.05, "{local:?}");
        let latency = find("mode=local", "p50_ms");
        assert!(latency.significant() && latency.ratio > 1.0 && !latency.better());
        let push = find("mode=push", "throughput");
        assert!(!push.significant(), "{push:?}");
        assert_eq!(
            comparison.unmatched,
            [
                ("mode=pull (local)".to_owned(), "B"),
                ("mode=gone (local)".to_owned(), "A")
            ]
        );

        let gate: Gate = "throughput:5".parse().unwrap();
        let failing = regressions(changes, &[gate]);
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].point, "mode=local (local)");
        assert!(failing[0].worse_by_percent() > 15.0 && failing[0].worse_by_percent() < 20.0);
        let lenient: Gate = "throughput:20".parse().unwrap();
        assert!(
            regressions(changes, &[lenient]).is_empty(),
            "the gate holds at the interval's favourable end"
        );
        assert!(check_gates(changes, &["instr_total:1".parse().unwrap()]).is_err());
        // The same run against itself: nothing changes.
        let same = compare(&a, &a).unwrap();
        assert!(same.changes.iter().all(|c| !c.significant()), "{same:?}");

        let table = markdown(&comparison, "a", "b");
        assert!(
            table.contains("| mode=local (local) | throughput | 1000 | 800.0 | 0.800 ["),
            "{table}"
        );
        assert!(table.contains("worse") && table.contains("within noise"));
        assert!(
            table.contains("Only run B has mode=pull (local)."),
            "{table}"
        );
        for dir in [a, b] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn gates_are_parsed_with_clear_errors() {
        assert!(
            "throughput"
                .parse::<Gate>()
                .unwrap_err()
                .contains("FIGURE:PERCENT")
        );
        assert!(
            "speed:5"
                .parse::<Gate>()
                .unwrap_err()
                .contains("one of throughput")
        );
        assert!("p99_ms:-1".parse::<Gate>().is_err());
        assert_eq!("p99_ms:10".parse::<Gate>().unwrap().percent, 10.0);
    }
}
