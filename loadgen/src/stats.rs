//! Latency histograms, the summary of a point over its repetitions, and the statistics behind
//! every interval loadgen reports.
//!
//! Repetitions are few (3 by default), so intervals of a mean use Student's t below
//! [`BOOTSTRAP_FROM`] repetitions, where a percentile bootstrap cannot reach past the
//! sample's range and covers far less than it claims, and the percentile bootstrap from
//! there on, where it no longer assumes normal data. A ratio of two runs' figures is the
//! ratio of their geometric means with Welch's t interval on the logarithms. The
//! Mann–Whitney test is there as a distribution-free second opinion.

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
        // NaN, not 0, when nothing finished: such a repetition is left out of the estimates.
        let ms = |q: f64| {
            if run.latency.is_empty() {
                f64::NAN
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
            throughput: if run.makespan_s > 0.0 && done > 0.0 {
                done / run.makespan_s
            } else {
                f64::NAN
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

/// Bootstrap resamples behind every bootstrap interval.
pub const RESAMPLES: usize = 10_000;
/// From this many repetitions on, an interval of a mean is a percentile bootstrap; below,
/// Student's t.
pub const BOOTSTRAP_FROM: usize = 10;
/// Below this many repetitions no repetition is called an outlier: with 3 normal values the
/// MAD rule would flag one in three points.
pub const OUTLIERS_FROM: usize = 5;
/// A coefficient of variation above this earns a warning.
pub const HIGH_CV: f64 = 0.10;
/// How far (in scaled MADs, a robust standard deviation) a repetition may lie from the median.
pub const OUTLIER_MADS: f64 = 3.0;

impl Estimate {
    /// Estimates from `values` (one per repetition; NaN ones, repetitions that measured
    /// nothing, are left out); all zero when there are none.
    #[must_use]
    pub fn of(values: &[f64]) -> Self {
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let values = values.as_slice();
        if values.is_empty() {
            return Self::default();
        }
        let (mean, std) = mean_std(values);
        let (mut lo, hi) = mean_interval(values);
        // Every figure measured here is a count, a rate or a time: a spread-out handful of
        // them must not give an interval below 0.
        if values.iter().all(|v| *v >= 0.0) {
            lo = lo.max(0.0);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = median_of_sorted(&sorted);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        // 1.4826 makes the MAD estimate the standard deviation of normal data.
        let mad = 1.4826 * median_of_sorted(&deviations);
        let outliers = if mad > 0.0 && values.len() >= OUTLIERS_FROM {
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

/// The 95% interval of the mean of `values` (see the module comment for which kind).
#[must_use]
pub fn mean_interval(values: &[f64]) -> (f64, f64) {
    let (mean, std) = mean_std(values);
    match values.len() {
        0 => (f64::NAN, f64::NAN),
        1 => (mean, mean),
        n if n < BOOTSTRAP_FROM => {
            let half = t_975(n as f64 - 1.0) * std / (n as f64).sqrt();
            (mean - half, mean + half)
        }
        _ => bootstrap(&[values], |s| mean_of(s[0])),
    }
}

/// B over A: the ratio of the geometric means of two sets of repetitions with its 95%
/// interval (Welch's t on the logarithms). The interval is NaN when either side has fewer
/// than two values or a value that is not positive.
#[must_use]
pub fn ratio_interval(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let logs = |v: &[f64]| -> Option<Vec<f64>> {
        v.iter()
            .map(|x| (*x > 0.0 && x.is_finite()).then(|| x.ln()))
            .collect()
    };
    let (Some(la), Some(lb)) = (logs(a), logs(b)) else {
        let ratio = mean_of(b) / mean_of(a);
        return (ratio, f64::NAN, f64::NAN);
    };
    let ((ma, sa), (mb, sb)) = (mean_std(&la), mean_std(&lb));
    let ratio = (mb - ma).exp();
    if la.len() < 2 || lb.len() < 2 {
        return (ratio, f64::NAN, f64::NAN);
    }
    let (va, vb) = (sa * sa / la.len() as f64, sb * sb / lb.len() as f64);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return (ratio, ratio, ratio);
    }
    let df =
        (va + vb).powi(2) / (va * va / (la.len() as f64 - 1.0) + vb * vb / (lb.len() as f64 - 1.0));
    let half = t_975(df) * se;
    (ratio, (mb - ma - half).exp(), (mb - ma + half).exp())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (a fractional `df`, as
/// Welch's gives, is rounded down, which widens the interval a little).
#[must_use]
pub fn t_975(df: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df.is_nan() || df < 1.0 {
        return f64::NAN;
    }
    let whole = df.floor();
    if whole <= 30.0 {
        return TABLE[whole as usize - 1];
    }
    // Cornish–Fisher expansion around the normal quantile.
    let z: f64 = 1.959_964;
    z + (z.powi(3) + z) / (4.0 * whole)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * whole * whole)
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

    /// Of `trials` samples of `n` values from uniform 0..100 (mean 50), how many intervals
    /// from `interval` hold 50.
    fn coverage(n: usize, trials: usize, interval: impl Fn(&[f64]) -> (f64, f64)) -> usize {
        let mut rng = SplitMix64(42);
        (0..trials)
            .filter(|_| {
                let sample: Vec<f64> = (0..n)
                    .map(|_| (rng.next() % 10_000) as f64 / 100.0)
                    .collect();
                let (lo, hi) = interval(&sample);
                lo <= 50.0 && 50.0 <= hi
            })
            .count()
    }

    #[test]
    fn intervals_of_a_mean_cover_it_about_95_percent_of_the_time() {
        let trials = 400;
        // Student's t at 3 repetitions (the default), the bootstrap at 10.
        let t = coverage(3, trials, mean_interval);
        assert!((360..=395).contains(&t), "t at n=3: {t} of {trials}");
        let bootstrap = coverage(10, trials, mean_interval);
        // The percentile bootstrap under-covers a little at n = 10.
        assert!(
            (340..=395).contains(&bootstrap),
            "bootstrap at n=10: {bootstrap} of {trials}"
        );
        let (lo, hi) = mean_interval(&[1.0, 2.0, 3.0]);
        assert!(
            (hi - 2.0 - 4.303 / 3f64.sqrt()).abs() < 1e-9 && (2.0 - lo - (hi - 2.0)).abs() < 1e-9
        );
    }

    #[test]
    fn ratios_are_significant_when_runs_differ_and_rarely_otherwise() {
        let (r, lo, hi) = ratio_interval(&[100.0, 101.0, 99.0], &[80.0, 81.0, 79.0]);
        assert!(
            (r - 0.8).abs() < 0.01 && hi < 1.0 && lo > 0.7,
            "{r} [{lo}, {hi}]"
        );
        // Three against three from one distribution: about 5% of intervals miss 1.
        let mut rng = SplitMix64(7);
        let mut draw = || -> Vec<f64> {
            (0..3)
                .map(|_| 900.0 + (rng.next() % 20_000) as f64 / 100.0)
                .collect()
        };
        let trials = 400;
        let false_alarms = (0..trials)
            .filter(|_| {
                let (a, b) = (draw(), draw());
                let (_, lo, hi) = ratio_interval(&a, &b);
                lo > 1.0 || hi < 1.0
            })
            .count();
        assert!(false_alarms <= 40, "{false_alarms} of {trials}");
        let (_, lo, _) = ratio_interval(&[1.0], &[2.0, 3.0]);
        assert!(lo.is_nan(), "one repetition gives no interval");
        let (r, lo, hi) = ratio_interval(&[5.0, 5.0], &[6.0, 6.0]);
        assert_eq!(
            (r, lo, hi),
            (1.2, 1.2, 1.2),
            "constant counts differ for sure"
        );
        assert!((t_975(2.5) - 4.303).abs() < 1e-9 && (t_975(1000.0) - 1.962).abs() < 1e-3);
    }

    #[test]
    fn spread_and_outliers_are_warned_about() {
        let steady = Estimate::of(&[100.0, 101.0, 99.0]);
        assert_eq!(steady.warning("throughput"), None);
        let outlier = Estimate::of(&[100.0, 101.0, 99.0, 100.5, 150.0]);
        assert_eq!(outlier.outliers, vec![4]);
        let warning = outlier.warning("throughput").unwrap();
        assert!(
            warning.contains("CV") && warning.contains("repetition 5"),
            "{warning}"
        );
        assert!(
            Estimate::of(&[100.0, 101.0, 150.0]).outliers.is_empty(),
            "too few repetitions to call one an outlier"
        );
        assert!(Estimate::of(&[5.0, 5.0, 5.0, 5.0, 5.0]).outliers.is_empty());
        let spread = Estimate::of(&[6.0, 24.0, 353.0]);
        assert_eq!(
            spread.lo, 0.0,
            "a latency's interval stops at 0: {spread:?}"
        );
        let with_nothing = Estimate::of(&[f64::NAN, 4.0, 6.0]);
        assert_eq!((with_nothing.n, with_nothing.mean), (2, 5.0));
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
