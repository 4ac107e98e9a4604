//! Latency histograms and the summary of a point over its repetitions.

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to an hour, with 3 significant digits.
#[must_use]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// One measured run of a point.
#[derive(Debug, Clone)]
pub struct Run {
    pub completed: u64,
    /// FAILED tasks (the function raised, or the platform failed it).
    pub failed: u64,
    /// Tasks not final within the collection timeout, or that vanished.
    pub lost: u64,
    /// First submission to last result, seconds.
    pub makespan_s: f64,
    /// Submission (or scheduled submission) to result available, µs.
    pub latency: Histogram<u64>,
    /// Completed tasks sampled for the overhead breakdown.
    pub samples: Vec<crate::breakdown::Sample>,
}

/// A point over all its repetitions: what the CSV row holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub repetitions: usize,
    pub tasks: u64,
    pub completed: u64,
    pub failed: u64,
    pub lost: u64,
    pub makespan_s: f64,
    pub makespan_std_s: f64,
    /// Final tasks per second of makespan.
    pub throughput: f64,
    pub throughput_std: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Mean and sample standard deviation (0 for a single value).
#[must_use]
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Summarizes the repetitions of one point; latency percentiles come from their merged
/// histograms.
#[must_use]
pub fn summarize(tasks: u64, runs: &[Run]) -> Summary {
    let mut merged = new_histogram();
    for run in runs {
        merged.add(&run.latency).expect("same bounds");
    }
    let makespans: Vec<f64> = runs.iter().map(|r| r.makespan_s).collect();
    let throughputs: Vec<f64> = runs
        .iter()
        .map(|r| {
            let done = (r.completed + r.failed) as f64;
            if r.makespan_s > 0.0 {
                done / r.makespan_s
            } else {
                0.0
            }
        })
        .collect();
    let (makespan_s, makespan_std_s) = mean_std(&makespans);
    let (throughput, throughput_std) = mean_std(&throughputs);
    let ms = |q: f64| {
        if merged.is_empty() {
            0.0
        } else {
            merged.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Summary {
        repetitions: runs.len(),
        tasks,
        completed: runs.iter().map(|r| r.completed).sum(),
        failed: runs.iter().map(|r| r.failed).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
        makespan_s,
        makespan_std_s,
        throughput,
        throughput_std,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: if merged.is_empty() {
            0.0
        } else {
            merged.max() as f64 / 1000.0
        },
    }
}

/// `(quantile, latency ms)` at evenly spaced quantiles plus the tail, for CDF charts.
#[must_use]
pub fn cdf(runs: &[Run]) -> Vec<(f64, f64)> {
    let mut merged = new_histogram();
    for run in runs {
        merged.add(&run.latency).expect("same bounds");
    }
    if merged.is_empty() {
        return Vec::new();
    }
    let mut quantiles: Vec<f64> = (0..=50).map(|i| f64::from(i) / 50.0).collect();
    quantiles.extend([0.99, 0.995, 0.999]);
    quantiles.sort_by(f64::total_cmp);
    quantiles
        .into_iter()
        .map(|q| (q, merged.value_at_quantile(q) as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(latencies_us: &[u64], makespan_s: f64) -> Run {
        let mut latency = new_histogram();
        for &l in latencies_us {
            latency.record(l).unwrap();
        }
        Run {
            completed: latencies_us.len() as u64,
            failed: 0,
            lost: 0,
            makespan_s,
            latency,
            samples: Vec::new(),
        }
    }

    #[test]
    fn mean_and_sample_deviation() {
        assert_eq!(mean_std(&[]), (0.0, 0.0));
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - 2.138_089_935).abs() < 1e-6);
    }

    #[test]
    fn summary_merges_repetitions() {
        let a = run(&(1..=100).map(|i| i * 1000).collect::<Vec<_>>(), 2.0);
        let b = run(&(101..=200).map(|i| i * 1000).collect::<Vec<_>>(), 4.0);
        let s = summarize(100, &[a, b]);
        assert_eq!(s.completed, 200);
        assert!((s.makespan_s - 3.0).abs() < 1e-9);
        assert!(
            (s.throughput - 37.5).abs() < 1e-9,
            "mean of 50 and 25 tasks/s"
        );
        assert!((s.p50_ms - 100.0).abs() < 0.2, "{}", s.p50_ms);
        assert!((s.max_ms - 200.0).abs() < 0.2, "{}", s.max_ms);
    }

    #[test]
    fn cdf_is_monotonic_and_ends_at_the_max() {
        let r = run(&[1000, 2000, 3000, 50_000], 1.0);
        let points = cdf(&[r]);
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        assert!((points.last().unwrap().1 - 50.0).abs() < 0.1);
    }
}
