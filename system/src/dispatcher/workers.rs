//! What both remote modes do with their workers: admit registrations, forward results, report
//! the tasks of lost workers, take back overdue tasks, cancel tasks and record assignments.
//! Each of these steps also tells the dispatcher's [`Capacity`] what happened, so the modes
//! never count places themselves.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::DispatcherMetrics;
use super::capacity::Capacity;
use super::registry::{Deadline, WorkerRegistry};
use super::remote::RemoteConfig;
use crate::executor::Job;
use crate::protocol::{Completion, ToDispatcher, ToWorker, WireTask};
use crate::task::{TaskId, TaskOutcome, now_micros};

/// The most executors a worker may register with: more would let one peer draw every task.
pub const MAX_EXECUTORS_PER_WORKER: u32 = 4096;

/// State and steps both remote modes share.
pub(super) struct Workers {
    pub registry: WorkerRegistry,
    /// The dispatcher's places, which follow the workers (see [`Capacity`]).
    pub capacity: Arc<Capacity>,
    pub completions: mpsc::UnboundedSender<Completion>,
    pub config: RemoteConfig,
    /// Slack added to a task's executor deadline before the dispatcher gives up on its worker.
    pub report_grace: Duration,
    pub metrics: Arc<DispatcherMetrics>,
    /// With CURVE: the key each worker name was first registered with, for the dispatcher's
    /// lifetime, so that no other key can take a name over once its worker goes silent.
    pub bound: HashMap<String, String>,
    /// The worker that sent each result the core has not recorded yet: it is acknowledged
    /// to that worker once recorded (see [`Self::recorded`]).
    pub reporters: HashMap<TaskId, String>,
}

impl Workers {
    /// Handles a `register`: refused without the right secret; otherwise (re)registers the
    /// worker, reporting what a previous registration held as lost, and returns the `welcome`
    /// to send.
    pub fn register(
        &mut self,
        worker: &str,
        capacity: u32,
        secret: Option<&str>,
        identity: Vec<u8>,
        key: Option<&str>,
        now: Instant,
    ) -> Result<ToWorker, ToWorker> {
        if !self.admits(secret) {
            return Err(Self::rejection(worker));
        }
        if capacity > MAX_EXECUTORS_PER_WORKER {
            tracing::warn!(%worker, capacity, "registration refused: too many executors");
            return Err(ToWorker::Rejected {
                reason: format!("a worker may have at most {MAX_EXECUTORS_PER_WORKER} executors"),
            });
        }
        if let Some(key) = key {
            if self.bound.get(worker).is_some_and(|bound| bound != key) {
                tracing::warn!(%worker, %key, "registration refused: the name belongs to another key");
                return Err(ToWorker::Rejected {
                    reason: format!("worker {worker} is registered with another key"),
                });
            }
            self.bound.insert(worker.to_owned(), key.to_owned());
            // One registration per key: the same worker, started again under a new name.
            let renamed: Vec<String> = self
                .registry
                .iter()
                .filter(|(name, w)| *name != worker && w.key.as_deref() == Some(key))
                .map(|(name, _)| name.to_owned())
                .collect();
            for old in renamed {
                self.remove(&old, &format!("worker {old} registered again as {worker}"));
            }
        }
        let key = key.map(str::to_owned);
        self.forget_reports(worker);
        if let Some(previous) = self.registry.register(worker, capacity, identity, key, now) {
            let reason = format!("worker {worker} re-registered without reporting the task");
            self.lost(previous.tasks.iter().copied(), &reason);
        }
        self.capacity.worker_joined(worker, capacity);
        tracing::info!(%worker, capacity, "worker registered");
        Ok(ToWorker::Welcome {
            heartbeat_ms: u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            misses: self.config.misses,
        })
    }

    /// Whether to act on `message`, which came with the CURVE key `key` (none without
    /// keys): with CURVE every message must carry a key, and a message naming a registered
    /// worker must carry the key it registered with (registrations are checked in
    /// [`Self::register`]). Refusals are logged.
    pub fn accepts(&self, message: &ToDispatcher, key: Option<&str>) -> bool {
        let worker = message.worker();
        if self.config.curve.is_some() && key.is_none() {
            tracing::warn!(%worker, "refused a message without an authenticated key");
            return false;
        }
        if matches!(message, ToDispatcher::Register { .. }) {
            return true;
        }
        match self.registry.get(worker) {
            Some(registered) if registered.key.as_deref() != key => {
                tracing::warn!(
                    %worker,
                    key = key.unwrap_or("none"),
                    "refused a message naming a worker registered with another key"
                );
                false
            }
            _ => true,
        }
    }

    /// Whether a registration presenting `secret` may join.
    fn admits(&self, secret: Option<&str>) -> bool {
        match &self.config.secret {
            None => true,
            Some(expected) => secret.is_some_and(|given| {
                crate::secret::constant_time_eq(given.as_bytes(), expected.as_bytes())
            }),
        }
    }

    /// The answer to a refused registration.
    fn rejection(worker: &str) -> ToWorker {
        tracing::warn!(%worker, "registration refused: wrong or missing worker secret");
        ToWorker::Rejected {
            reason: "the dispatcher requires the worker secret (--worker-secret / FAAS_WORKER_SECRET) and this worker's is missing or wrong".into(),
        }
    }

    /// Forwards the results registered `worker` sent to the core, to be acknowledged once
    /// recorded, and returns the ids to acknowledge at once. A result counts if `worker`
    /// holds its task, or nobody here does (it was handed out before this dispatcher's time,
    /// or taken back as overdue; the store keeps the first final write). One for a task
    /// another worker holds is acknowledged but dropped: no worker writes another's results.
    /// Unregistered workers are told to register and send their results again.
    pub fn accept_results(&mut self, worker: &str, results: Vec<Completion>) -> Vec<TaskId> {
        let mut dropped = Vec::new();
        for done in results {
            if let Some(holder) = self.registry.holder(done.task_id)
                && holder != worker
            {
                tracing::warn!(%worker, %holder, task_id = %done.task_id, "dropped a result for a task another worker holds");
                dropped.push(done.task_id);
                continue;
            }
            if let Some(held_by) = self.registry.complete(done.task_id) {
                self.capacity.task_done_at(&held_by);
            }
            self.reporters.insert(done.task_id, worker.to_owned());
            let _ = self.completions.send(done);
        }
        dropped
    }

    /// The core recorded `tasks`: which worker to acknowledge each to (those whose reporter
    /// is gone are resent by it after it registers again, and acknowledged then).
    pub fn recorded(&mut self, tasks: Vec<TaskId>) -> HashMap<String, Vec<TaskId>> {
        let mut acks: HashMap<String, Vec<TaskId>> = HashMap::new();
        for task in tasks {
            if let Some(worker) = self.reporters.remove(&task) {
                acks.entry(worker).or_default().push(task);
            }
        }
        acks
    }

    /// Forgets which results `worker` sent: its registration ended, and the worker sends
    /// again whatever was not acknowledged once it registers anew.
    fn forget_reports(&mut self, worker: &str) {
        self.reporters.retain(|_, reporter| reporter != worker);
    }

    /// Reports `tasks` lost (the core requeues or fails them).
    pub fn lost(&self, tasks: impl IntoIterator<Item = TaskId>, reason: &str) {
        for task_id in tasks {
            let _ = self.completions.send(Completion {
                task_id,
                outcome: TaskOutcome::Lost(reason.to_owned()),
                started_at: None,
                finished_at: now_micros(),
                executor: None,
            });
        }
    }

    /// Unregisters `worker` at once (its connection is gone), reporting its tasks lost;
    /// `false` if it was not registered.
    pub fn remove(&mut self, worker: &str, reason: &str) -> bool {
        let Some(gone) = self.registry.remove(worker) else {
            return false;
        };
        self.forget_reports(worker);
        self.lost(gone.tasks.iter().copied(), reason);
        self.capacity.worker_lost(worker);
        true
    }

    /// Declares silent workers dead and takes back overdue tasks, reporting their tasks lost.
    /// Returns the names of the dead workers.
    pub fn check(&mut self, now: Instant) -> Vec<String> {
        let dead = self.registry.expire(now);
        for worker in &dead {
            let reason = format!(
                "worker {} stopped responding (silent for more than {:?})",
                worker.name,
                self.config.liveness()
            );
            tracing::warn!(worker = %worker.name, tasks = worker.tasks.len(), "worker declared dead");
            self.forget_reports(&worker.name);
            self.lost(worker.tasks.iter().copied(), &reason);
            self.capacity.worker_lost(&worker.name);
        }
        self.metrics
            .workers
            .set(self.registry.iter().count() as u64);
        self.metrics.executors.set(
            self.registry
                .iter()
                .map(|(_, w)| u64::from(w.capacity))
                .sum(),
        );
        for (worker, task) in self.registry.overdue(now) {
            let reason = format!("worker {worker} did not report the task within its deadline");
            tracing::warn!(%worker, task_id = %task, "task overdue");
            self.lost([task], &reason);
            self.capacity.task_done_at(&worker);
        }
        dead.into_iter().map(|worker| worker.name).collect()
    }

    /// A task cancelled through the API: if it is still in `backlog` it is dropped there
    /// (its place is freed and its completion goes to the core); otherwise the worker holding
    /// it, which the mode must tell.
    pub fn cancel(&mut self, backlog: &mut VecDeque<Job>, task: TaskId) -> Option<String> {
        if let Some(i) = backlog.iter().position(|job| job.task_id == task) {
            backlog.remove(i);
            self.capacity.task_done();
            let _ = self.completions.send(Completion {
                task_id: task,
                outcome: TaskOutcome::WorkerFailure(crate::executor::CANCELLED.into()),
                started_at: None,
                finished_at: now_micros(),
                executor: None,
            });
            return None;
        }
        self.registry.holder(task).map(str::to_owned)
    }

    /// `worker` says an executor began `tasks` just now: their deadlines run from now.
    pub fn started(&mut self, worker: &str, tasks: &[TaskId], now: Instant) {
        for task in tasks {
            self.registry.started(worker, *task, now);
        }
    }

    /// The wire form of `job` for `worker`, recording the assignment. Until the worker says
    /// the task started, its deadline allows for the tasks ahead of it in the worker's queue
    /// to use their whole deadlines first.
    pub fn assign(&mut self, worker: &str, job: &Job, now: Instant) -> WireTask {
        // Far enough to never pass, near enough to never overflow an `Instant`.
        const NEVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
        let timeout = job.timeout.unwrap_or(NEVER).min(NEVER);
        let run = timeout
            .saturating_add(self.config.liveness())
            .saturating_add(self.report_grace)
            .min(NEVER);
        let rounds_ahead = self.registry.get(worker).map_or(0, |w| {
            let per_executor = w.in_flight().div_ceil(w.capacity.max(1) as usize);
            u32::try_from(per_executor).unwrap_or(u32::MAX)
        });
        let wait = timeout.saturating_mul(rounds_ahead).min(NEVER);
        let deadline = Deadline::new(now, wait, run);
        let send_body = self
            .registry
            .assign(worker, job.task_id, job.function_id, deadline);
        self.capacity.task_sent(worker);
        WireTask {
            task_id: job.task_id,
            function_id: job.function_id,
            function: send_body.then(|| job.function.to_string()),
            params: job.params.clone(),
            timeout_ms: job
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}
