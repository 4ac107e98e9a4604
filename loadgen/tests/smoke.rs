//! loadgen end to end: runs `experiments/smoke.toml` (a few tasks in each mode and on two
//! references) against real systems it brings up itself, compares the run with itself, then
//! redraws the charts from the CSVs alone.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_smoke_experiment_runs_end_to_end_and_replots() {
    let out = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .current_dir(repo())
        .args(["run", "experiments/smoke.toml", "--out"])
        .arg(&out)
        .status()
        .expect("run loadgen");
    assert!(status.success(), "loadgen run failed: {status}");

    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("smoke"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let mut reader = csv::Reader::from_path(run.join("results.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let systems: Vec<&str> = rows.iter().map(|r| &r[column("system")]).collect();
    assert_eq!(
        systems,
        ["local", "push", "pull", "floor", "process_pool"],
        "one row per mode, then the references"
    );
    for row in &rows {
        assert_eq!(&row[column("repetitions")], "2", "{row:?}");
        assert_eq!(&row[column("completed")], "12", "6 tasks twice: {row:?}");
        assert_eq!(&row[column("lost")], "0", "{row:?}");
        let efficiency: f64 = row[column("efficiency")].parse().unwrap();
        assert!(efficiency > 0.3 && efficiency <= 1.0, "{row:?}");
        let (lo, hi): (f64, f64) = (
            row[column("throughput_lo")].parse().unwrap(),
            row[column("throughput_hi")].parse().unwrap(),
        );
        let mean: f64 = row[column("throughput")].parse().unwrap();
        assert!(lo <= mean && mean <= hi, "{row:?}");
        let cpu: f64 = row[column("cpu_total_us")].parse().unwrap();
        assert!(cpu > 0.0, "{row:?}");
    }
    assert!(
        rows[4][column("version")].starts_with("python 3"),
        "{:?}",
        rows[4]
    );
    let repetitions = std::fs::read_to_string(run.join("repetitions.csv")).unwrap();
    assert_eq!(repetitions.lines().count(), 1 + 5 * 2, "{repetitions}");
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("| mode=pull | 2 |"), "{summary}");
    assert!(summary.contains("× floor"), "{summary}");

    // A run compared with itself: every change is within noise, so no gate breaks.
    let compared = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["compare", "--fail-on", "throughput:1"])
        .args([run, run])
        .output()
        .expect("run loadgen compare");
    let table = String::from_utf8_lossy(&compared.stdout);
    assert!(compared.status.success(), "{table}");
    assert!(
        table.contains("| mode=push (push) | throughput |"),
        "{table}"
    );
    assert!(!table.contains("| worse |"), "{table}");

    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metadata.json")).unwrap()).unwrap();
    assert!(metadata["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        metadata["experiment"]
            .as_str()
            .unwrap()
            .contains("name = \"smoke\"")
    );

    for chart in ["efficiency.svg", "latency_cdf.svg"] {
        std::fs::remove_file(run.join(chart)).unwrap();
    }
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("plot")
        .arg(run)
        .status()
        .expect("run loadgen plot");
    assert!(status.success());
    for chart in ["efficiency.svg", "latency_cdf.svg"] {
        let svg = std::fs::read_to_string(run.join(chart)).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("smoke"),
            "{chart} was not redrawn"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
