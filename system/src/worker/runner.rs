//! The executor side of a worker, independent of the connection: tasks received are run on
//! the pool (queued locally when every executor is busy), results are kept until the
//! dispatcher acknowledges them, and survive reconnections.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use std::time::Instant;

use lru::LruCache;
use tokio::sync::mpsc;

use super::{SHUTDOWN_GRACE, WorkerConfig};
use crate::executor::{CANCELLED, ExecutorPool, Job};
use crate::protocol::{Completion, WORKER_FUNCTION_CACHE, WireTask};
use crate::task::{FunctionId, TaskId, TaskOutcome, now_micros};

pub(super) struct Runner {
    pool: ExecutorPool,
    pub completions: mpsc::UnboundedReceiver<Completion>,
    /// Function bodies this registration was sent, least recently used evicted first, as
    /// the dispatcher's mirror of this cache expects.
    functions: LruCache<FunctionId, Arc<str>>,
    /// Received tasks waiting for an executor.
    waiting: VecDeque<Job>,
    /// Tasks on executors.
    running: usize,
    /// Tasks started on an executor since the dispatcher was last told.
    started: Vec<TaskId>,
    /// Results not yet sent.
    pending: Vec<Completion>,
    /// Results sent and not yet acknowledged.
    sent: HashMap<TaskId, Completion>,
    /// Set at shutdown: work in hand may finish and be reported until then.
    drain_deadline: Option<Instant>,
    /// Tasks this worker takes at most: its executors and `prefetch` waiting per executor.
    slots: usize,
}

impl Runner {
    pub async fn start(config: &WorkerConfig) -> Result<Self, super::WorkerError> {
        let (tx, completions) = mpsc::unbounded_channel();
        let pool = ExecutorPool::start(
            config.executor_kind.clone(),
            config.executors,
            config.executors,
            &config.name,
            tx,
        )
        .await?;
        Ok(Self {
            pool,
            completions,
            functions: LruCache::new(WORKER_FUNCTION_CACHE),
            waiting: VecDeque::new(),
            running: 0,
            started: Vec::new(),
            pending: Vec::new(),
            sent: HashMap::new(),
            drain_deadline: None,
            slots: config.executors * (1 + config.prefetch as usize),
        })
    }

    pub fn capacity(&self) -> u32 {
        u32::try_from(self.pool.size()).unwrap_or(u32::MAX)
    }

    /// Tasks to ask for: the idle executors while there are any, else places in the prefetch
    /// queue. Asking for prefetch only once every executor is busy keeps a burst spread over
    /// all workers instead of queued at the first to ask.
    pub fn free(&self) -> u32 {
        let busy = self.running + self.waiting.len();
        let idle = self.pool.size().saturating_sub(busy);
        let room = if idle > 0 {
            idle
        } else {
            self.slots.saturating_sub(busy)
        };
        u32::try_from(room).unwrap_or(0)
    }

    /// Nothing running, queued or unsent.
    pub fn idle(&self) -> bool {
        self.running == 0 && self.waiting.is_empty() && self.pending.is_empty()
    }

    /// A new registration starts with an empty function cache on the dispatcher's side, so
    /// this side forgets too; results not acknowledged are sent again.
    pub fn new_registration(&mut self) {
        self.functions.clear();
        let unacknowledged: Vec<Completion> = self.sent.drain().map(|(_, c)| c).collect();
        self.pending.extend(unacknowledged);
    }

    /// Takes tasks from the dispatcher and starts what executors are free for. Only tasks
    /// that waited here are reported as started: the deadline of one that starts as it
    /// arrives already runs from its assignment.
    pub async fn accept(&mut self, tasks: Vec<WireTask>) {
        let arrived: HashSet<TaskId> = tasks.iter().map(|t| t.task_id).collect();
        for task in tasks {
            let function = match task.function {
                Some(body) => {
                    let body: Arc<str> = body.into();
                    self.functions.put(task.function_id, body.clone());
                    Some(body)
                }
                None => self.functions.get(&task.function_id).cloned(),
            };
            let Some(function) = function else {
                // The dispatcher believed this registration had the body (its mirror of this
                // cache disagrees): the task is handed back, to run again.
                self.pending.push(Completion {
                    task_id: task.task_id,
                    outcome: TaskOutcome::Lost(format!(
                        "worker received task {} without the body of function {}",
                        task.task_id, task.function_id
                    )),
                    started_at: None,
                    finished_at: now_micros(),
                    executor: None,
                });
                continue;
            };
            self.waiting.push_back(Job {
                task_id: task.task_id,
                function_id: task.function_id,
                function,
                params: task.params,
                timeout: task.timeout_ms.map(std::time::Duration::from_millis),
            });
        }
        self.start_waiting().await;
        self.started.retain(|task| !arrived.contains(task));
    }

    /// Stops tasks cancelled through the API: one still waiting here is dropped and reported
    /// at once; one on an executor is stopped by the pool, which reports it.
    pub fn cancel(&mut self, tasks: Vec<TaskId>) {
        for task in tasks {
            if let Some(i) = self.waiting.iter().position(|job| job.task_id == task) {
                self.waiting.remove(i);
                self.pending.push(Completion {
                    task_id: task,
                    outcome: TaskOutcome::WorkerFailure(CANCELLED.into()),
                    started_at: None,
                    finished_at: now_micros(),
                    executor: None,
                });
            } else {
                self.pool.cancel(task);
            }
        }
    }

    /// A task finished on an executor.
    pub async fn finished(&mut self, done: Completion) {
        self.running = self.running.saturating_sub(1);
        self.pending.push(done);
        self.start_waiting().await;
    }

    async fn start_waiting(&mut self) {
        while self.running < self.pool.size() {
            let Some(job) = self.waiting.pop_front() else {
                return;
            };
            // Never waits: the pool's queue has room for `size` jobs and fewer are running.
            let task = job.task_id;
            if self.pool.submit(job).await.is_err() {
                return;
            }
            self.running += 1;
            self.started.push(task);
        }
    }

    /// Tasks started since the last call, for the dispatcher: their deadlines run from now.
    pub fn take_started(&mut self) -> Vec<TaskId> {
        std::mem::take(&mut self.started)
    }

    pub fn has_started(&self) -> bool {
        !self.started.is_empty()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Results to send now; they are kept until acknowledged.
    pub fn take_pending(&mut self) -> Vec<Completion> {
        let results = std::mem::take(&mut self.pending);
        for done in &results {
            self.sent.insert(done.task_id, done.clone());
        }
        results
    }

    /// Every result sent has been acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.sent.is_empty()
    }

    /// Every result of `tasks` that was sent has been acknowledged.
    pub fn all_acknowledged_of(&self, tasks: &[TaskId]) -> bool {
        tasks.iter().all(|task| !self.sent.contains_key(task))
    }

    pub fn acknowledged(&mut self, tasks: impl IntoIterator<Item = TaskId>) {
        for task in tasks {
            self.sent.remove(&task);
        }
    }

    /// Starts draining for shutdown: no new tasks; tasks not yet started are dropped (the
    /// dispatcher requeues them once this worker is gone); running ones get [`SHUTDOWN_GRACE`].
    pub fn begin_drain(&mut self) {
        self.waiting.clear();
        self.drain_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
    }

    pub fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    pub fn drain_deadline(&self) -> Option<Instant> {
        self.drain_deadline
    }

    /// Draining is over: everything reported and acknowledged, or the grace period spent.
    pub fn drained(&self, now: Instant) -> bool {
        self.drain_deadline
            .is_some_and(|until| (self.idle() && self.all_acknowledged()) || now >= until)
    }

    pub async fn shutdown(self, grace: std::time::Duration) {
        self.pool.shutdown(grace).await;
    }
}
