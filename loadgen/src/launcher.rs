//! The system under test for one topology, brought up by the platform's cluster supervisor
//! ([`faas::cluster`]): a private redis-server unless the experiment names one, the gateway,
//! the dispatcher and its workers, each ready before the next, their logs in the point's
//! log directory. Stopped in order between topologies, and killed when dropped (interrupt
//! included).

use std::path::Path;

use anyhow::Context;
use faas::cluster::{
    Binaries, Cluster, ClusterSpec, MemberId, Output, Persistence, RedisSpec, Stopped,
};

use crate::cpu::{self, Probe};
use crate::experiment::{Mode, Topology};

/// The children's log filter: the platform's own info lines, warnings from the rest.
const RUST_LOG: &str = "warn,faas=info";

/// A running system.
pub struct System {
    cluster: Cluster,
    /// Whether the executor hosts still wait for [`System::start_executors`].
    held: bool,
    /// Worker processes (pull and push).
    workers: usize,
}

/// Peak resident memory of the system's own processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub gateway_peak_mb: f64,
    pub dispatcher_peak_mb: f64,
}

/// Starts everything `topology` needs (the executor hosts later, if it says so), with the
/// binaries in `binaries` (by default those next to loadgen's own).
pub async fn launch(
    topology: &Topology,
    redis_url: Option<&str>,
    log_dir: &Path,
    binaries: Option<&Path>,
) -> anyhow::Result<System> {
    let binaries = match binaries {
        Some(dir) => Binaries::in_dir(dir.to_owned()),
        None => Binaries::next_to_self()?,
    };
    let python = tokio::task::spawn_blocking(|| faas::executor::python_env::resolve(None))
        .await
        .context("resolving the executors' Python panicked")??
        .python;
    let executors = match topology.mode {
        Mode::Local => vec![topology.executors],
        Mode::Pull | Mode::Push => topology.worker_sizes(),
    };
    let spec = ClusterSpec {
        // What a deployment would run: an append-only file, fsynced every second.
        redis: redis_url.map_or(RedisSpec::Private(Persistence::AppendOnly), |url| {
            RedisSpec::External(url.to_owned())
        }),
        dispatcher_args: topology.dispatcher_args.clone(),
        worker_args: topology.worker_args.clone(),
        executors,
        rust_log: RUST_LOG.to_owned(),
        output: Output::Files(log_dir.to_owned()),
        ..ClusterSpec::new(binaries, topology.mode, python)
    };
    let mut cluster = Cluster::new(spec)?;
    cluster.start_control_plane().await?;
    let mut system = System {
        cluster,
        held: true,
        workers: match topology.mode {
            Mode::Local => 0,
            Mode::Pull | Mode::Push => topology.worker_sizes().len(),
        },
    };
    if !topology.start_after_submission {
        system.start_executors().await?;
    }
    Ok(system)
}

impl System {
    /// The gateway's base URL.
    #[must_use]
    pub fn url(&self) -> String {
        self.cluster.gateway_url()
    }

    /// Starts the executor hosts if they were held back.
    pub async fn start_executors(&mut self) -> anyhow::Result<()> {
        if std::mem::take(&mut self.held) {
            self.cluster.start_executor_hosts().await?;
        }
        Ok(())
    }

    /// Peak resident memory (VmHWM) so far of the gateway and the dispatcher, in MB.
    #[must_use]
    pub fn memory(&self) -> Memory {
        let peak = |id| {
            self.cluster
                .member(id)
                .ok()
                .and_then(|m| peak_rss_kb(m.pid()))
                .map_or(0.0, |kb| kb as f64 / 1024.0)
        };
        Memory {
            gateway_peak_mb: peak(MemberId::Gateway),
            dispatcher_peak_mb: peak(MemberId::Dispatcher(0)),
        }
    }

    /// What to sample for the CPU time of each component: loadgen itself as the client, the
    /// system's processes, and the executors under the dispatcher or the workers.
    #[must_use]
    pub fn cpu_probe(&self) -> Probe {
        let pid = |id| self.cluster.member(id).ok().map(|m| m.pid());
        let mut probe = Probe {
            roots: vec![(cpu::CLIENT, i32::try_from(std::process::id()).unwrap_or(0))],
            executor_parents: Vec::new(),
        };
        let mut add = |component, id| {
            if let Some(pid) = pid(id) {
                probe.roots.push((component, pid));
                if component == cpu::DISPATCHER || component == cpu::WORKERS {
                    probe.executor_parents.push(pid);
                }
            }
        };
        add(cpu::GATEWAY, MemberId::Gateway);
        add(cpu::DISPATCHER, MemberId::Dispatcher(0));
        add(cpu::REDIS, MemberId::Redis);
        for i in 0..self.workers {
            add(cpu::WORKERS, MemberId::Worker(i));
        }
        probe
    }

    /// The platform's own processes, each with its [`crate::instructions::COUNTED`] index.
    #[must_use]
    pub fn counted(&self) -> Vec<(usize, i32)> {
        let ids = [(0, MemberId::Gateway), (1, MemberId::Dispatcher(0))]
            .into_iter()
            .chain((0..self.workers).map(|i| (2, MemberId::Worker(i))));
        ids.filter_map(|(component, id)| self.cluster.member(id).ok().map(|m| (component, m.pid())))
            .collect()
    }

    /// Stops everything in order, workers first.
    pub async fn stop(mut self) -> Stopped {
        self.cluster.stop(std::future::pending()).await
    }
}

/// A process's peak resident set size in kB, from `/proc/<pid>/status`.
fn peak_rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
