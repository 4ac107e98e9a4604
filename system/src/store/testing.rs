//! Test support: a private redis-server per test (never the machine's own Redis), killed and
//! its directory removed on drop, with handles to drive and inspect it.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;

use super::{QueueReader, Store, keys};
use crate::cluster::{Output, Persistence, RedisServer};
use crate::task::{FunctionId, TaskId};

/// How long a test waits for an event (a server ready, a message published) before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A redis-server without persistence on a free port, in its own temporary directory: the
/// supervisor's [`RedisServer`], ready when it says so.
pub(crate) struct TestRedis(RedisServer);

impl TestRedis {
    /// Starts a server and returns once it is ready.
    pub(crate) async fn start() -> Self {
        Self(
            RedisServer::start(Persistence::None, &Output::Captured)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    pub(crate) fn url(&self) -> String {
        self.0.url()
    }

    /// The store under test, connected to this server.
    pub(crate) async fn store(&self) -> Store {
        Store::connect(&self.url()).await.expect("connect store")
    }

    /// A dedicated connection for blocking queue reads.
    pub(crate) async fn reader(&self) -> QueueReader {
        QueueReader::connect(&self.url(), WAIT)
            .await
            .expect("connect queue reader")
    }

    /// A plain connection, for looking at what the store wrote.
    pub(crate) async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// One section of `INFO` (`memory`, `commandstats`...).
    pub(crate) async fn info(&self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn().await)
            .await
            .expect("INFO")
    }

    /// A subscription to `channel`, active when this returns.
    pub(crate) async fn subscribe(&self, channel: &str) -> Subscription {
        let mut pubsub = redis::Client::open(self.url())
            .expect("redis url")
            .get_async_pubsub()
            .await
            .expect("connect pubsub");
        pubsub.subscribe(channel).await.expect("subscribe");
        Subscription(pubsub.into_on_message())
    }

    /// Every field of a task's hash.
    pub(crate) async fn task_hash(&self, id: TaskId) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(keys::task(id))
            .query_async(&mut self.conn().await)
            .await
            .expect("HGETALL")
    }

    /// The queue stream's entries, oldest first, as (entry id, task id).
    pub(crate) async fn queue(&self) -> Vec<(String, String)> {
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

/// Messages published on one channel.
pub(crate) struct Subscription(redis::aio::PubSubStream);

impl Subscription {
    /// The payload of the next message.
    pub(crate) async fn next(&mut self) -> String {
        let message = tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("a message is published")
            .expect("subscription open");
        message.get_payload().expect("text payload")
    }
}

/// A function registered in `store`.
pub(crate) async fn registered_function(store: &Store) -> FunctionId {
    let id = FunctionId::new_random();
    store
        .register_function(id, "f", "Zm4=")
        .await
        .expect("register function");
    id
}
