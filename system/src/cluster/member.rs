//! One supervised child process: started from a [`Recipe`] in its own process group (so a
//! terminal's Ctrl-C reaches only the supervisor, which stops the children in order) with
//! `PR_SET_PDEATHSIG` (so it dies with the supervisor even if that is killed outright); its
//! output relayed, its readiness notifications counted ([`crate::readiness`]), its exit
//! watched; stopped with SIGTERM, then SIGKILL; killed on drop. Signals go through a pidfd,
//! so one sent after the child was reaped fails instead of reaching a process that reused
//! its pid.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits: children must be
//! spawned from a thread that lives for the whole run (a runtime's worker or the main
//! thread), never from a blocking pool, whose idle threads exit after 10 s.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::output::{Sink, relay};
use crate::readiness::{NOTIFY_SOCKET, ReadyListener};

/// How to start a child: everything needed to start it again after a kill.
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set in its environment.
    pub env: Vec<(String, OsString)>,
    /// Removed from its environment (secrets it does not need).
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
}

impl Recipe {
    #[must_use]
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// The same command started under `wrapper` (its program and leading arguments), e.g.
    /// `ip netns exec NAME`; unchanged for an empty wrapper.
    #[must_use]
    pub fn under(mut self, wrapper: &[OsString]) -> Self {
        let Some((program, leading)) = wrapper.split_first() else {
            return self;
        };
        let mut args = leading.to_vec();
        args.push(std::mem::take(&mut self.program).into_os_string());
        args.append(&mut self.args);
        self.program = PathBuf::from(program);
        self.args = args;
        self
    }

    #[must_use]
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_remove.push(key.to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// A child that exited, as reported to the supervisor.
#[derive(Debug, Clone)]
pub struct Exit {
    pub name: String,
    pub status: ExitStatus,
    /// The supervisor had asked it to stop (or killed it on purpose).
    pub expected: bool,
}

/// Why a child did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("{name} exited ({status}) before it was ready")]
    Exited { name: String, status: ExitStatus },
    #[error("{name} was not ready within {} s", timeout.as_secs())]
    Timeout { name: String, timeout: Duration },
}

/// A running (or exited, not yet forgotten) child.
#[derive(Debug)]
pub struct Member {
    name: String,
    recipe: Recipe,
    pid: i32,
    /// Names this very process even after it was reaped (see the module comment).
    pidfd: OwnedFd,
    status: watch::Receiver<Option<ExitStatus>>,
    /// How many `READY=1` notifications it has sent.
    ready: watch::Receiver<u32>,
    /// Set when the supervisor asks it to stop, so its exit is not reported as a failure.
    stopping: Arc<AtomicBool>,
    notifications: JoinHandle<()>,
}

impl Member {
    /// Starts `recipe` as `name`: stdin closed, output (stdout and stderr) into `sink`,
    /// readiness read from a socket at `notify_path`, its exit reported on `exits`. Call it
    /// from a long-lived thread (see the module comment).
    pub fn spawn(
        name: &str,
        recipe: Recipe,
        sink: Sink,
        notify_path: &Path,
        exits: &mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Self> {
        Self::spawn_split(name, recipe, [sink.clone(), sink], notify_path, exits)
    }

    /// [`Self::spawn`] with stdout and stderr into sinks of their own, in that order.
    pub fn spawn_split(
        name: &str,
        recipe: Recipe,
        [out_sink, err_sink]: [Sink; 2],
        notify_path: &Path,
        exits: &mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Self> {
        let listener = ReadyListener::bind(notify_path)?;
        let mut cmd = recipe.command();
        cmd.env(NOTIFY_SOCKET, listener.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        // SAFETY: getpid is async-signal-safe; it is read here, before the fork.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl: then nobody would kill this child.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other(
                        "the supervisor exited while starting a child",
                    ));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| std::io::Error::other("the child has no pid"))?;
        // Not reaped yet (only the waiter task below reaps it), so the pid is still its own.
        let pidfd = pidfd_open(pid)?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(relay(out, out_sink));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(relay(err, err_sink));
        }
        let (ready_tx, ready) = watch::channel(0u32);
        let notifications = tokio::spawn(async move {
            while let Ok(notification) = listener.recv().await {
                if notification.ready {
                    ready_tx.send_modify(|count| *count += 1);
                }
            }
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let (status_tx, status) = watch::channel(None);
        let (exits, label, asked) = (exits.clone(), name.to_owned(), stopping.clone());
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(child = %label, error = %e, "cannot wait for the child");
                    ExitStatus::from_raw(-1)
                }
            };
            // Reported before the status is set: whoever waits on the status (a stop moving on
            // to the next group) then acts after this exit is in the channel, so exits are
            // read in the order they happened, even on another thread.
            let _ = exits.send(Exit {
                name: label,
                status,
                expected: asked.load(Ordering::SeqCst),
            });
            status_tx.send_replace(Some(status));
        });
        tracing::debug!(child = name, pid, "started");
        Ok(Self {
            name: name.to_owned(),
            recipe,
            pid,
            pidfd,
            status,
            ready,
            stopping,
            notifications,
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

    #[must_use]
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Its exit status, if it has exited.
    #[must_use]
    pub fn exited(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// How many times it has said it is ready.
    #[must_use]
    pub fn ready_count(&self) -> u32 {
        *self.ready.borrow()
    }

    /// Waits until it has said it is ready `count` times in all, failing if it exits first
    /// or `timeout` passes.
    pub async fn wait_ready(&self, count: u32, timeout: Duration) -> Result<(), NotReady> {
        let (mut ready, mut status) = (self.ready.clone(), self.status.clone());
        tokio::select! {
            // A child that said it was ready and then exited was ready: look there first.
            biased;
            // The counter's sender lives as long as the socket is read: on error, the exit
            // arm decides.
            Ok(_) = ready.wait_for(|n| *n >= count) => Ok(()),
            Ok(exited) = status.wait_for(Option::is_some) => Err(NotReady::Exited {
                name: self.name.clone(),
                status: exited.unwrap_or_else(|| ExitStatus::from_raw(-1)),
            }),
            () = tokio::time::sleep(timeout) => Err(NotReady::Timeout {
                name: self.name.clone(),
                timeout,
            }),
        }
    }

    /// Waits until it has exited (and been reaped).
    pub async fn wait(&self) -> ExitStatus {
        let mut status = self.status.clone();
        // The waiter drops its sender only after reporting, so this always ends with a status.
        let _ = status.wait_for(Option::is_some).await;
        self.exited().unwrap_or_else(|| ExitStatus::from_raw(-1))
    }

    /// Marks its coming exit as asked for.
    pub fn expect_exit(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Sends `signal`, unless it has exited (then nothing happens).
    pub fn signal(&self, signal: i32) {
        // SAFETY: a pidfd we own; no siginfo, no flags.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if sent != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(child = %self.name, signal, %error, "cannot signal the child");
            }
        }
    }

    /// Asks it to stop: SIGTERM, and SIGCONT so that a paused child gets it too.
    pub fn ask_to_stop(&self) {
        self.expect_exit();
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit status.
    pub async fn stop(&self, timeout: Duration) -> ExitStatus {
        self.ask_to_stop();
        self.wait_or_kill(timeout).await.0
    }

    /// SIGKILL; its exit status.
    pub async fn kill(&self) -> ExitStatus {
        self.expect_exit();
        self.signal(libc::SIGKILL);
        self.wait().await
    }

    /// Waits up to `timeout` for an exit already asked for, then SIGKILL; its exit status,
    /// and whether it had to be killed.
    pub async fn wait_or_kill(&self, timeout: Duration) -> (ExitStatus, bool) {
        if let Ok(status) = tokio::time::timeout(timeout, self.wait()).await {
            return (status, false);
        }
        tracing::warn!(child = %self.name, ?timeout, "did not stop in time; killing it");
        self.signal(libc::SIGKILL);
        (self.wait().await, true)
    }
}

/// A pidfd for `pid`, which must be a child not yet reaped.
fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success it returns a new descriptor that we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Drop for Member {
    /// A member still running when its supervisor goes (a failed test, an error path) is
    /// killed: nothing outlives the cluster that started it. The waiter task reaps it, so
    /// the runtime must outlive the member (otherwise it stays a zombie until this process
    /// exits).
    fn drop(&mut self) {
        self.expect_exit();
        self.signal(libc::SIGKILL);
        self.notifications.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::output::Output;

    fn notify_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("faas-member-{}-{name}.sock", std::process::id()))
    }

    /// A shell child that says it is ready the way our processes do (one datagram to
    /// `$NOTIFY_SOCKET`) after running `setup`, then runs `then`.
    fn notifying_shell(setup: &str, then: &str) -> Recipe {
        let notify = "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
                      s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])";
        Recipe::new("sh").args([
            "-c".to_owned(),
            format!("{setup} python3 -c \"{notify}\"; {then}"),
        ])
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_is_stopped_with_sigterm_and_its_exit_reported() {
        let (tx, mut exits) = mpsc::unbounded_channel();
        let sink = Output::Captured.sink("sleeper", 0).expect("sink");
        let child = Member::spawn(
            "sleeper",
            notifying_shell("", "exec sleep 30"),
            sink,
            &notify_path("sleeper"),
            &tx,
        )
        .expect("spawn sh");
        child
            .wait_ready(1, Duration::from_secs(10))
            .await
            .expect("ready");
        assert!(child.exited().is_none());
        let status = child.stop(Duration::from_secs(5)).await;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let exit = exits.recv().await.expect("exit reported");
        assert_eq!(exit.name, "sleeper");
        assert!(exit.expected);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_ignoring_sigterm_is_killed() {
        let (tx, _exits) = mpsc::unbounded_channel();
        let sink = Output::Captured.sink("stubborn", 0).expect("sink");
        let child = Member::spawn(
            "stubborn",
            notifying_shell("trap '' TERM;", "while :; do sleep 0.1; done"),
            sink,
            &notify_path("stubborn"),
            &tx,
        )
        .expect("spawn sh");
        child
            .wait_ready(1, Duration::from_secs(10))
            .await
            .expect("ready");
        let status = child.stop(Duration::from_millis(300)).await;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_that_exits_before_notifying_is_not_ready() {
        let (tx, mut exits) = mpsc::unbounded_channel();
        let sink = Output::Captured.sink("quitter", 0).expect("sink");
        let child = Member::spawn(
            "quitter",
            Recipe::new("sh").args(["-c", "exit 3"]),
            sink,
            &notify_path("quitter"),
            &tx,
        )
        .expect("spawn sh");
        let err = child
            .wait_ready(1, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, NotReady::Exited { .. }), "{err}");
        let exit = exits.recv().await.expect("exit reported");
        assert!(!exit.expected);
        assert_eq!(exit.status.code(), Some(3));
    }
}
