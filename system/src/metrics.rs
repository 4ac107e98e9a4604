//! Prometheus metrics without a metrics framework: counters, gauges and histograms kept in
//! atomics, and their text exposition (format 0.0.4) for `GET /metrics`. The gateway and the
//! dispatcher each own a set of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets (seconds), from 100 µs to 60 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    15.0, 60.0,
];

/// A label set in exposition form, e.g. `route="GET /health",status="200"`.
#[must_use]
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A monotonically increasing count, per label set (see [`labels`]).
#[derive(Default)]
pub struct CounterVec {
    values: Mutex<BTreeMap<String, u64>>,
}

impl CounterVec {
    pub fn inc(&self, labels: &str, by: u64) {
        let mut values = self.values.lock().expect("metrics lock");
        match values.get_mut(labels) {
            Some(v) => *v += by,
            None => {
                values.insert(labels.to_owned(), by);
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "counter");
        for (labels, count) in self.values.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{name}{{{labels}}} {count}");
        }
    }
}

/// A histogram of durations, per label set (see [`labels`]), with [`LATENCY_BUCKETS`].
#[derive(Default)]
pub struct HistogramVec {
    series: Mutex<BTreeMap<String, Histogram>>,
}

#[derive(Default, Clone)]
struct Histogram {
    /// Per bucket, the observations at most its bound (not cumulative; summed on render).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HistogramVec {
    pub fn observe(&self, labels: &str, value: Duration) {
        let seconds = value.as_secs_f64();
        let mut series = self.series.lock().expect("metrics lock");
        if !series.contains_key(labels) {
            series.insert(labels.to_owned(), Histogram::default());
        }
        let h = series.get_mut(labels).expect("inserted above");
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        for (labels, h) in self.series.lock().expect("metrics lock").iter() {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Builds one exposition.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    #[must_use]
    pub fn counters(mut self, name: &str, help: &str, c: &CounterVec) -> Self {
        c.render(&mut self.0, name, help);
        self
    }

    #[must_use]
    pub fn histograms(mut self, name: &str, help: &str, h: &HistogramVec) -> Self {
        h.render(&mut self.0, name, help);
        self
    }

    #[must_use]
    pub fn gauge(mut self, name: &str, help: &str, value: u64) -> Self {
        header(&mut self.0, name, help, "gauge");
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    #[must_use]
    pub fn finish(self) -> String {
        self.0
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_cumulative_buckets_and_escaped_labels() {
        let c = CounterVec::default();
        let completed = labels(&[("status", "COMPLETED")]);
        c.inc(&completed, 2);
        c.inc(&completed, 1);
        c.inc(&labels(&[("status", "a\"b")]), 1);
        let h = HistogramVec::default();
        let run = labels(&[("phase", "run")]);
        h.observe(&run, Duration::from_micros(200));
        h.observe(&run, Duration::from_millis(30));
        h.observe(&run, Duration::from_secs(120));
        let text = Exposition::default()
            .counters("t_total", "tasks", &c)
            .histograms("p_seconds", "phases", &h)
            .gauge("g", "a gauge", 7)
            .finish();
        assert!(text.contains("# TYPE t_total counter\n"));
        assert!(text.contains("t_total{status=\"COMPLETED\"} 3\n"));
        assert!(text.contains("t_total{status=\"a\\\"b\"} 1\n"));
        assert!(text.contains("p_seconds_bucket{phase=\"run\",le=\"0.00025\"} 1\n"));
        assert!(text.contains("p_seconds_bucket{phase=\"run\",le=\"0.05\"} 2\n"));
        assert!(text.contains("p_seconds_bucket{phase=\"run\",le=\"60\"} 2\n"));
        assert!(text.contains("p_seconds_bucket{phase=\"run\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("p_seconds_count{phase=\"run\"} 3\n"));
        assert!(text.contains("# TYPE g gauge\ng 7\n"));
    }
}
