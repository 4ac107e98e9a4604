//! What a run leaves in `results/<experiment>/<run>/`, one file per format:
//! `results.csv` (one row per point), `cdf.csv` (latency quantiles per point),
//! `metadata.json` (configuration, commit, machine), `experiment.toml` (the file as run).

pub mod csv;
pub mod metadata;

/// A figure for a table: three significant figures, no exponent for everyday magnitudes.
#[must_use]
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
