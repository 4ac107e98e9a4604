//! `metadata.json`: the full configuration, the git commit and the machine, so a result can
//! be traced to what produced it.

use std::path::Path;
use std::process::Command;

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .to_owned(),
    )
}

fn machine() -> serde_json::Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_owned())
        });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        });
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "os": os,
        "kernel": first_line(Command::new("uname").arg("-r")),
    })
}

/// Writes `metadata.json` into `dir`.
pub fn write(dir: &Path, experiment_toml: &str, started_unix: u64) -> anyhow::Result<()> {
    let commit = first_line(Command::new("git").args(["rev-parse", "HEAD"]));
    let dirty =
        first_line(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
            .is_some();
    let metadata = serde_json::json!({
        "loadgen": env!("CARGO_PKG_VERSION"),
        "started_unix": started_unix,
        "git_commit": commit,
        "git_dirty": dirty,
        "machine": machine(),
        "experiment": experiment_toml,
    });
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_string_pretty(&metadata)?,
    )?;
    Ok(())
}
