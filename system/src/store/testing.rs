//! Test support: a private redis-server per test (never the machine's own Redis), killed and
//! its directory removed on drop, with handles to drive and inspect it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use futures_util::StreamExt;

use super::{QueueReader, Store, keys};
use crate::task::{FunctionId, TaskId};

/// How long a test waits for an event (a server ready, a message published) before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A redis-server without persistence on a free port, in its own temporary directory.
pub(super) struct TestRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl TestRedis {
    /// Starts a server and returns once it accepts connections. Call it on the test's own
    /// thread: the server is also killed when the thread that started it ends.
    pub(super) fn start() -> Self {
        // A port found free can be taken before the server binds it: then try another.
        for _ in 0..5 {
            if let Some(server) = Self::try_start(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts a server on `port`, or `None` if it exited before it was ready.
    fn try_start(port: u16) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "faas-store-test-redis-{port}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and only sets the child's parent-death signal, so
        // the server goes even if the test process is killed before `Drop` runs.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start redis-server");
        let log = child.stdout.take().expect("redis-server stdout");
        let (ready, is_ready) = mpsc::channel();
        // Reads the server's log to its end, so the pipe never fills, and says when the
        // server is ready; the sender drops (disconnecting) if it exits first.
        std::thread::spawn(move || {
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        let server = Self { port, dir, child };
        match is_ready.recv_timeout(WAIT) {
            Ok(()) => Some(server),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("redis-server on port {port} is not ready"),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The store under test, connected to this server.
    pub(super) async fn store(&self) -> Store {
        Store::connect(&self.url()).await.expect("connect store")
    }

    /// A dedicated connection for blocking queue reads.
    pub(super) async fn reader(&self) -> QueueReader {
        QueueReader::connect(&self.url(), WAIT)
            .await
            .expect("connect queue reader")
    }

    /// A plain connection, for looking at what the store wrote.
    pub(super) async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// A subscription to `channel`, active when this returns.
    pub(super) async fn subscribe(&self, channel: &str) -> Subscription {
        let mut pubsub = redis::Client::open(self.url())
            .expect("redis url")
            .get_async_pubsub()
            .await
            .expect("connect pubsub");
        pubsub.subscribe(channel).await.expect("subscribe");
        Subscription(pubsub.into_on_message())
    }

    /// Every field of a task's hash.
    pub(super) async fn task_hash(&self, id: TaskId) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(keys::task(id))
            .query_async(&mut self.conn().await)
            .await
            .expect("HGETALL")
    }

    /// The queue stream's entries, oldest first, as (entry id, task id).
    pub(super) async fn queue(&self) -> Vec<(String, String)> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys::QUEUE)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn().await)
            .await
            .expect("XRANGE");
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let task = entry.get::<String>("task").expect("task field");
                (entry.id, task)
            })
            .collect()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Messages published on one channel.
pub(super) struct Subscription(redis::aio::PubSubStream);

impl Subscription {
    /// The payload of the next message.
    pub(super) async fn next(&mut self) -> String {
        let message = tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("a message is published")
            .expect("subscription open");
        message.get_payload().expect("text payload")
    }
}

/// A function registered in `store`.
pub(super) async fn registered_function(store: &Store) -> FunctionId {
    let id = FunctionId::new_random();
    store
        .register_function(id, "f", "Zm4=")
        .await
        .expect("register function");
    id
}

/// A port no one listens on now, never Redis's default 6379.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind an ephemeral port")
            .local_addr()
            .expect("local addr")
            .port();
        if port != 6379 {
            return port;
        }
    }
}
