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

/// A point over all its repetitions: what the CSV row holds. Throughput, makespan and the
/// latency percentiles are estimated from the repetitions (each one a value); the tail
/// (`p999_ms`, `max_ms`) comes from the merged histograms, too sparse per repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub repetitions: usize,
    pub tasks: u64,
    pub completed: u64,
    pub failed: u64,
    pub lost: u64,
    pub makespan_s: Estimate,
    /// Final tasks per second of makespan.
    pub throughput: Estimate,
    pub p50_ms: Estimate,
    pub p90_ms: Estimate,
    pub p99_ms: Estimate,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Each repetition's own figures, for `repetitions.csv` and `loadgen compare`.
    pub per_repetition: Vec<Figures>,
}

/// One repetition's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    pub tasks: u64,
    pub completed: u64,
    pub failed: u64,
    pub lost: u64,
    pub makespan_s: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl Figures {
    /// The figures of one run.
    #[must_use]
    pub fn of(run: &Run) -> Self {
        let done = (run.completed + run.failed) as f64;
        let ms = |q: f64| {
            if run.latency.is_empty() {
                0.0
            } else {
                run.latency.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Self {
            tasks: run.completed + run.failed + run.lost,
            completed: run.completed,
            failed: run.failed,
            lost: run.lost,
            makespan_s: run.makespan_s,
            throughput: if run.makespan_s > 0.0 {
                done / run.makespan_s
            } else {
                0.0
            },
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
        }
    }
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

/// Summarizes the repetitions of one point.
#[must_use]
pub fn summarize(tasks: u64, runs: &[Run]) -> Summary {
    let mut merged = new_histogram();
    for run in runs {
        merged.add(&run.latency).expect("same bounds");
    }
    let per_repetition: Vec<Figures> = runs.iter().map(Figures::of).collect();
    let of =
        |f: fn(&Figures) -> f64| Estimate::of(&per_repetition.iter().map(f).collect::<Vec<_>>());
    Summary {
        repetitions: runs.len(),
        // A run bounded by time has no planned count: report what a repetition measured.
        tasks: if tasks > 0 || per_repetition.is_empty() {
            tasks
        } else {
            per_repetition.iter().map(|f| f.tasks).sum::<u64>() / per_repetition.len() as u64
        },
        completed: runs.iter().map(|r| r.completed).sum(),
        failed: runs.iter().map(|r| r.failed).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
        makespan_s: of(|f| f.makespan_s),
        throughput: of(|f| f.throughput),
        p50_ms: of(|f| f.p50_ms),
        p90_ms: of(|f| f.p90_ms),
        p99_ms: of(|f| f.p99_ms),
        p999_ms: if merged.is_empty() {
            0.0
        } else {
            merged.value_at_quantile(0.999) as f64 / 1000.0
        },
        max_ms: if merged.is_empty() {
            0.0
        } else {
            merged.max() as f64 / 1000.0
        },
        per_repetition,
    }
}

/// What a set of repetitions says of one figure: the mean with its 95% confidence interval
/// (percentile bootstrap of the mean), the median and range, the spread, and which
/// repetitions look like outliers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    /// 95% confidence interval of the mean; both equal the value when `n` is 1.
    pub lo: f64,
    pub hi: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation, `std / |mean|` (0 when the mean is 0).
    pub cv: f64,
    /// Indices of repetitions more than [`OUTLIER_MADS`] scaled median absolute deviations
    /// from the median.
    pub outliers: Vec<usize>,
}

/// Bootstrap resamples behind every interval.
pub const RESAMPLES: usize = 10_000;
/// A coefficient of variation above this earns a warning.
pub const HIGH_CV: f64 = 0.10;
/// How far (in scaled MADs, a robust standard deviation) a repetition may lie from the median.
pub const OUTLIER_MADS: f64 = 3.0;

impl Estimate {
    /// Estimates from `values` (one per repetition); all zero when there are none.
    #[must_use]
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let (mean, std) = mean_std(values);
        let (lo, hi) = bootstrap(&[values], |s| mean_of(s[0]));
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = median_of_sorted(&sorted);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        // 1.4826 makes the MAD estimate the standard deviation of normal data.
        let mad = 1.4826 * median_of_sorted(&deviations);
        let outliers = if mad > 0.0 {
            (0..values.len())
                .filter(|&i| (values[i] - median).abs() > OUTLIER_MADS * mad)
                .collect()
        } else {
            Vec::new()
        };
        Self {
            n: values.len(),
            mean,
            std,
            lo,
            hi,
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            cv: if mean == 0.0 { 0.0 } else { std / mean.abs() },
            outliers,
        }
    }

    /// Whether the values are worth a warning: too spread, or with an outlier.
    #[must_use]
    pub fn warning(&self, name: &str) -> Option<String> {
        let mut parts = Vec::new();
        if self.cv > HIGH_CV {
            parts.push(format!("{name} varies (CV {:.0}%)", self.cv * 100.0));
        }
        if !self.outliers.is_empty() {
            let reps: Vec<String> = self.outliers.iter().map(|i| (i + 1).to_string()).collect();
            parts.push(format!(
                "{name}: repetition {} is an outlier",
                reps.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn mean_of(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The 95% percentile-bootstrap interval of `statistic` over `samples` (each resampled with
/// replacement, independently, [`RESAMPLES`] times). Deterministic: the generator is seeded
/// from the data, so the same run always reports the same interval.
#[must_use]
pub fn bootstrap(samples: &[&[f64]], statistic: impl Fn(&[&[f64]]) -> f64) -> (f64, f64) {
    let seed = samples
        .iter()
        .flat_map(|s| s.iter())
        .fold(0x9E37_79B9_7F4A_7C15u64, |h, v| {
            (h ^ v.to_bits()).wrapping_mul(0x100_0000_01B3)
        });
    let mut rng = SplitMix64(seed);
    let mut buffers: Vec<Vec<f64>> = samples.iter().map(|s| vec![0.0; s.len()]).collect();
    let mut stats = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for (buffer, sample) in buffers.iter_mut().zip(samples) {
            for slot in buffer.iter_mut() {
                *slot = sample[rng.below(sample.len())];
            }
        }
        let views: Vec<&[f64]> = buffers.iter().map(Vec::as_slice).collect();
        let value = statistic(&views);
        if value.is_finite() {
            stats.push(value);
        }
    }
    if stats.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((stats.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// A small, fast generator (Steele, Lea and Flood's SplitMix64): enough for resampling,
/// and no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is negligible for sample sizes).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The two-sided p-value of the Mann–Whitney U test of `a` against `b` (normal
/// approximation with tie correction; conservative for very small samples, where no
/// difference can reach significance anyway: with 3 against 3 the smallest exact p is 0.1).
#[must_use]
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut all: Vec<(f64, usize)> = a
        .iter()
        .map(|&v| (v, 0))
        .chain(b.iter().map(|&v| (v, 1)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut ranks = vec![0.0; all.len()];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for r in &mut ranks[i..=j] {
            *r = rank;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|((_, side), _)| *side == 0)
        .map(|(_, r)| r)
        .sum();
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * (1.0 - standard_normal_cdf(z))).min(1.0)
}

/// Φ(z), from the complementary error function (Numerical Recipes' `erfc` approximation,
/// accurate to 1.2e-7).
fn standard_normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    1.0 - erfc / 2.0
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
        assert!((s.makespan_s.mean - 3.0).abs() < 1e-9);
        assert!(
            (s.throughput.mean - 37.5).abs() < 1e-9,
            "mean of 50 and 25 tasks/s"
        );
        assert!(
            (s.p50_ms.mean - 100.0).abs() < 0.2,
            "mean of each repetition's median: {}",
            s.p50_ms.mean
        );
        assert!((s.max_ms - 200.0).abs() < 0.2, "{}", s.max_ms);
        assert_eq!(s.per_repetition.len(), 2);
        assert!((s.per_repetition[1].throughput - 25.0).abs() < 1e-9);
    }

    #[test]
    fn the_interval_holds_the_mean_and_narrows_with_agreement() {
        let spread = Estimate::of(&[90.0, 100.0, 110.0, 95.0, 105.0]);
        assert!(
            spread.lo < spread.mean && spread.mean < spread.hi,
            "{spread:?}"
        );
        assert!(spread.lo >= 90.0 && spread.hi <= 110.0, "{spread:?}");
        let tight = Estimate::of(&[99.0, 100.0, 101.0, 99.5, 100.5]);
        assert!(tight.hi - tight.lo < (spread.hi - spread.lo) / 5.0);
        assert_eq!(
            spread,
            Estimate::of(&[90.0, 100.0, 110.0, 95.0, 105.0]),
            "deterministic"
        );
        let one = Estimate::of(&[7.0]);
        assert_eq!((one.lo, one.hi, one.median, one.cv), (7.0, 7.0, 7.0, 0.0));
    }

    #[test]
    fn a_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time() {
        // Samples of 10 from a known distribution (uniform 0..100, mean 50).
        let mut rng = SplitMix64(42);
        let trials = 400;
        let covered = (0..trials)
            .filter(|_| {
                let sample: Vec<f64> = (0..10)
                    .map(|_| (rng.next() % 10_000) as f64 / 100.0)
                    .collect();
                let e = Estimate::of(&sample);
                e.lo <= 50.0 && 50.0 <= e.hi
            })
            .count();
        // The percentile bootstrap under-covers a little at n = 10.
        assert!((340..=395).contains(&covered), "{covered} of {trials}");
    }

    #[test]
    fn spread_and_outliers_are_warned_about() {
        let steady = Estimate::of(&[100.0, 101.0, 99.0]);
        assert_eq!(steady.warning("throughput"), None);
        let outlier = Estimate::of(&[100.0, 101.0, 150.0]);
        assert_eq!(outlier.outliers, vec![2]);
        let warning = outlier.warning("throughput").unwrap();
        assert!(
            warning.contains("CV") && warning.contains("repetition 3"),
            "{warning}"
        );
        assert!(Estimate::of(&[5.0, 5.0, 5.0]).outliers.is_empty());
    }

    #[test]
    fn mann_whitney_tells_separated_samples_apart() {
        let a: Vec<f64> = (0..10).map(f64::from).collect();
        let b: Vec<f64> = (20..30).map(f64::from).collect();
        assert!(mann_whitney_p(&a, &b) < 0.001);
        let p = mann_whitney_p(&a, &a);
        assert!(p > 0.9, "{p}");
        assert!((standard_normal_cdf(1.96) - 0.975).abs() < 1e-4);
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
