//! CPU time per component: the CPU time of each process of the system under test (and of
//! loadgen itself), read before and after a repetition from each process's CPU-time clock,
//! with `/proc` telling which processes make up each component. A process that exits in
//! between takes its time with it (an executor replaced mid-repetition); one that starts in
//! between counts from its start. Unlike throughput it
//! does not depend on what else shares the cores, which makes it the steadier measure of what
//! a task costs.

use std::collections::HashMap;

/// The parts a task's CPU time is split into.
pub const COMPONENTS: [&str; 6] = [
    "client",
    "gateway",
    "dispatcher",
    "redis",
    "workers",
    "executors",
];

/// A figure per component, in [`COMPONENTS`] order: cumulative CPU seconds from
/// [`Probe::sample`], µs per task from [`per_task_us`].
pub type PerComponent = [f64; 6];

/// Which processes make up each component: the listed ones, plus (for `executors`) every
/// descendant of `executor_parents`.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `(component index, pid)` of processes counted on their own.
    pub roots: Vec<(usize, i32)>,
    /// Processes whose descendants are executors (the hosts: dispatcher or workers, or a
    /// reference target's driver).
    pub executor_parents: Vec<i32>,
}

pub const CLIENT: usize = 0;
pub const GATEWAY: usize = 1;
pub const DISPATCHER: usize = 2;
pub const REDIS: usize = 3;
pub const WORKERS: usize = 4;
pub const EXECUTORS: usize = 5;

impl Probe {
    /// Cumulative CPU seconds of each component now. Processes that exited are not counted,
    /// so take the difference of two samples over a span in which none did.
    #[must_use]
    pub fn sample(&self) -> PerComponent {
        let table = processes();
        let mut out = [0.0; 6];
        for &(component, pid) in &self.roots {
            if let Some(p) = table.get(&pid) {
                out[component] += p.seconds;
            }
        }
        // Descendants, level by level (a process's parent is seen before it is counted).
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (&pid, p) in &table {
            children.entry(p.ppid).or_default().push(pid);
        }
        // A pid of 0 (unknown) would make every process on the machine a descendant.
        let mut stack: Vec<i32> = self
            .executor_parents
            .iter()
            .copied()
            .filter(|pid| *pid > 0)
            .collect();
        while let Some(parent) = stack.pop() {
            for &child in children.get(&parent).into_iter().flatten() {
                out[EXECUTORS] += table[&child].seconds;
                stack.push(child);
            }
        }
        out
    }
}

/// `after - before` per component, in microseconds per task.
#[must_use]
pub fn per_task_us(before: &PerComponent, after: &PerComponent, tasks: u64) -> PerComponent {
    let mut out = [0.0; 6];
    if tasks == 0 {
        return out;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = (after[i] - before[i]).max(0.0) * 1e6 / tasks as f64;
    }
    out
}

struct Process {
    ppid: i32,
    seconds: f64,
}

/// Every process's parent and CPU seconds, from `/proc/<pid>/stat`.
fn processes() -> HashMap<i32, Process> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(mut process) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat, ticks))
        {
            if let Some(ns) = run_time_ns(pid) {
                process.seconds = ns as f64 / 1e9;
            }
            out.insert(pid, process);
        }
    }
    out
}

/// Nanoseconds the process has run, all its threads together, those that exited included:
/// its CPU-time clock (`clock_getcpuclockid`), far finer than the clock ticks of `stat`, which
/// would round a short repetition's share of a process to 0 or 10 ms.
fn run_time_ns(pid: i32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: both calls only write the out-parameter they are given.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(u64::try_from(now.tv_sec).ok()? * 1_000_000_000 + u64::try_from(now.tv_nsec).ok()?)
}

/// Parses `ppid`, `utime` and `stime` out of a stat line; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn parse_stat(stat: &str, ticks_per_second: f64) -> Option<Process> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15), 1-based in proc(5).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Process {
        ppid,
        seconds: (utime + stime) as f64 / ticks_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "1234 (py (x) y) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        let p = parse_stat(line, 100.0).unwrap();
        assert_eq!(p.ppid, 77);
        assert!((p.seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_child_is_counted_as_an_executor() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let probe = Probe {
            roots: vec![(CLIENT, std::process::id() as i32)],
            executor_parents: vec![std::process::id() as i32],
        };
        let before = probe.sample();
        // Sample while the child still runs (an exited child is no longer counted).
        let mut during = before;
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            during = probe.sample();
            if during[EXECUTORS] > before[EXECUTORS] + 0.05 {
                break;
            }
        }
        child.wait().unwrap();
        assert!(
            during[EXECUTORS] > before[EXECUTORS],
            "{before:?} {during:?}"
        );
        let per_task = per_task_us(&before, &during, 10);
        assert!(per_task[EXECUTORS] > 0.0);
        assert_eq!(per_task_us(&before, &during, 0), [0.0; 6]);
    }
}
