//! The faults a test injects into a running cluster (kill, terminate, pause, resume,
//! restart) and what it waits on afterwards (readiness counts, exits).

use std::process::ExitStatus;
use std::time::Duration;

use tokio::sync::mpsc;

use super::start::GATEWAY_READY;
use super::{Cluster, ClusterError, Exit, MemberId};

impl Cluster {
    /// SIGKILL; the exit status.
    pub async fn kill(&self, id: MemberId) -> Result<ExitStatus, ClusterError> {
        Ok(self.member(id)?.kill().await)
    }

    /// SIGTERM (and SIGCONT, should it be paused), an exit the supervisor expects; its exit
    /// status if it exits within `timeout`, `None` if it still runs.
    pub async fn terminate(
        &self,
        id: MemberId,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, ClusterError> {
        self.member(id)?.ask_to_stop();
        self.wait_exit(id, timeout).await
    }

    /// SIGSTOP: the process is frozen, its sockets stay open.
    pub fn pause(&self, id: MemberId) -> Result<(), ClusterError> {
        self.signal(id, libc::SIGSTOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self, id: MemberId) -> Result<(), ClusterError> {
        self.signal(id, libc::SIGCONT)
    }

    /// Sends `signal`, unless the member has exited.
    pub fn signal(&self, id: MemberId, signal: i32) -> Result<(), ClusterError> {
        self.member(id)?.signal(signal);
        Ok(())
    }

    /// Starts the member again from the same recipe (killing it first if it still runs),
    /// and waits until it is ready. A private Redis comes back with its data when its
    /// persistence keeps any.
    pub async fn restart(&mut self, id: MemberId) -> Result<(), ClusterError> {
        let old = self.member(id)?;
        old.kill().await;
        let recipe = old.recipe().clone();
        let fresh = self.spawn(id, recipe)?;
        *self.member_mut(id)? = fresh;
        let timeout = match id {
            MemberId::Redis => return self.wait_redis_ready().await,
            MemberId::Gateway => GATEWAY_READY,
            MemberId::Dispatcher(_) | MemberId::Worker(_) => self.spec.executors_ready,
        };
        self.wait_ready(id, 1, timeout).await
    }

    /// Waits until the member has said it is ready `count` times in all (a worker says so
    /// again each time it registers anew, e.g. after its dispatcher restarted).
    pub async fn wait_ready(
        &self,
        id: MemberId,
        count: u32,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        Ok(self.member(id)?.wait_ready(count, timeout).await?)
    }

    /// Waits up to `timeout` for the member to exit by itself; its status if it did.
    pub async fn wait_exit(
        &self,
        id: MemberId,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, ClusterError> {
        let member = self.member(id)?;
        Ok(tokio::time::timeout(timeout, member.wait()).await.ok())
    }

    /// The exits of this cluster's members, for one watcher (`None` once taken): watched
    /// apart from the cluster, so they can be awaited while it starts more members.
    pub fn take_exits(&mut self) -> Option<Exits> {
        self.exits.take().map(Exits)
    }
}

/// The members' exits, as taken from [`Cluster::take_exits`].
#[derive(Debug)]
pub struct Exits(mpsc::UnboundedReceiver<Exit>);

impl Exits {
    /// The next exit, expected or not; `None` once the cluster is gone and all were read.
    pub async fn next(&mut self) -> Option<Exit> {
        self.0.recv().await
    }

    /// The next exit nobody asked for (a crash, a process that gave up). Pending forever
    /// once the cluster is gone.
    pub async fn next_unexpected(&mut self) -> Exit {
        while let Some(exit) = self.0.recv().await {
            if !exit.expected {
                return exit;
            }
        }
        std::future::pending().await
    }
}
