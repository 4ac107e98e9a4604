//! ZeroMQ sockets on a thread of their own, talking to async code through channels.
//!
//! libzmq sockets must not be shared between threads, and their blocking calls do not belong
//! on async threads. Each bridge owns its sockets on one OS thread that waits in `zmq::poll` on
//! them and on an inproc PAIR socket; async code sends by writing to the PAIR (which wakes the
//! poll at once) and receives from a tokio channel. Nothing sleeps or spins.

use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// Something that happened on one of the bridged sockets.
#[derive(Debug)]
pub enum Inbound {
    /// A multipart message arrived on socket `socket`, from the peer whose CURVE key (Z85)
    /// is `peer` when the socket is a CURVE server.
    Message {
        socket: usize,
        frames: Vec<Vec<u8>>,
        peer: Option<String>,
    },
    /// A send on socket `socket` failed (for a ROUTER: the peer is gone).
    SendFailed {
        socket: usize,
        frames: Vec<Vec<u8>>,
        error: zmq::Error,
    },
}

/// Where a mode's messages go: a [`Bridge`] in production; the mode tests record them.
pub trait Outbox {
    /// Queues `frames` for sending on socket `socket`.
    fn send(&self, socket: usize, frames: Vec<Vec<u8>>);
}

impl Outbox for Bridge {
    fn send(&self, socket: usize, frames: Vec<Vec<u8>>) {
        Bridge::send(self, socket, frames);
    }
}

/// The async side of a bridge. Dropping it stops the socket thread and closes the sockets.
pub struct Bridge {
    control: Mutex<zmq::Socket>,
    thread: Option<JoinHandle<()>>,
}

/// The first frame of a control message that stops the thread.
const STOP: &[u8] = b"stop";

impl Bridge {
    /// Moves `sockets` onto a new thread; everything they receive goes to `inbox`.
    pub fn spawn(
        ctx: &zmq::Context,
        sockets: Vec<zmq::Socket>,
        inbox: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Self, zmq::Error> {
        let endpoint = format!("inproc://bridge-{}", uuid::Uuid::new_v4());
        let thread_end = ctx.socket(zmq::PAIR)?;
        thread_end.set_rcvhwm(0)?;
        thread_end.bind(&endpoint)?;
        let control = ctx.socket(zmq::PAIR)?;
        control.set_sndhwm(0)?;
        control.connect(&endpoint)?;
        let thread = std::thread::Builder::new()
            .name("zmq-bridge".into())
            .spawn(move || run(&thread_end, &sockets, &inbox))
            .map_err(|_| zmq::Error::EMFILE)?;
        Ok(Self {
            control: Mutex::new(control),
            thread: Some(thread),
        })
    }

    /// Queues `frames` for sending on socket `socket`. Never blocks for long: the control pipe
    /// has no high-water mark.
    pub fn send(&self, socket: usize, frames: Vec<Vec<u8>>) {
        let index = u8::try_from(socket).expect("fewer than 256 sockets");
        let control = self.control.lock().expect("bridge control lock");
        let mut parts: Vec<Vec<u8>> = Vec::with_capacity(frames.len() + 1);
        parts.push(vec![index]);
        parts.extend(frames);
        if let Err(e) = control.send_multipart(parts, 0) {
            tracing::error!(error = %e, "zmq bridge control send failed");
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(control) = self.control.lock() {
            let _ = control.send(STOP, 0);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One waiting multipart message and the authenticated key of its sender (`User-Id`, set by
/// the ZAP handler), without blocking.
fn recv_with_peer(socket: &zmq::Socket) -> zmq::Result<(Vec<Vec<u8>>, Option<String>)> {
    let mut frames = Vec::new();
    let mut peer = None;
    let mut flags = zmq::DONTWAIT;
    loop {
        let mut part = socket.recv_msg(flags)?;
        // The rest of a multipart message has arrived with its first part.
        flags = 0;
        if peer.is_none() {
            peer = part.gets("User-Id").map(str::to_owned);
        }
        frames.push(part.to_vec());
        if !part.get_more() {
            return Ok((frames, peer));
        }
    }
}

fn run(control: &zmq::Socket, sockets: &[zmq::Socket], inbox: &mpsc::UnboundedSender<Inbound>) {
    for socket in sockets {
        // Closing must not wait for unsent messages: the peer may be gone for good.
        let _ = socket.set_linger(0);
    }
    loop {
        let mut items: Vec<zmq::PollItem<'_>> = sockets
            .iter()
            .map(|s| s.as_poll_item(zmq::POLLIN))
            .collect();
        items.push(control.as_poll_item(zmq::POLLIN));
        if let Err(e) = zmq::poll(&mut items, -1) {
            if e == zmq::Error::EINTR {
                continue;
            }
            tracing::error!(error = %e, "zmq poll failed; bridge stops");
            return;
        }
        let ready: Vec<bool> = items.iter().map(zmq::PollItem::is_readable).collect();
        drop(items);
        for (socket, _) in ready
            .iter()
            .enumerate()
            .filter(|(i, r)| **r && *i < sockets.len())
        {
            // Drain everything waiting, so one busy peer does not starve the others for long.
            while let Ok((frames, peer)) = recv_with_peer(&sockets[socket]) {
                let message = Inbound::Message {
                    socket,
                    frames,
                    peer,
                };
                if inbox.send(message).is_err() {
                    return;
                }
            }
        }
        if ready[sockets.len()] {
            while let Ok(mut parts) = control.recv_multipart(zmq::DONTWAIT) {
                if parts.first().is_some_and(|p| p == STOP) {
                    return;
                }
                let socket = usize::from(parts.remove(0)[0]);
                let Some(target) = sockets.get(socket) else {
                    continue;
                };
                if let Err(error) =
                    target.send_multipart(parts.iter().map(Vec::as_slice), zmq::DONTWAIT)
                {
                    let _ = inbox.send(Inbound::SendFailed {
                        socket,
                        frames: parts,
                        error,
                    });
                }
            }
        }
    }
}
