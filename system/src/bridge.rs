//! ZeroMQ sockets driven on the async runtime, talking to async code through channels.
//!
//! libzmq sockets must not be shared between threads. Each bridge moves its sockets into one
//! task of the runtime that waits on their signalling descriptors (`ZMQ_FD`, registered with
//! the reactor) and on a channel of messages to send; inbound messages go out on a channel.
//! Nothing sleeps or spins, and no message crosses a thread of ours: a thread of its own per
//! bridge (as this was first) cost two wake-ups per message each way, more CPU per task than
//! the rest of a remote dispatcher's work.
//!
//! `ZMQ_FD` is edge-triggered and says only that the socket's state may have changed: after
//! every wake-up, and after every send (which may take the signal), the task reads what
//! `ZMQ_EVENTS` says is waiting before it waits again.

use std::future::poll_fn;
use std::os::fd::{AsRawFd, RawFd};
use std::task::Poll;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
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

/// The async side of a bridge. Dropping it ends the task, which closes the sockets the next
/// time the runtime runs it (closing them discards what they have not sent yet, as it did
/// with a thread of their own: they linger for nothing).
pub struct Bridge {
    outbox: mpsc::UnboundedSender<(usize, Vec<Vec<u8>>)>,
}

impl Bridge {
    /// Moves `sockets` into a new task of the current runtime (so it must be called within
    /// one); everything they receive goes to `inbox`.
    pub fn spawn(
        sockets: Vec<zmq::Socket>,
        inbox: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Self, zmq::Error> {
        // On an error below, `signals` (a local) is dropped before `sockets` (a parameter):
        // each descriptor is deregistered while its socket is still open.
        let mut signals = Vec::with_capacity(sockets.len());
        for socket in &sockets {
            // Closing must not wait for unsent messages: the peer may be gone for good.
            socket.set_linger(0)?;
            let signal = Signal(socket.get_fd()?);
            // SAFETY: the descriptor is the socket's, open as long as the socket is, and the
            // socket outlives it (`Sockets` drops the signals first).
            let watch = unsafe { AsyncFd::register_with_interest(signal, Interest::READABLE) }
                .map_err(|e| {
                    let (_, e) = e.into_parts();
                    zmq::Error::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL))
                })?;
            signals.push(watch);
        }
        let (outbox, outgoing) = mpsc::unbounded_channel();
        tokio::spawn(run(Sockets { signals, sockets }, outgoing, inbox));
        Ok(Self { outbox })
    }

    /// Queues `frames` for sending on socket `socket`. Never blocks.
    pub fn send(&self, socket: usize, frames: Vec<Vec<u8>>) {
        // Fails only once the task has ended, when nothing can be sent any more.
        let _ = self.outbox.send((socket, frames));
    }
}

/// A socket's signalling descriptor (`ZMQ_FD`), which the socket owns.
struct Signal(RawFd);

impl AsRawFd for Signal {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A bridge's sockets and their registered descriptors.
struct Sockets {
    /// Declared first, so dropped first: each is deregistered while its socket is open.
    signals: Vec<AsyncFd<Signal>>,
    sockets: Vec<zmq::Socket>,
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

async fn run(
    sockets: Sockets,
    mut outgoing: mpsc::UnboundedReceiver<(usize, Vec<Vec<u8>>)>,
    inbox: mpsc::UnboundedSender<Inbound>,
) {
    loop {
        let mut more = false;
        for (index, socket) in sockets.sockets.iter().enumerate() {
            match deliver(index, socket, &inbox) {
                Delivered::All => {}
                Delivered::Some => more = true,
                Delivered::NobodyListens => return,
            }
        }
        if more {
            // A socket still has messages, which no new signal will announce: let the rest of
            // the runtime (the dispatcher's core, its timers) run, then take them.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            biased;
            next = outgoing.recv() => {
                let Some((socket, frames)) = next else {
                    return;
                };
                send(&sockets.sockets, socket, frames, &inbox);
                while let Ok((socket, frames)) = outgoing.try_recv() {
                    send(&sockets.sockets, socket, frames, &inbox);
                }
            }
            ready = signalled(&sockets.signals) => {
                if let Err(e) = ready {
                    tracing::error!(error = %e, "cannot wait on a zmq socket; bridge stops");
                    return;
                }
            }
        }
    }
}

/// Messages passed on per socket before the task yields to the rest of the runtime.
const DELIVER_AT_ONCE: usize = 256;

/// What [`deliver`] did.
enum Delivered {
    /// Every message waiting, until `ZMQ_EVENTS` said none was left.
    All,
    /// [`DELIVER_AT_ONCE`] of them; more are waiting.
    Some,
    /// The inbox is closed: nobody listens any more.
    NobodyListens,
}

/// Passes on the messages `socket` has waiting, up to [`DELIVER_AT_ONCE`]. Interrupted calls
/// are retried: the signal that announced the messages is spent, and no other would come.
fn deliver(
    index: usize,
    socket: &zmq::Socket,
    inbox: &mpsc::UnboundedSender<Inbound>,
) -> Delivered {
    for _ in 0..DELIVER_AT_ONCE {
        match socket.get_events() {
            Ok(events) if events.contains(zmq::POLLIN) => {}
            Ok(_) => return Delivered::All,
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a zmq socket's events");
                return Delivered::All;
            }
        }
        let (frames, peer) = match recv_with_peer(socket) {
            Ok(message) => message,
            Err(zmq::Error::EINTR | zmq::Error::EAGAIN) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot receive from a zmq socket");
                return Delivered::All;
            }
        };
        let message = Inbound::Message {
            socket: index,
            frames,
            peer,
        };
        if inbox.send(message).is_err() {
            return Delivered::NobodyListens;
        }
    }
    Delivered::Some
}

fn send(
    sockets: &[zmq::Socket],
    socket: usize,
    frames: Vec<Vec<u8>>,
    inbox: &mpsc::UnboundedSender<Inbound>,
) {
    let Some(target) = sockets.get(socket) else {
        return;
    };
    if let Err(error) = target.send_multipart(frames.iter().map(Vec::as_slice), zmq::DONTWAIT) {
        let _ = inbox.send(Inbound::SendFailed {
            socket,
            frames,
            error,
        });
    }
}

/// Waits until one of the sockets' descriptors signals, and consumes the signal (the caller
/// then looks at what the socket has).
async fn signalled(signals: &[AsyncFd<Signal>]) -> std::io::Result<()> {
    poll_fn(|cx| {
        for watch in signals {
            if let Poll::Ready(ready) = watch.poll_read_ready(cx) {
                ready?.clear_ready();
                return Poll::Ready(Ok(()));
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A bridged ROUTER bound on a free loopback port, and its endpoint.
    fn router(ctx: &zmq::Context) -> (Bridge, mpsc::UnboundedReceiver<Inbound>, String) {
        let socket = ctx.socket(zmq::ROUTER).unwrap();
        socket.set_router_mandatory(true).unwrap();
        socket.set_sndhwm(0).unwrap();
        socket.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = socket.get_last_endpoint().unwrap().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        (Bridge::spawn(vec![socket], tx).unwrap(), rx, endpoint)
    }

    async fn next(inbox: &mut mpsc::UnboundedReceiver<Inbound>) -> Inbound {
        tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("a message within 10 s")
            .expect("the bridge is running")
    }

    fn frames(event: Inbound) -> Vec<Vec<u8>> {
        match event {
            Inbound::Message { frames, .. } => frames,
            Inbound::SendFailed { error, .. } => panic!("send failed: {error}"),
        }
    }

    #[tokio::test]
    async fn messages_flow_both_ways_in_order_under_load() {
        let ctx = zmq::Context::new();
        let (server, mut server_inbox, endpoint) = router(&ctx);
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        // What is under test is the bridge, not a high-water mark dropping a burst.
        dealer.set_sndhwm(0).unwrap();
        dealer.connect(&endpoint).unwrap();
        let (tx, mut client_inbox) = mpsc::unbounded_channel();
        let client = Bridge::spawn(vec![dealer], tx).unwrap();

        const N: u32 = 20_000;
        // Requests go out while answers come back, so sends and the descriptor's signals
        // interleave on both sides.
        for i in 0..N {
            client.send(0, vec![i.to_be_bytes().to_vec()]);
        }
        for i in 0..N {
            let [identity, body] = <[Vec<u8>; 2]>::try_from(frames(next(&mut server_inbox).await))
                .expect("identity and body");
            assert_eq!(body, i.to_be_bytes());
            server.send(0, vec![identity, body]);
        }
        for i in 0..N {
            assert_eq!(frames(next(&mut client_inbox).await), [i.to_be_bytes()]);
        }
    }

    #[tokio::test]
    async fn a_send_to_an_unknown_peer_is_reported() {
        let ctx = zmq::Context::new();
        let (server, mut inbox, _) = router(&ctx);
        server.send(0, vec![b"nobody".to_vec(), b"hello".to_vec()]);
        match next(&mut inbox).await {
            Inbound::SendFailed { frames, error, .. } => {
                assert_eq!(error, zmq::Error::EHOSTUNREACH);
                assert_eq!(frames[1], b"hello");
            }
            Inbound::Message { .. } => panic!("no peer sent anything"),
        }
    }

    #[tokio::test]
    async fn dropping_the_bridge_ends_its_task() {
        let ctx = zmq::Context::new();
        let (server, mut inbox, _) = router(&ctx);
        drop(server);
        // The task ends, dropping the inbox's sender and the sockets with it.
        let closed = tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await;
        assert!(matches!(closed, Ok(None)), "the bridge's task ended");
    }
}
