//! Readiness: how a process of the platform tells whoever started it that it is ready.
//!
//! It speaks systemd's notification protocol (`sd_notify(3)`): a datagram with `READY=1` and
//! a `STATUS=` line sent to the Unix socket named by `$NOTIFY_SOCKET`, nothing when the
//! variable is unset. So the same signal serves a systemd unit of `Type=notify` and the
//! cluster supervisor ([`crate::cluster`]), which binds one socket per child and never reads
//! log text to decide that a process is up. `redis-server --supervised systemd` speaks it too.
//!
//! The sending side ([`notify`]) and the receiving side ([`ReadyListener`]) live here
//! together, with the statuses ([`Ready`]) both agree on.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

/// The environment variable that names the socket to notify.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// What a platform process reports, as the `STATUS=` of its notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The gateway accepts connections.
    GatewayListening,
    /// The dispatcher reads the queue (in local mode, with its executors up).
    DispatcherRunning,
    /// A worker registered with its dispatcher; sent again after every re-registration.
    WorkerRegistered,
    /// `faas up`: the whole cluster is ready.
    ClusterUp,
}

impl Ready {
    /// The `STATUS=` text.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayListening => "gateway listening",
            Self::DispatcherRunning => "dispatcher running",
            Self::WorkerRegistered => "worker registered",
            Self::ClusterUp => "cluster up",
        }
    }
}

/// Tells the supervisor (if any) that this process is ready. A failure is logged, never
/// fatal: a process that cannot notify still serves.
pub fn notify(ready: Ready) {
    let state = [
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(ready.as_str()),
    ];
    if let Err(e) = sd_notify::notify(&state) {
        tracing::warn!(error = %e, status = ready.as_str(), "cannot notify readiness");
    }
}

/// One notification, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// It carried `READY=1`.
    pub ready: bool,
    /// Its `STATUS=` text, if any.
    pub status: Option<String>,
}

impl Notification {
    /// Parses a datagram: newline-separated `KEY=VALUE` assignments; others are ignored.
    #[must_use]
    pub fn parse(datagram: &[u8]) -> Self {
        let text = String::from_utf8_lossy(datagram);
        let mut notification = Self::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => notification.ready = true,
                Some(("STATUS", status)) => notification.status = Some(status.to_owned()),
                _ => {}
            }
        }
        notification
    }
}

/// The supervisor's end: a datagram socket at a path, removed on drop. Give the path to one
/// child as [`NOTIFY_SOCKET`].
#[derive(Debug)]
pub struct ReadyListener {
    socket: UnixDatagram,
    path: PathBuf,
}

impl ReadyListener {
    /// Binds a socket at `path` (replacing a stale one). Unix socket paths are limited to
    /// about 100 bytes.
    pub fn bind(path: &Path) -> io::Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let socket = UnixDatagram::bind(path)?;
        Ok(Self {
            socket,
            path: path.to_owned(),
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next notification.
    pub async fn recv(&self) -> io::Result<Notification> {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).await?;
        Ok(Notification::parse(&buf[..n]))
    }
}

impl Drop for ReadyListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_parsed_by_key() {
        let n = Notification::parse(b"STATUS=worker registered\nREADY=1\nMAINPID=7\n");
        assert!(n.ready);
        assert_eq!(n.status.as_deref(), Some("worker registered"));
        let loading = Notification::parse(b"STATUS=Redis is loading...\n");
        assert!(!loading.ready);
        assert_eq!(Notification::parse(b"READY=0\n"), Notification::default());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_notifies_the_listener() {
        let dir = std::env::temp_dir().join(format!("faas-ready-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let listener = ReadyListener::bind(&dir.join("n.sock")).expect("bind");
        // A real child process, as the supervisor would start one: systemd-notify's protocol
        // from the shell's point of view is one datagram, sent here by Python.
        let script = "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
                      s.sendto(b'READY=1\\nSTATUS=gateway listening\\n', os.environ['NOTIFY_SOCKET'])";
        let status = tokio::process::Command::new("python3")
            .args(["-c", script])
            .env(NOTIFY_SOCKET, listener.path())
            .status()
            .await
            .expect("python3");
        assert!(status.success());
        let n = listener.recv().await.expect("recv");
        assert!(n.ready);
        assert_eq!(n.status.as_deref(), Some(Ready::GatewayListening.as_str()));
        let path = listener.path().to_owned();
        drop(listener);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
