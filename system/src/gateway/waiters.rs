//! Clients waiting for results (`GET /result/{id}?wait=S`, `POST /results`): one Redis
//! subscription to the completion channel tells exactly the requests waiting for each finished
//! task, so a result is returned the moment it is recorded instead of at the next poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::channel::{Heard, follow_task_ids};
use crate::store::keys;
use crate::task::TaskId;

/// What a registration is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// This task is final.
    Done(TaskId),
    /// Completions may have been missed (the subscription was lost): read everything again.
    Reread,
    /// The gateway is stopping: answer with what is known now.
    Closing,
}

#[derive(Default)]
struct Table {
    /// Per task, the registrations waiting for it.
    by_task: HashMap<TaskId, Vec<u64>>,
    /// Per registration, where its wake-ups go.
    senders: HashMap<u64, mpsc::UnboundedSender<Wake>>,
    /// Set at shutdown: new registrations are told [`Wake::Closing`] at once.
    closing: bool,
}

/// Who is waiting for which task; at most `limit` requests at once.
#[derive(Clone)]
pub struct Waiters {
    table: Arc<Mutex<Table>>,
    next_id: Arc<AtomicU64>,
    limit: usize,
}

/// Every place for a waiting request is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{limit} requests are waiting already")]
pub struct Full {
    pub limit: usize,
}

/// A registration for some tasks; dropping it unregisters.
pub struct Waiting {
    waiters: Waiters,
    id: u64,
    tasks: Vec<TaskId>,
    wakes: mpsc::UnboundedReceiver<Wake>,
}

impl Waiting {
    /// The next wake-up, or `None` when `timeout` passes first.
    pub async fn next(&mut self, timeout: Duration) -> Option<Wake> {
        tokio::time::timeout(timeout, self.wakes.recv())
            .await
            .ok()
            .flatten()
    }

    /// A wake-up already delivered, without waiting.
    pub fn try_next(&mut self) -> Option<Wake> {
        self.wakes.try_recv().ok()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut table = self.waiters.table.lock().expect("waiters lock");
        table.senders.remove(&self.id);
        for task in &self.tasks {
            if let Some(ids) = table.by_task.get_mut(task) {
                ids.retain(|id| *id != self.id);
                if ids.is_empty() {
                    table.by_task.remove(task);
                }
            }
        }
    }
}

impl Waiters {
    /// Room for `limit` waiting requests.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            table: Arc::default(),
            next_id: Arc::default(),
            limit,
        }
    }

    /// Registers interest in `tasks`; register before reading their status, so a completion
    /// in between is not missed (it is delivered and read again). Refused when `limit`
    /// requests are waiting already.
    pub fn register(&self, tasks: &[TaskId]) -> Result<Waiting, Full> {
        let mut table = self.table.lock().expect("waiters lock");
        if table.senders.len() >= self.limit {
            return Err(Full { limit: self.limit });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, wakes) = mpsc::unbounded_channel();
        if table.closing {
            let _ = tx.send(Wake::Closing);
        }
        table.senders.insert(id, tx);
        for task in tasks {
            table.by_task.entry(*task).or_default().push(id);
        }
        Ok(Waiting {
            waiters: self.clone(),
            id,
            tasks: tasks.to_vec(),
            wakes,
        })
    }

    /// Requests waiting now.
    #[must_use]
    pub fn registrations(&self) -> usize {
        self.table.lock().expect("waiters lock").senders.len()
    }

    fn wake(&self, task: TaskId) {
        let table = self.table.lock().expect("waiters lock");
        for id in table.by_task.get(&task).into_iter().flatten() {
            if let Some(tx) = table.senders.get(id) {
                let _ = tx.send(Wake::Done(task));
            }
        }
    }

    fn wake_all(&self, wake: Wake) {
        let mut table = self.table.lock().expect("waiters lock");
        table.closing |= wake == Wake::Closing;
        for tx in table.senders.values() {
            let _ = tx.send(wake);
        }
    }

    /// Follows the completion channel until `shutdown`, resubscribing after connection loss
    /// (everyone re-reads then: completions may have been missed). At shutdown every waiting
    /// request is told, so it answers with the tasks' current state instead of holding the
    /// drain up.
    pub async fn listen(self, redis_url: String, shutdown: CancellationToken) {
        follow_task_ids(&redis_url, keys::DONE_CHANNEL, &shutdown, |heard| {
            match heard {
                Heard::Subscribed => self.wake_all(Wake::Reread),
                Heard::Task(task) => self.wake(task),
            }
            true
        })
        .await;
        self.wake_all(Wake::Closing);
    }
}
