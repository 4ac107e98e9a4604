//! A run directory's CSVs as records addressed by column name (never by position), and the
//! grouping of records into series and panels.
//!
//! Older runs lack columns: a record falls back to the column an older writer used
//! (`mode` before `system`, the swept `param_*` value), and a metric without its
//! `_lo`/`_hi` interval is drawn without error bars.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::style::{MAX_SERIES, is_platform, system_rank};

/// Columns an older `results.csv` or `cdf.csv` may name differently, each with the columns
/// to read instead, in order.
const FALLBACKS: &[(&str, &[&str])] = &[
    ("system", &["mode", "param_topology_mode"]),
    ("executors", &["param_topology_executors"]),
    ("workers", &["param_topology_workers"]),
    ("function", &["param_workload_function"]),
    ("offered_rate", &["param_load_rate"]),
];

/// Sections of the experiment file, left out of a swept parameter's short name.
const SECTIONS: [&str; 5] = ["topology_", "workload_", "load_", "collect_", "references_"];

/// One CSV row.
#[derive(Debug, Clone, Default)]
pub struct Record(BTreeMap<String, String>);

impl Record {
    /// Builds a record from `(column, value)` pairs.
    pub fn new<'a>(cells: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            cells
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The non-empty value of `column`, or of the column an older writer used for it.
    #[must_use]
    pub fn text(&self, column: &str) -> Option<&str> {
        let own = self.raw(column);
        if own.is_some() {
            return own;
        }
        FALLBACKS
            .iter()
            .find(|(name, _)| *name == column)
            .and_then(|(_, others)| others.iter().find_map(|c| self.raw(c)))
    }

    fn raw(&self, column: &str) -> Option<&str> {
        self.0
            .get(column)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The finite number in `column` (see [`Record::text`]).
    #[must_use]
    pub fn num(&self, column: &str) -> Option<f64> {
        self.text(column)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }

    /// The mean of `metric` with its 95% confidence interval (`<metric>_lo`, `<metric>_hi`)
    /// when the run has one.
    #[must_use]
    pub fn measure(&self, metric: &str) -> Option<Measure> {
        let mean = self.num(metric)?;
        let interval = self
            .num(&format!("{metric}_lo"))
            .zip(self.num(&format!("{metric}_hi")));
        Some(Measure { mean, interval })
    }

    /// Who ran the row: a dispatch mode of this platform or a reference target.
    #[must_use]
    pub fn system(&self) -> &str {
        self.text("system").unwrap_or("?")
    }

    /// Whether the row is a reference whose package was missing (no numbers).
    #[must_use]
    pub fn unavailable(&self) -> bool {
        self.text("warnings").is_some_and(|w| {
            w.split(';')
                .any(|item| item.trim().starts_with("unavailable:"))
        })
    }

    fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("param_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A mean and, when measured, its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    pub mean: f64,
    pub interval: Option<(f64, f64)>,
}

/// Reads a CSV file into records.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<Record>> {
    Ok(crate::export::csv::read_rows(path)?
        .into_iter()
        .map(Record)
        .collect())
}

/// A swept parameter's short name: `param_load_rate` → `rate`.
#[must_use]
pub fn short_param(column: &str) -> &str {
    let name = column.strip_prefix("param_").unwrap_or(column);
    SECTIONS
        .iter()
        .find_map(|s| name.strip_prefix(s))
        .unwrap_or(name)
}

/// A value as a legend shows it: `500.0` → `500`.
#[must_use]
pub fn display_value(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => value.to_owned(),
    }
}

/// The swept parameters (`param_*` columns) that take more than one value among `records`,
/// except the mode (the `system` column says it) and those whose short name is in `skip`.
#[must_use]
pub fn varying_params(records: &[&Record], skip: &[&str]) -> Vec<String> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for record in records {
        for (column, value) in record.params() {
            values.entry(column).or_default().insert(value.trim());
        }
    }
    values
        .into_iter()
        .filter(|(column, v)| {
            let short = short_param(column);
            v.len() > 1 && short != "mode" && !skip.contains(&short)
        })
        .map(|(column, _)| column.to_owned())
        .collect()
}

/// Compares strings as people read them: digit runs (with a decimal part) by value, so
/// `rate=500` sorts before `rate=1000`.
#[must_use]
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(&tb) {
        let order = match (x, y) {
            (Token::Number(x), Token::Number(y)) => x.total_cmp(y),
            (Token::Text(x), Token::Text(y)) => x.cmp(y),
            (Token::Number(_), Token::Text(_)) => Ordering::Less,
            (Token::Text(_), Token::Number(_)) => Ordering::Greater,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ta.len().cmp(&tb.len()).then_with(|| a.cmp(b))
}

enum Token<'a> {
    Number(f64),
    Text(&'a str),
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(Token::Number(s[start..i].parse().unwrap_or(f64::MAX)));
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Text(&s[start..i]));
        }
    }
    out
}

/// What tells a series apart: its system and the values of the other varying parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub system: String,
    /// `(short parameter name, value)`, in column order.
    pub rest: Vec<(String, String)>,
}

impl SeriesKey {
    /// The key of `record` given the varying parameter columns.
    #[must_use]
    pub fn of(record: &Record, params: &[String]) -> Self {
        Self {
            system: record.system().to_owned(),
            rest: params
                .iter()
                .map(|p| {
                    (
                        short_param(p).to_owned(),
                        display_value(record.text(p).unwrap_or("")),
                    )
                })
                .collect(),
        }
    }

    fn rest_label(&self, skip: Option<usize>) -> String {
        self.rest
            .iter()
            .enumerate()
            .filter(|(i, (_, v))| Some(*i) != skip && !v.is_empty())
            .map(|(_, (k, v))| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Ord for SeriesKey {
    fn cmp(&self, other: &Self) -> Ordering {
        system_rank(&self.system)
            .cmp(&system_rank(&other.system))
            .then_with(|| self.system.cmp(&other.system))
            .then_with(|| natural_cmp(&self.rest_label(None), &other.rest_label(None)))
    }
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One series as a panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub key: SeriesKey,
    /// The legend label: what the panel's title does not already say.
    pub label: String,
    /// Whether the label names the system (so a reference can be drawn as one).
    pub names_system: bool,
}

/// A panel's share of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facet {
    /// What all its series have in common, when the series were split by it.
    pub title: Option<String>,
    pub series: Vec<Shown>,
}

/// Splits series over panels of at most [`MAX_SERIES`] each, so that within a panel they
/// are compared on what matters most:
///
/// 1. all in one panel when they fit;
/// 2. otherwise one panel per value of a parameter (e.g. collection method, each panel
///    comparing systems) or one per system (each comparing e.g. offered rates), whichever
///    needs fewer panels, parameters first on a tie;
/// 3. otherwise this platform's modes apart from the references, `floor` in both when it
///    fits, in chunks of at most [`MAX_SERIES`].
#[must_use]
pub fn facets(keys: &[SeriesKey]) -> Vec<Facet> {
    let keys: Vec<SeriesKey> = keys
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let full = |key: &SeriesKey| Shown {
        label: match key.rest_label(None) {
            rest if rest.is_empty() => key.system.clone(),
            rest => format!("{} {rest}", key.system),
        },
        key: key.clone(),
        names_system: true,
    };
    if keys.len() <= MAX_SERIES {
        return vec![Facet {
            title: None,
            series: keys.iter().map(full).collect(),
        }];
    }
    let dims = keys.first().map_or(0, |k| k.rest.len());
    // Candidate splits: by each parameter (Some(d)), then by system (None).
    let mut best: Option<(usize, Option<usize>)> = None;
    // Splitting series that differ by system alone would leave one series per panel.
    let by_system = (dims > 0).then_some(None);
    for split in (0..dims).map(Some).chain(by_system) {
        let groups = group_by(&keys, split);
        if groups.values().all(|g| g.len() <= MAX_SERIES)
            && best.is_none_or(|(n, _)| groups.len() < n)
        {
            best = Some((groups.len(), split));
        }
    }
    match best {
        Some((n, split)) if n <= 2 * MAX_SERIES => {
            let mut groups: Vec<(String, Vec<SeriesKey>)> = group_by(&keys, split)
                .into_iter()
                .map(|(value, g)| match split {
                    Some(d) => (format!("{}={value}", keys[0].rest[d].0), g),
                    None => (value, g),
                })
                .collect();
            match split {
                Some(_) => groups.sort_by(|a, b| natural_cmp(&a.0, &b.0)),
                None => groups.sort_by(|a, b| a.1[0].cmp(&b.1[0])),
            }
            groups
                .into_iter()
                .map(|(title, group)| Facet {
                    title: Some(title),
                    series: group
                        .iter()
                        .map(|key| match split {
                            Some(d) => {
                                let rest = key.rest_label(Some(d));
                                Shown {
                                    label: if rest.is_empty() {
                                        key.system.clone()
                                    } else {
                                        format!("{} {rest}", key.system)
                                    },
                                    key: key.clone(),
                                    names_system: true,
                                }
                            }
                            None => Shown {
                                label: key.rest_label(None),
                                key: key.clone(),
                                names_system: false,
                            },
                        })
                        .collect(),
                })
                .collect()
        }
        _ => split_systems(&keys)
            .into_iter()
            .map(|(title, group)| Facet {
                title: Some(title),
                series: group.iter().map(full).collect(),
            })
            .collect(),
    }
}

/// Keys by the value of parameter `split` (or by system). A key without a value for that
/// parameter (a reference that has no collection method, say) joins every group, as the
/// baseline of each.
fn group_by(keys: &[SeriesKey], split: Option<usize>) -> BTreeMap<String, Vec<SeriesKey>> {
    let mut groups: BTreeMap<String, Vec<SeriesKey>> = BTreeMap::new();
    let mut everywhere = Vec::new();
    for key in keys {
        match split {
            Some(d) if key.rest[d].1.is_empty() => everywhere.push(key.clone()),
            Some(d) => groups
                .entry(key.rest[d].1.clone())
                .or_default()
                .push(key.clone()),
            None => groups
                .entry(key.system.clone())
                .or_default()
                .push(key.clone()),
        }
    }
    if groups.is_empty() {
        groups.insert(String::new(), everywhere);
    } else {
        for group in groups.values_mut() {
            group.extend(everywhere.iter().cloned());
        }
    }
    groups
}

/// This platform's modes, then the references (each chunk with `floor` first when there is
/// one and room for it).
fn split_systems(keys: &[SeriesKey]) -> Vec<(String, Vec<SeriesKey>)> {
    let (platform, references): (Vec<SeriesKey>, Vec<SeriesKey>) =
        keys.iter().cloned().partition(|k| is_platform(&k.system));
    let floor: Vec<SeriesKey> = references
        .iter()
        .filter(|k| k.system == "floor")
        .cloned()
        .collect();
    let others: Vec<SeriesKey> = references
        .iter()
        .filter(|k| k.system != "floor")
        .cloned()
        .collect();
    let mut out = Vec::new();
    let mut push_chunks = |name: &str, keys: Vec<SeriesKey>, with_floor: bool| {
        let room = if with_floor {
            MAX_SERIES - floor.len().min(MAX_SERIES - 1)
        } else {
            MAX_SERIES
        };
        let chunks: Vec<&[SeriesKey]> = keys.chunks(room).collect();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut group = Vec::new();
            if with_floor {
                group.extend(floor.iter().take(MAX_SERIES - 1).cloned());
            }
            group.extend(chunk.iter().cloned());
            let title = if n > 1 {
                format!("{name} ({} of {n})", i + 1)
            } else {
                name.to_owned()
            };
            out.push((title, group));
        }
    };
    let floor_fits = !floor.is_empty() && floor.len() < MAX_SERIES;
    if !platform.is_empty() {
        push_chunks("this platform", platform, floor_fits);
    }
    if !others.is_empty() {
        push_chunks("references", others, floor_fits);
    } else if !floor.is_empty() && !floor_fits {
        push_chunks("references", floor.clone(), false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(system: &str, rest: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            system: system.to_owned(),
            rest: rest
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn natural_order_puts_1000_after_500() {
        let mut labels = vec![
            "rate=5000",
            "rate=1000",
            "rate=500",
            "rate=2000.5",
            "rate=2000",
        ];
        labels.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            labels,
            [
                "rate=500",
                "rate=1000",
                "rate=2000",
                "rate=2000.5",
                "rate=5000"
            ]
        );
        let mut labels = vec![
            "push executors=16",
            "push executors=2",
            "local",
            "0.25",
            "0.5",
        ];
        labels.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            labels,
            [
                "0.25",
                "0.5",
                "local",
                "push executors=2",
                "push executors=16"
            ]
        );
    }

    #[test]
    fn series_order_is_systems_then_natural_values() {
        let mut keys = [
            key("push", &[("rate", "1000")]),
            key("zmq", &[("rate", "500")]),
            key("local", &[("rate", "1000")]),
            key("local", &[("rate", "500")]),
        ];
        keys.sort();
        let labels: Vec<String> = keys
            .iter()
            .map(|k| format!("{} {}", k.system, k.rest[0].1))
            .collect();
        assert_eq!(labels, ["local 500", "local 1000", "push 1000", "zmq 500"]);
    }

    #[test]
    fn six_series_share_one_panel() {
        let keys: Vec<SeriesKey> = ["local", "pull", "push"]
            .iter()
            .flat_map(|s| {
                [
                    key(s, &[("method", "fastest")]),
                    key(s, &[("method", "poll")]),
                ]
            })
            .collect();
        let facets = facets(&keys);
        assert_eq!(facets.len(), 1);
        assert_eq!(facets[0].series.len(), 6);
        assert_eq!(facets[0].series[0].label, "local method=fastest");
    }

    #[test]
    fn more_series_are_split_with_at_most_six_per_panel() {
        // 3 modes x 6 rates: one panel per mode beats one per rate.
        let rates = ["500", "1000", "2000", "3000", "4000", "5000"];
        let keys: Vec<SeriesKey> = ["push", "local", "pull"]
            .iter()
            .flat_map(|s| rates.iter().map(move |r| key(s, &[("rate", r)])))
            .collect();
        let split = facets(&keys);
        let titles: Vec<_> = split.iter().map(|f| f.title.clone().unwrap()).collect();
        assert_eq!(titles, ["local", "pull", "push"]);
        let labels: Vec<_> = split[0].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "rate=500",
                "rate=1000",
                "rate=2000",
                "rate=3000",
                "rate=4000",
                "rate=5000"
            ]
        );

        // 4 systems x 2 methods: one panel per method, comparing systems.
        let keys: Vec<SeriesKey> = ["local", "pull", "push", "floor"]
            .iter()
            .flat_map(|s| {
                [
                    key(s, &[("method", "poll")]),
                    key(s, &[("method", "fastest")]),
                ]
            })
            .collect();
        let split = facets(&keys);
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].title.as_deref(), Some("method=fastest"));
        let labels: Vec<_> = split[0].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["local", "pull", "push", "floor"]);

        // Nine systems alone: the platform (with floor), then the references (with floor).
        let keys: Vec<SeriesKey> = ["dask", "local", "pull", "push", "floor", "process_pool"]
            .iter()
            .chain(&["zmq", "ray", "celery"])
            .map(|s| key(s, &[]))
            .collect();
        let split = facets(&keys);
        for facet in &split {
            assert!(facet.series.len() <= MAX_SERIES, "{facet:?}");
        }
        let systems: Vec<Vec<&str>> = split
            .iter()
            .map(|f| f.series.iter().map(|s| s.key.system.as_str()).collect())
            .collect();
        assert_eq!(
            systems,
            [
                vec!["floor", "local", "pull", "push"],
                vec!["floor", "process_pool", "zmq", "ray", "celery", "dask"]
            ]
        );
    }

    #[test]
    fn a_series_without_the_split_parameter_is_in_every_panel() {
        let mut keys: Vec<SeriesKey> = ["local", "pull", "push", "zmq"]
            .iter()
            .flat_map(|s| {
                [
                    key(s, &[("method", "fastest")]),
                    key(s, &[("method", "poll")]),
                ]
            })
            .collect();
        keys.push(key("floor", &[("method", "")]));
        let split = facets(&keys);
        let labels: Vec<Vec<&str>> = split
            .iter()
            .map(|f| f.series.iter().map(|s| s.label.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                ["local", "pull", "push", "zmq", "floor"],
                ["local", "pull", "push", "zmq", "floor"]
            ]
        );
        assert_eq!(split[1].title.as_deref(), Some("method=poll"));
    }

    #[test]
    fn older_columns_stand_in_for_newer_ones() {
        let old = Record::new([("mode", "push"), ("param_load_rate", "500.0")]);
        assert_eq!(old.system(), "push");
        assert_eq!(old.num("offered_rate"), Some(500.0));
        let new = Record::new([("system", "ray"), ("mode", "burst")]);
        assert_eq!(new.system(), "ray");
    }

    #[test]
    fn a_measure_has_an_interval_only_when_both_bounds_are_there() {
        let r = Record::new([
            ("throughput", "10"),
            ("throughput_lo", "9"),
            ("throughput_hi", "11.5"),
            ("p99_ms", "3"),
            ("p99_ms_lo", ""),
            ("p99_ms_hi", "4"),
        ]);
        assert_eq!(r.measure("throughput").unwrap().interval, Some((9.0, 11.5)));
        assert_eq!(r.measure("p99_ms").unwrap().interval, None);
        assert_eq!(r.measure("efficiency"), None);
        let missing = Record::new([
            ("system", "ray"),
            ("warnings", "unavailable: no module named ray"),
        ]);
        assert!(missing.unavailable());
        assert!(!r.unavailable());
    }

    #[test]
    fn parameters_have_short_names_and_plain_values() {
        assert_eq!(short_param("param_load_rate"), "rate");
        assert_eq!(short_param("param_collect_method"), "method");
        assert_eq!(
            short_param("param_topology_max_executors_per_worker"),
            "max_executors_per_worker"
        );
        assert_eq!(display_value("500.0"), "500");
        assert_eq!(display_value("0.25"), "0.25");
        assert_eq!(display_value("poll"), "poll");
    }
}
