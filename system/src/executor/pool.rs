//! A pool of executor processes serving one queue of jobs. Each slot owns one executor; when
//! the executor dies or is killed, the slot reports the task and starts a fresh one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Job;
use super::process::{ExecutorProcess, ExecutorSpec, SpawnError};
use crate::protocol::Completion;
use crate::task::{TaskId, TaskOutcome, now_micros};

/// What a cancelled task's completion says (its record is already final; this only frees the
/// place it held).
pub const CANCELLED: &str = "cancelled through the API";

/// Cancellations the slots act on.
#[derive(Default)]
struct Cancels {
    /// Jobs on an executor, each with what stops it.
    running: HashMap<TaskId, CancellationToken>,
    /// Jobs cancelled before an executor took them: they are skipped.
    early: HashSet<TaskId>,
}

/// Pause between attempts to replace an executor that will not start.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);

/// N executors behind one job queue.
pub struct ExecutorPool {
    jobs: mpsc::Sender<Job>,
    size: usize,
    /// Cancelled to stop taking jobs; slots finish the job in hand.
    stop: CancellationToken,
    /// Cancelled to abandon jobs in hand and kill every executor now.
    kill: CancellationToken,
    slots: TaskTracker,
    cancels: Arc<std::sync::Mutex<Cancels>>,
}

impl ExecutorPool {
    /// Starts `size` executors (in parallel) and waits until all are ready; up to `queue`
    /// jobs may wait for them; each finished job is reported on `completions`.
    pub async fn start(
        spec: ExecutorSpec,
        size: usize,
        queue: usize,
        name: &str,
        completions: mpsc::UnboundedSender<Completion>,
    ) -> Result<Self, SpawnError> {
        // Start all executors at once: each spends ~100 ms importing dill.
        let mut starting = tokio::task::JoinSet::new();
        for i in 0..size {
            let (spec, label) = (spec.clone(), format!("{name}/{i}"));
            starting.spawn(async move { (i, ExecutorProcess::spawn(&spec, label).await) });
        }
        let mut processes: Vec<Option<ExecutorProcess>> = (0..size).map(|_| None).collect();
        while let Some(joined) = starting.join_next().await {
            let (i, process) = joined.expect("executor start-up task panicked");
            processes[i] = Some(process?);
        }
        let (jobs, rx) = mpsc::channel(queue.max(size).max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let slots = TaskTracker::new();
        let spec = Arc::new(spec);
        let cancels = Arc::new(std::sync::Mutex::new(Cancels::default()));
        for (i, process) in processes.into_iter().flatten().enumerate() {
            let slot = Slot {
                label: format!("{name}/{i}"),
                spec: spec.clone(),
                jobs: rx.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
                kill: kill.clone(),
                cancels: cancels.clone(),
            };
            slots.spawn(slot.run(process));
        }
        slots.close();
        tracing::info!(executors = size, python = %spec.env.python.display(), "executor pool ready");
        Ok(Self {
            jobs,
            size,
            stop,
            kill,
            slots,
            cancels,
        })
    }

    /// How many executors the pool runs.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Queues a job for the next free executor; waits while every queue place is taken.
    /// Gives the job back if the pool is shutting down.
    pub async fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).await.map_err(|e| e.0)
    }

    /// Stops a job: its executor is killed and replaced if it is running it, or the job is
    /// skipped when an executor takes it. Either way its completion says [`CANCELLED`].
    pub fn cancel(&self, task: TaskId) {
        let mut cancels = self.cancels.lock().expect("cancels lock");
        match cancels.running.get(&task) {
            Some(stop) => stop.cancel(),
            None => {
                cancels.early.insert(task);
            }
        }
    }

    /// Stops taking jobs, lets jobs in hand finish for up to `grace`, then kills every
    /// executor. Jobs abandoned at the kill are not reported.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        drop(self.jobs);
        if tokio::time::timeout(grace, self.slots.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "executors still busy after the grace period; killing them"
            );
            self.kill.cancel();
            self.slots.wait().await;
        }
    }
}

/// One pool place: an executor and the loop feeding it.
struct Slot {
    label: String,
    spec: Arc<ExecutorSpec>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    completions: mpsc::UnboundedSender<Completion>,
    stop: CancellationToken,
    kill: CancellationToken,
    cancels: Arc<std::sync::Mutex<Cancels>>,
}

impl Slot {
    async fn run(self, mut process: ExecutorProcess) {
        loop {
            let job = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                job = async { self.jobs.lock().await.recv().await } => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let Some(cancelled) = self.take(job.task_id) else {
                self.report_cancelled(job.task_id);
                continue;
            };
            let run = tokio::select! {
                biased;
                () = self.kill.cancelled() => break,
                () = cancelled.cancelled() => None,
                run = process.run(&job, job.timeout) => Some(run),
            };
            self.cancels
                .lock()
                .expect("cancels lock")
                .running
                .remove(&job.task_id);
            let Some(run) = run else {
                tracing::info!(executor = %self.label, task_id = %job.task_id, "task cancelled; replacing its executor");
                process.kill().await;
                self.report_cancelled(job.task_id);
                match self.respawn().await {
                    Some(fresh) => process = fresh,
                    None => return,
                }
                continue;
            };
            if let TaskOutcome::WorkerFailure(reason) = &run.outcome {
                tracing::warn!(executor = %self.label, task_id = %job.task_id, %reason, "task failed by the platform");
            }
            let lost = run.executor_lost;
            let _ = self.completions.send(Completion {
                task_id: job.task_id,
                outcome: run.outcome,
                started_at: run.started_at,
                finished_at: run.finished_at,
                executor: Some(self.label.clone()),
            });
            if lost {
                match self.respawn().await {
                    Some(fresh) => process = fresh,
                    None => return,
                }
            }
        }
        process.kill().await;
    }

    /// Registers `task` as running on this slot: what cancels it, or `None` if it was
    /// cancelled before the slot took it.
    fn take(&self, task: TaskId) -> Option<CancellationToken> {
        let mut cancels = self.cancels.lock().expect("cancels lock");
        if cancels.early.remove(&task) {
            return None;
        }
        let stop = CancellationToken::new();
        cancels.running.insert(task, stop.clone());
        Some(stop)
    }

    fn report_cancelled(&self, task_id: TaskId) {
        let _ = self.completions.send(Completion {
            task_id,
            outcome: TaskOutcome::WorkerFailure(CANCELLED.into()),
            started_at: None,
            finished_at: now_micros(),
            executor: Some(self.label.clone()),
        });
    }

    /// A fresh executor, retrying until one starts; `None` if the pool is killed meanwhile.
    async fn respawn(&self) -> Option<ExecutorProcess> {
        loop {
            let attempt = tokio::select! {
                () = self.kill.cancelled() => return None,
                p = ExecutorProcess::spawn(&self.spec, self.label.clone()) => p,
            };
            match attempt {
                Ok(p) => return Some(p),
                Err(e) => {
                    tracing::error!(executor = %self.label, error = %e, "cannot restart executor; retrying");
                    tokio::select! {
                        () = self.kill.cancelled() => return None,
                        () = tokio::time::sleep(RESPAWN_BACKOFF) => {}
                    }
                }
            }
        }
    }
}
