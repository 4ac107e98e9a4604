//! Writes that must reach replicas before they count: submissions before the gateway
//! acknowledges them, and starts before the dispatcher hands tasks out (each's `--replicas`).
//! They go through a connection of their own, one at a time: `WAIT` blocks the
//! connection it runs on (so it must not be the shared one), and it confirms only the writes
//! made on that very connection (so a connection that reconnects silently would confirm
//! nothing and say yes).

use std::time::Duration;

use redis::FromRedisValue;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use super::scripts::{ScriptCall, invoke};
use super::{RESPONSE_TIMEOUT, RedisAddress, StoreError};

/// How long a submission waits for its replicas.
const REPLICA_WAIT: Duration = Duration::from_secs(2);

/// The connection replicated submissions go through.
pub(super) struct Replicated {
    address: RedisAddress,
    replicas: u32,
    /// `None` until first used, and again after any error (the next use connects afresh, to
    /// the primary of the moment).
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Replicated {
    pub fn new(address: RedisAddress, replicas: u32) -> Self {
        Self {
            address,
            replicas,
            conn: Mutex::new(None),
        }
    }

    /// Runs `call`, then waits until the replicas have what it wrote; an error if they do
    /// not confirm it within [`REPLICA_WAIT`] (the primary has it nevertheless).
    pub async fn run<T: FromRedisValue>(&self, call: &ScriptCall) -> Result<Vec<T>, StoreError> {
        let mut slot = self.conn.lock().await;
        // Taken out: an error below leaves none, so the next call connects afresh.
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let replies = invoke(&mut conn, call).await?;
        let timeout_ms = u64::try_from(REPLICA_WAIT.as_millis()).unwrap_or(u64::MAX);
        let confirmed: u32 = redis::cmd("WAIT")
            .arg(self.replicas)
            .arg(timeout_ms)
            .query_async(&mut conn)
            .await?;
        if confirmed < self.replicas {
            return Err(StoreError::NotReplicated {
                wanted: self.replicas,
                confirmed,
            });
        }
        *slot = Some(conn);
        Ok(replies)
    }

    async fn connect(&self) -> Result<MultiplexedConnection, StoreError> {
        let client = redis::Client::open(self.address.current().await?)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT + REPLICA_WAIT));
        Ok(client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}
