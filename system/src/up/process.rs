//! One supervised child process: started in its own process group (so a terminal's Ctrl-C
//! reaches only `faas`, which stops the children in order) with `PR_SET_PDEATHSIG` (so it
//! dies with `faas` even if `faas` is killed outright), its output relayed, its exit
//! watched, and stopped with SIGTERM, then SIGKILL.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits: children must be
//! spawned from a thread that lives for the whole run (the `faas` binary uses a
//! current-thread runtime on the main thread), never from a blocking pool.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::logs::{ReadyLine, relay};

/// A child that exited, as reported to the supervisor.
#[derive(Debug, Clone)]
pub struct Exit {
    pub name: String,
    pub status: ExitStatus,
}

/// A running (or exited, not yet forgotten) child.
#[derive(Debug)]
pub struct Child {
    name: String,
    pid: i32,
    status: watch::Receiver<Option<ExitStatus>>,
}

impl Child {
    /// Starts `cmd` as `name`: stdin closed, stdout and stderr relayed behind `prefix`
    /// (watched for `ready`), its exit reported on `exits`. Call it from a long-lived thread
    /// (see the module comment).
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        prefix: &str,
        ready: Option<ReadyLine>,
        exits: &mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Self> {
        // SAFETY: getpid is async-signal-safe; it is read here, before the fork.
        let parent = unsafe { libc::getpid() };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl: then nobody would kill this child.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("faas exited while starting a child"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| std::io::Error::other("the child has no pid"))?;
        let prefix: Arc<str> = Arc::from(prefix);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(relay(out, prefix.clone(), ready.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(relay(err, prefix, ready));
        }
        let (status_tx, status) = watch::channel(None);
        let (exits, label) = (exits.clone(), name.to_owned());
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(child = %label, error = %e, "cannot wait for the child");
                    ExitStatus::from_raw(-1)
                }
            };
            status_tx.send_replace(Some(status));
            let _ = exits.send(Exit {
                name: label,
                status,
            });
        });
        tracing::debug!(child = name, pid, "started");
        Ok(Self {
            name: name.to_owned(),
            pid,
            status,
        })
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its exit status, if it has exited.
    #[must_use]
    pub fn exited(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// Waits until it has exited (and been reaped).
    pub async fn wait(&mut self) -> ExitStatus {
        // The waiter drops its sender only after reporting, so this always ends with a status.
        let _ = self.status.wait_for(Option::is_some).await;
        self.exited().unwrap_or_else(|| ExitStatus::from_raw(-1))
    }

    /// Sends `signal` unless it has exited. Reaping happens on this same thread, in the
    /// waiter task, so the pid cannot be reused between the check and the kill.
    pub fn signal(&self, signal: i32) {
        if self.exited().is_none() {
            // SAFETY: signalling our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid, signal);
            }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit status.
    pub async fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_or_kill(timeout).await
    }

    /// Waits up to `timeout` for an exit already asked for, then SIGKILL.
    pub async fn wait_or_kill(&mut self, timeout: Duration) -> ExitStatus {
        if let Ok(status) = tokio::time::timeout(timeout, self.wait()).await {
            return status;
        }
        tracing::warn!(child = %self.name, ?timeout, "did not stop in time; killing it");
        self.signal(libc::SIGKILL);
        self.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_is_stopped_with_sigterm_and_its_exit_reported() {
        let (tx, mut exits) = mpsc::unbounded_channel();
        let (ready, mut seen) = ReadyLine::new("up");
        let mut child = Child::spawn(
            "sleeper",
            Command::new("sh").args(["-c", "echo up; exec sleep 30"]),
            "sleeper   | ",
            Some(ready),
            &tx,
        )
        .expect("spawn sh");
        seen.wait_for(|s| *s).await.expect("ready line");
        assert!(child.exited().is_none());
        let status = child.stop(Duration::from_secs(5)).await;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let exit = exits.recv().await.expect("exit reported");
        assert_eq!(exit.name, "sleeper");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_ignoring_sigterm_is_killed() {
        let (tx, _exits) = mpsc::unbounded_channel();
        let (ready, mut seen) = ReadyLine::new("trapped");
        let mut child = Child::spawn(
            "stubborn",
            Command::new("sh").args([
                "-c",
                "trap '' TERM; echo trapped; while :; do sleep 0.1; done",
            ]),
            "stubborn  | ",
            Some(ready),
            &tx,
        )
        .expect("spawn sh");
        seen.wait_for(|s| *s).await.expect("ready line");
        let status = child.stop(Duration::from_millis(300)).await;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
