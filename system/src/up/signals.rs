//! SIGINT, SIGTERM and SIGHUP (the terminal went away) as a stream: the first asks for an
//! orderly stop, a second one for killing everything at once.
//!
//! `faas::shutdown::on_signal` does not fit here: on the second signal it exits the process
//! at once, which would leave the private Redis directory behind and the children to
//! `PR_SET_PDEATHSIG` alone; `faas up` kills and reaps them itself instead.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop requests `faas up` listens to.
#[derive(Debug)]
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Starts listening; from now on these signals no longer end the process by themselves.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}
