//! The floor: the platform's own Python executors (same pool, sandbox and payloads) fed
//! directly by loadgen, with no HTTP, Redis, dispatcher or network in between. Whatever the
//! platform adds to a task is measured against this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faas::executor::sandbox::SandboxSpec;
use faas::executor::{ExecutorKind, ExecutorPool, ExecutorSpec, Job, python_env};
use faas::task::{FunctionId, TaskId, TaskOutcome};
use indicatif::ProgressBar;
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Seen, Submitted, Tally};
use crate::experiment::{Load, Shape};
use crate::functions::Serialized;
use crate::stats::Run;

/// A started pool and what routes its completions back to the waiting submitters.
pub struct Floor {
    pool: ExecutorPool,
    waiting: Arc<Mutex<HashMap<TaskId, oneshot::Sender<Seen>>>>,
    router: tokio::task::JoinHandle<()>,
    function_id: FunctionId,
    function: Arc<str>,
    params: String,
}

impl Floor {
    /// Starts `executors` executors as the platform's defaults would (sandboxed where the
    /// machine allows) and waits until they are ready.
    pub async fn start(executors: u32, payloads: &Serialized) -> anyhow::Result<Self> {
        let env = tokio::task::spawn_blocking(|| python_env::resolve(None)).await??;
        let spec = ExecutorSpec {
            env,
            memory_limit: None,
            sandbox: SandboxSpec::default(),
        };
        let size = executors as usize;
        let (completions, mut done) = mpsc::unbounded_channel();
        let pool = ExecutorPool::start(
            ExecutorKind::Python(spec),
            size,
            size * 2,
            "floor",
            completions,
        )
        .await?;
        let waiting: Arc<Mutex<HashMap<TaskId, oneshot::Sender<Seen>>>> = Arc::default();
        let routes = waiting.clone();
        let router = tokio::spawn(async move {
            while let Some(completion) = done.recv().await {
                let seen = match completion.outcome {
                    TaskOutcome::Completed(_) => Seen::Completed,
                    _ => Seen::Failed,
                };
                let waiter = routes
                    .lock()
                    .expect("routes lock")
                    .remove(&completion.task_id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(seen);
                }
            }
        });
        Ok(Self {
            pool,
            waiting,
            router,
            function_id: FunctionId::new_random(),
            function: payloads.function.as_str().into(),
            params: payloads.params.clone(),
        })
    }

    /// Runs one task and waits for it, at most `timeout`.
    async fn one(&self, timeout: Duration) -> (Seen, TaskId) {
        let task_id = TaskId::new_random();
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("routes lock")
            .insert(task_id, tx);
        let job = Job {
            task_id,
            function_id: self.function_id,
            function: self.function.clone(),
            params: self.params.clone(),
            timeout: None,
        };
        // The timeout covers the wait for a queue place too, as the platform's covers
        // everything from submission on.
        let ran = tokio::time::timeout(timeout, async {
            self.pool.submit(job).await.ok()?;
            rx.await.ok()
        })
        .await;
        match ran {
            Ok(Some(seen)) => (seen, task_id),
            _ => {
                // Lost: free the executor it may hold, and forget it.
                self.pool.cancel(task_id);
                self.waiting.lock().expect("routes lock").remove(&task_id);
                (Seen::Lost, task_id)
            }
        }
    }

    /// One measured run of `tasks` tasks (or `load.duration_s`) in the shape of `load`.
    pub async fn run(self: &Arc<Self>, tasks: u64, load: &Load, timeout: Duration) -> Run {
        let tally = Arc::new(Tally::new(tasks, ProgressBar::hidden()));
        let started = Instant::now();
        let mut running = tokio::task::JoinSet::new();
        let floor = self.clone();
        let tally_in_tasks = tally.clone();
        let task = move |since: Instant| {
            let (floor, tally) = (floor.clone(), tally_in_tasks.clone());
            async move {
                let (seen, id) = floor.one(timeout).await;
                let sent = since;
                tally.record(seen, &Submitted { id, since, sent });
            }
        };
        match load.shape {
            Shape::Burst => {
                for _ in 0..tasks {
                    running.spawn(task(Instant::now()));
                }
            }
            Shape::Closed => {
                let task = task.clone();
                crate::driver::spawn_closed_loops(&mut running, load, started, tasks, move || {
                    task(Instant::now())
                });
            }
            Shape::Open => {
                let rate = load.rate.unwrap_or(1.0);
                for i in 0..tasks {
                    let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(scheduled.into()).await;
                    running.spawn(task(scheduled));
                }
            }
        }
        while running.join_next().await.is_some() {}
        tally.finish(started)
    }

    /// Stops the executors.
    pub async fn stop(self) {
        self.pool.shutdown(Duration::from_secs(5)).await;
        self.router.abort();
    }

    /// The process whose children are the executors (loadgen itself).
    #[must_use]
    pub fn executor_parent() -> i32 {
        i32::try_from(std::process::id()).unwrap_or(0)
    }
}
