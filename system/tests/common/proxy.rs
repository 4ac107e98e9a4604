//! A Toxiproxy-style TCP proxy on loopback, for the link between workers and a dispatcher:
//! it delays every byte by a latency with jitter (never reordering them), and can reset every
//! connection through it at once, mid-message. It serves until dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect (on 127.0.0.1).
    pub port: u16,
    reset: Arc<Notify>,
    /// Connections reset so far.
    resets: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

/// How a link misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Toxics {
    /// Added to every chunk, each way.
    pub latency: Duration,
    /// Up to this much more, at random per chunk (order is kept).
    pub jitter: Duration,
}

impl Proxy {
    /// A proxy to `127.0.0.1:target` with `toxics`.
    pub async fn start(target: u16, toxics: Toxics) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a proxy port");
        let port = listener.local_addr().expect("its address").port();
        let reset = Arc::new(Notify::new());
        let resets = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn(serve(
            listener,
            target,
            toxics,
            reset.clone(),
            resets.clone(),
        ));
        Self {
            port,
            reset,
            resets,
            server,
        }
    }

    /// Resets (RST) every connection open through the proxy now; new ones are served.
    pub fn reset_all(&self) {
        self.reset.notify_waiters();
    }

    /// How many connections were reset so far.
    pub fn resets(&self) -> usize {
        self.resets.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    target: u16,
    toxics: Toxics,
    reset: Arc<Notify>,
    resets: Arc<AtomicUsize>,
) {
    let mut links = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
            continue;
        };
        for stream in [&client, &server] {
            // Dropping a stream then sends RST, not FIN: a reset is just dropping both. (A
            // zero linger never blocks, which is why tokio deprecates the call in general.)
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
        }
        let (reset, resets) = (reset.clone(), resets.clone());
        links.spawn(async move {
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                () = reset.notified() => {
                    resets.fetch_add(1, Ordering::Relaxed);
                }
                () = pump(client_read, server_write, toxics) => {}
                () = pump(server_read, client_write, toxics) => {}
            }
        });
    }
}

/// Copies `from` to `to`, each chunk `toxics` late; returns when either side closes.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin + Send + 'static,
    toxics: Toxics,
) {
    let (chunks, mut delayed) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let jitter_ns = u64::try_from(toxics.jitter.as_nanos()).unwrap_or(u64::MAX);
            let extra = if jitter_ns == 0 {
                Duration::ZERO
            } else {
                let random = uuid::Uuid::new_v4().as_u128() as u64;
                Duration::from_nanos(random % jitter_ns)
            };
            // Never before the chunk ahead of it: delays do not reorder bytes.
            last = last.max(Instant::now() + toxics.latency + extra);
            if chunks.send((last, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}
