//! A pool of executors serving one queue of jobs. Each slot owns one executor; when the
//! executor dies or is killed, the slot reports the task and starts a fresh one. Executors
//! are Python processes, or (for benchmarks of the control plane alone) simulated in Rust:
//! [`ExecutorKind`] says which, and nothing else of the pool differs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Job;
use super::process::{ExecutorProcess, ExecutorSpec, Run, SpawnError};
use super::simulated::SimulatedExecutor;
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

/// What a pool's executors are.
#[derive(Debug, Clone)]
pub enum ExecutorKind {
    /// Python processes started from the spec: what runs users' functions.
    Python(ExecutorSpec),
    /// Simulated in Rust ([`super::simulated`]): no process, no user code; every task
    /// completes with `None` after the simulated run time.
    Simulated(SimulatedExecutor),
}

/// One slot's executor, of the pool's kind.
enum Executor {
    /// Boxed: a process is large, and is started (and run) far more slowly than a pointer
    /// is followed.
    Process(Box<ExecutorProcess>),
    Simulated(SimulatedExecutor),
}

impl Executor {
    async fn start(kind: &ExecutorKind, label: String) -> Result<Self, SpawnError> {
        match kind {
            ExecutorKind::Python(spec) => {
                let process = ExecutorProcess::spawn(spec, label).await?;
                Ok(Self::Process(Box::new(process)))
            }
            ExecutorKind::Simulated(simulated) => Ok(Self::Simulated(*simulated)),
        }
    }

    async fn run(&mut self, job: &Job) -> Run {
        match self {
            Self::Process(process) => process.run(job, job.timeout).await,
            Self::Simulated(simulated) => simulated.run(job).await,
        }
    }

    async fn kill(&mut self) {
        match self {
            Self::Process(process) => process.kill().await,
            Self::Simulated(_) => {}
        }
    }
}

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
    /// Starts `size` executors of `kind` (in parallel) and waits until all are ready; up to
    /// `queue` jobs may wait for them; each finished job is reported on `completions`.
    pub async fn start(
        kind: ExecutorKind,
        size: usize,
        queue: usize,
        name: &str,
        completions: mpsc::UnboundedSender<Completion>,
    ) -> Result<Self, SpawnError> {
        let kind = Arc::new(kind);
        if let ExecutorKind::Simulated(simulated) = &*kind {
            tracing::warn!(
                executors = size,
                run = ?simulated.run,
                "executors are SIMULATED: no Python runs and no user code is executed; every \
                 task completes with None (a control-plane benchmark mode)"
            );
        }
        // Start all executors at once: each Python one spends ~100 ms importing dill.
        let mut starting = tokio::task::JoinSet::new();
        for i in 0..size {
            let (kind, label) = (kind.clone(), format!("{name}/{i}"));
            starting.spawn(async move { (i, Executor::start(&kind, label).await) });
        }
        let mut executors: Vec<Option<Executor>> = (0..size).map(|_| None).collect();
        while let Some(joined) = starting.join_next().await {
            let (i, executor) = joined.expect("executor start-up task panicked");
            executors[i] = Some(executor?);
        }
        let (jobs, rx) = mpsc::channel(queue.max(size).max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let slots = TaskTracker::new();
        let cancels = Arc::new(std::sync::Mutex::new(Cancels::default()));
        for (i, executor) in executors.into_iter().flatten().enumerate() {
            let slot = Slot {
                label: format!("{name}/{i}"),
                kind: kind.clone(),
                jobs: rx.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
                kill: kill.clone(),
                cancels: cancels.clone(),
            };
            slots.spawn(slot.run(executor));
        }
        slots.close();
        match &*kind {
            ExecutorKind::Python(spec) => {
                tracing::info!(executors = size, python = %spec.env.python.display(), "executor pool ready");
            }
            ExecutorKind::Simulated(_) => {
                tracing::info!(executors = size, "simulated executor pool ready");
            }
        }
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
    kind: Arc<ExecutorKind>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    completions: mpsc::UnboundedSender<Completion>,
    stop: CancellationToken,
    kill: CancellationToken,
    cancels: Arc<std::sync::Mutex<Cancels>>,
}

impl Slot {
    async fn run(self, mut executor: Executor) {
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
                run = executor.run(&job) => Some(run),
            };
            self.cancels
                .lock()
                .expect("cancels lock")
                .running
                .remove(&job.task_id);
            let Some(run) = run else {
                tracing::info!(executor = %self.label, task_id = %job.task_id, "task cancelled; replacing its executor");
                executor.kill().await;
                self.report_cancelled(job.task_id);
                match self.respawn().await {
                    Some(fresh) => executor = fresh,
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
                    Some(fresh) => executor = fresh,
                    None => return,
                }
            }
        }
        executor.kill().await;
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
    async fn respawn(&self) -> Option<Executor> {
        loop {
            let attempt = tokio::select! {
                () = self.kill.cancelled() => return None,
                p = Executor::start(&self.kind, self.label.clone()) => p,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::simulated::NONE_RESULT;
    use crate::task::FunctionId;

    fn job(timeout: Option<Duration>) -> Job {
        Job {
            task_id: TaskId::new_random(),
            function_id: FunctionId::new_random(),
            function: "".into(),
            params: String::new(),
            timeout,
        }
    }

    async fn simulated(
        run: Duration,
        size: usize,
    ) -> (ExecutorPool, mpsc::UnboundedReceiver<Completion>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let kind = ExecutorKind::Simulated(SimulatedExecutor { run });
        let pool = ExecutorPool::start(kind, size, size, "sim", tx)
            .await
            .expect("simulated executors always start");
        (pool, rx)
    }

    #[tokio::test]
    async fn simulated_executors_complete_every_job_with_none() {
        let (pool, mut done) = simulated(Duration::ZERO, 4).await;
        let jobs: Vec<Job> = (0..100).map(|_| job(None)).collect();
        let mut want: HashSet<TaskId> = jobs.iter().map(|j| j.task_id).collect();
        for job in jobs {
            pool.submit(job).await.expect("the pool runs");
        }
        while !want.is_empty() {
            let c = done.recv().await.expect("a completion");
            assert!(want.remove(&c.task_id), "one completion per job");
            assert_eq!(c.outcome, TaskOutcome::Completed(NONE_RESULT.to_owned()));
            let started = c.started_at.expect("a start time");
            assert!(started <= c.finished_at);
            assert!(c.executor.is_some_and(|e| e.starts_with("sim/")));
        }
        pool.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn simulated_executors_keep_deadlines_and_cancellations() {
        let (pool, mut done) = simulated(Duration::from_secs(3600), 1).await;
        // Past its deadline: failed as a Python executor fails it, and the place is freed.
        let late = job(Some(Duration::from_millis(10)));
        let late_id = late.task_id;
        pool.submit(late).await.expect("the pool runs");
        let c = done.recv().await.expect("a completion");
        assert_eq!(c.task_id, late_id);
        assert_eq!(
            c.outcome,
            TaskOutcome::WorkerFailure(format!(
                "task {late_id} exceeded its deadline of 10ms and its executor was killed"
            ))
        );
        // Cancelled while running, then one cancelled before an executor took it.
        let running = job(None);
        let running_id = running.task_id;
        pool.submit(running).await.expect("the pool runs");
        tokio::task::yield_now().await;
        pool.cancel(running_id);
        let early = job(None);
        pool.cancel(early.task_id);
        let early_id = early.task_id;
        pool.submit(early).await.expect("the pool runs");
        for id in [running_id, early_id] {
            let c = done.recv().await.expect("a completion");
            assert_eq!(c.task_id, id);
            assert_eq!(c.outcome, TaskOutcome::WorkerFailure(CANCELLED.into()));
        }
        pool.shutdown(Duration::ZERO).await;
    }
}
