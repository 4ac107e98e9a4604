//! What a run leaves in `results/<experiment>/<run>/`, one file per format:
//! `results.csv` (one row per point), `cdf.csv` (latency quantiles per point),
//! `metadata.json` (configuration, commit, machine), `experiment.toml` (the file as run).

pub mod csv;
pub mod metadata;
