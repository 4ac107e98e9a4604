//! Clients waiting for results (`GET /result/{id}?wait=SECONDS`): one Redis subscription to
//! the completion channel wakes exactly the requests waiting for each finished task, so a
//! result is returned the moment it is recorded instead of at the next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::keys;
use crate::task::TaskId;

/// Longest a single request may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Per task: what wakes its waiters, and how many there are.
type WaitingTable = HashMap<TaskId, (Arc<Notify>, usize)>;

/// Who is waiting for which task.
#[derive(Clone, Default)]
pub struct Waiters {
    waiting: Arc<Mutex<WaitingTable>>,
}

/// A registration; dropping it unregisters.
pub struct Waiting {
    waiters: Waiters,
    task: TaskId,
    pub notify: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting.lock().expect("waiters lock");
        if let Some((_, count)) = waiting.get_mut(&self.task) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.task);
            }
        }
    }
}

impl Waiters {
    /// Registers interest in `task`; register before reading its status, so a completion in
    /// between is not missed.
    #[must_use]
    pub fn register(&self, task: TaskId) -> Waiting {
        let mut waiting = self.waiting.lock().expect("waiters lock");
        let entry = waiting
            .entry(task)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiting {
            waiters: self.clone(),
            task,
            notify: entry.0.clone(),
        }
    }

    fn wake(&self, task: TaskId) {
        if let Some((notify, _)) = self.waiting.lock().expect("waiters lock").get(&task) {
            notify.notify_waiters();
        }
    }

    /// Wakes everyone (after a lost subscription, completions may have been missed).
    fn wake_all(&self) {
        for (notify, _) in self.waiting.lock().expect("waiters lock").values() {
            notify.notify_waiters();
        }
    }

    /// Follows the completion channel until `shutdown`, resubscribing after connection loss.
    /// At shutdown every waiting request is woken, so it answers with the task's current state
    /// instead of holding the drain up.
    pub async fn listen(self, redis_url: String, shutdown: CancellationToken) {
        loop {
            match self.subscribe_once(&redis_url, &shutdown).await {
                Ok(()) => {
                    self.wake_all();
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "completion subscription lost; resubscribing"),
            }
            self.wake_all();
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.wake_all();
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn subscribe_once(
        &self,
        redis_url: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(keys::DONE_CHANNEL).await?;
        // Anything that finished while we were not subscribed is picked up by a re-read.
        self.wake_all();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed")));
                    };
                    if let Ok(Ok(task)) = message.get_payload::<String>().map(|p| p.parse::<TaskId>()) {
                        self.wake(task);
                    }
                }
            }
        }
    }
}
