//! Stopping a cluster in reverse start order, each group with SIGTERM and one deadline for
//! the whole group before SIGKILL.

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::Instant;

use super::{Cluster, Member};

/// How long each part may take to stop after SIGTERM before it is killed.
const WORKER_STOP: Duration = Duration::from_secs(10);
const DISPATCHER_STOP: Duration = Duration::from_secs(10);
/// The gateway lets requests in progress (long polls) finish for up to 10 s.
const GATEWAY_STOP: Duration = Duration::from_secs(15);
const REDIS_STOP: Duration = Duration::from_secs(5);
/// After SIGKILL, how long to wait for the kernel to report the exits.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything stopped in order, each by itself after SIGTERM.
    Clean,
    /// Stopped in order, but some member did not stop in time and was killed.
    Forced,
    /// Aborted: everything left was killed at once.
    Killed,
}

impl Cluster {
    /// Stops everything, last started first: each group (workers, dispatchers, the gateway,
    /// Redis) gets SIGTERM, then SIGKILL after its timeout. If `abort` resolves meanwhile,
    /// everything left is killed at once.
    pub async fn stop(&mut self, abort: impl Future<Output = ()>) -> Stopped {
        let groups: [(Vec<&Member>, Duration); 4] = [
            (self.workers.iter().collect(), WORKER_STOP),
            (self.dispatchers.iter().collect(), DISPATCHER_STOP),
            (self.gateway.iter().collect(), GATEWAY_STOP),
            (self.redis.iter().collect(), REDIS_STOP),
        ];
        let in_order = async {
            let mut forced = false;
            for (group, timeout) in &groups {
                forced |= stop_group(group, *timeout).await;
            }
            forced
        };
        tokio::select! {
            forced = in_order => {
                tracing::info!("all stopped");
                if forced { Stopped::Forced } else { Stopped::Clean }
            }
            () = abort => {
                tracing::warn!("killing everything");
                let all = groups.iter().flat_map(|(group, _)| group);
                for member in all.clone() {
                    member.expect_exit();
                    member.signal(libc::SIGKILL);
                }
                for member in all {
                    let _ = tokio::time::timeout(KILL_WAIT, member.wait()).await;
                }
                Stopped::Killed
            }
        }
    }
}

/// Stops one group together: SIGTERM to all, then all waited for until one deadline
/// `timeout` away, after which those left are killed. Whether any had to be.
async fn stop_group(group: &[&Member], timeout: Duration) -> bool {
    let running: Vec<&str> = group
        .iter()
        .filter(|m| m.exited().is_none())
        .map(|m| m.name())
        .collect();
    if running.is_empty() {
        return false;
    }
    tracing::info!("stopping {}", running.join(", "));
    for member in group {
        member.ask_to_stop();
    }
    let deadline = Instant::now() + timeout;
    let mut forced = false;
    for member in group {
        let already = member.exited();
        let left = deadline.saturating_duration_since(Instant::now());
        let (status, killed) = member.wait_or_kill(left).await;
        forced |= killed;
        if already.is_none() && !stopped_well(status) {
            tracing::warn!("{} exited ({status}) while stopping", member.name());
        }
    }
    forced
}

/// Whether a child asked to stop ended as expected: success, or the SIGTERM itself.
fn stopped_well(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.success() || status.signal() == Some(libc::SIGTERM)
}
