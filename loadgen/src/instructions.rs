//! Instructions per task of the platform's own processes, counted by valgrind's callgrind: a
//! measure that does not drift with machine noise (the same binary and inputs give the same
//! count whatever else runs), for telling small changes apart where time cannot.
//!
//! With `instructions = true`, the gateway, the dispatcher and the workers run under
//! `valgrind --tool=callgrind` through wrapper scripts standing in for the binaries; around
//! each repetition, `callgrind_control` zeroes their counters and then dumps them, and the
//! dump's total over the tasks of the repetition is the figure. Everything those processes
//! do in the window counts (heartbeats included); the Python executors and Redis are not
//! counted.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// The counted components, in column order.
pub const COUNTED: [&str; 3] = ["gateway", "dispatcher", "workers"];

/// The binaries run under callgrind and the component each one counts as.
const WRAPPED: [(&str, usize); 4] = [
    ("faas-gateway", 0),
    ("task_dispatcher", 1),
    ("pull_worker", 2),
    ("push_worker", 2),
];

/// Instructions per task of each [`COUNTED`] component.
pub type PerTask = [f64; 3];

/// A directory of stand-ins for the platform's binaries that run the real ones under
/// callgrind, and where their counts are dumped.
#[derive(Debug, Clone)]
pub struct Callgrind {
    bin: PathBuf,
    dumps: PathBuf,
}

impl Callgrind {
    /// Writes the stand-ins for the binaries in `real` into `dir`.
    pub fn prepare(real: &Path, dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            faas::cluster::binaries::find_in_path("valgrind").is_some()
                && faas::cluster::binaries::find_in_path("callgrind_control").is_some(),
            "instructions = true needs valgrind: apt-get install valgrind"
        );
        let bin = dir.join("bin");
        let dumps = dir.join("callgrind");
        std::fs::create_dir_all(&bin)?;
        std::fs::create_dir_all(&dumps)?;
        for (name, _) in WRAPPED {
            let script = format!(
                "#!/bin/sh\n# {name} under callgrind (loadgen: instructions = true)\n\
                 exec valgrind --tool=callgrind --callgrind-out-file={}/{name}.%p.out \
                 --dump-line=no {} \"$@\"\n",
                dumps.display(),
                real.join(name).display()
            );
            write_executable(&bin.join(name), &script)?;
        }
        Ok(Self { bin, dumps })
    }

    /// Where the stand-ins are: the cluster's binary directory.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Zeroes the counters of `pids` (the start of a repetition).
    pub fn zero(pids: &[i32]) -> anyhow::Result<()> {
        for pid in pids {
            control(&["-z", &pid.to_string()])?;
        }
        Ok(())
    }

    /// Dumps the counters of each `(component, pid)` and returns the instructions per task
    /// of each component since they were zeroed.
    pub fn dump(&self, pids: &[(usize, i32)], tasks: u64) -> anyhow::Result<PerTask> {
        let mut out = [0.0; 3];
        for &(component, pid) in pids {
            control(&["-d", &pid.to_string()])?;
            out[component] += self.latest_total(pid)? as f64 / tasks.max(1) as f64;
        }
        Ok(out)
    }

    /// The total of the newest dump of `pid` (`<name>.<pid>.out.<n>`).
    fn latest_total(&self, pid: i32) -> anyhow::Result<u64> {
        let marker = format!(".{pid}.out.");
        let newest = std::fs::read_dir(&self.dumps)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n: u64 = name.split_once(&marker)?.1.parse().ok()?;
                Some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n)
            .with_context(|| format!("callgrind wrote no dump for process {pid}"))?;
        let text = std::fs::read_to_string(&newest.1)?;
        text.lines()
            .find_map(|l| l.strip_prefix("summary:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no summary line in {}", newest.1.display()))
    }
}

fn control(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("cannot run callgrind_control")?;
    anyhow::ensure!(
        out.status.success(),
        "callgrind_control {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
