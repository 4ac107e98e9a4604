//! Drives one measured run against a live system: submissions in the configured load shape,
//! result collection in the configured way, every task's latency into a histogram. The hot
//! loop is Rust; Python only runs inside the system.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faas::api::ResultLine;
use faas::client::Client;
use faas::task::{FunctionId, TaskId, TaskStatus, now_micros};
use indicatif::ProgressBar;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::breakdown::Sample;
use crate::experiment::{Collect, CollectMethod, Load, Shape};
use crate::stats::{Run, new_histogram};

/// Most results awaited at once; beyond this, waiting tasks queue in loadgen (their latency
/// still counts from their submission or scheduled time).
const MAX_WAITERS: usize = 2048;
/// Longest wait asked of the server in one request (its limit is 60 s).
const MAX_SERVER_WAIT: Duration = Duration::from_secs(30);
/// Most tasks followed by one `POST /results` stream.
const MAX_STREAM_TASKS: usize = 1000;

/// How one task ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// COMPLETED.
    Completed,
    /// FAILED.
    Failed,
    /// Not final before the collection timeout, or never accepted.
    Lost,
}

/// How a final status is seen; `None` while the task is not final.
fn final_status(status: TaskStatus) -> Option<Seen> {
    match status {
        TaskStatus::Completed => Some(Seen::Completed),
        TaskStatus::Failed => Some(Seen::Failed),
        TaskStatus::Queued | TaskStatus::Running => None,
    }
}

/// Waits until the task is final or `deadline` passes; any failed request is retried.
async fn wait(client: &Client, task_id: TaskId, collect: &Collect, deadline: Instant) -> Seen {
    let interval = Duration::from_secs_f64(collect.interval_ms / 1000.0);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Seen::Lost;
        }
        let wait = match collect.method {
            CollectMethod::Poll => None,
            CollectMethod::Fastest => Some(remaining.min(MAX_SERVER_WAIT)),
        };
        let seen = match client.result(task_id, wait).await {
            Ok(answer) => final_status(answer.status),
            Err(_) => None,
        };
        match seen {
            Some(seen) => return seen,
            None if collect.method == CollectMethod::Poll => tokio::time::sleep(interval).await,
            None => {}
        }
    }
}

/// One `POST /results` stream for `tasks`: calls `on_final` with each task that is final, as
/// its line arrives. A failed request ends early; the caller retries what is left.
async fn stream_results(
    client: &Client,
    tasks: &[TaskId],
    wait: Duration,
    mut on_final: impl FnMut(TaskId, Seen),
) {
    let Ok(mut lines) = client.results(tasks, Some(wait)).await else {
        return;
    };
    while let Some(line) = lines.next_line().await {
        if let Ok(ResultLine::Task(answer)) = line
            && let Some(seen) = final_status(answer.status)
        {
            on_final(answer.task_id, seen);
        }
    }
}

/// A submitted task, as its collector follows it.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub id: TaskId,
    /// Where its latency counts from: when it was sent, or (open loop) scheduled.
    pub since: Instant,
    /// When its submission request was sent.
    pub sent: Instant,
}

/// Most tasks per run whose timelines are fetched for the overhead breakdown.
const MAX_SAMPLES: usize = 1000;

/// Shared tallies of one run (of the platform, or of the floor).
pub struct Tally {
    completed: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    last_done: Mutex<Option<Instant>>,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// Every `sample_every`-th final task, for the breakdown.
    samples: Mutex<Vec<Sample>>,
    sample_every: u64,
    /// A moment on both clocks, to turn instants into wall time (the system's timestamps).
    origin: (Instant, u64),
    progress: ProgressBar,
}

impl Tally {
    /// Tallies for a run of `tasks` tasks (0: unknown), shown on `progress`.
    pub fn new(tasks: u64, progress: ProgressBar) -> Self {
        Self {
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            last_done: Mutex::new(None),
            latency: Mutex::new(new_histogram()),
            samples: Mutex::new(Vec::new()),
            sample_every: tasks.div_ceil(MAX_SAMPLES as u64).max(1),
            origin: (Instant::now(), now_micros()),
            progress,
        }
    }

    /// The run these tallies make, from `started` to the last final task.
    pub fn finish(&self, started: Instant) -> Run {
        self.progress.finish();
        let last = self
            .last_done
            .lock()
            .expect("tally lock")
            .unwrap_or_else(Instant::now);
        let latency = self.latency.lock().expect("tally lock").clone();
        let samples = std::mem::take(&mut *self.samples.lock().expect("tally lock"));
        Run {
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            makespan_s: last.duration_since(started).as_secs_f64(),
            latency,
            samples,
        }
    }

    pub fn record(&self, seen: Seen, task: &Submitted) {
        let now = Instant::now();
        let n = match seen {
            Seen::Completed => self.completed.fetch_add(1, Ordering::Relaxed),
            Seen::Failed => self.failed.fetch_add(1, Ordering::Relaxed),
            Seen::Lost => return self.record_lost(),
        };
        let micros = u64::try_from(now.duration_since(task.since).as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .latency
            .lock()
            .expect("tally lock")
            .record(micros.max(1));
        {
            let mut last = self.last_done.lock().expect("tally lock");
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        // The samples' lock only for the tasks that may be sampled, not on every result.
        if seen == Seen::Completed && n % self.sample_every == 0 {
            let mut samples = self.samples.lock().expect("tally lock");
            if samples.len() < MAX_SAMPLES {
                samples.push(Sample {
                    task_id: task.id,
                    sent_us: self.wall_us(task.sent),
                    seen_us: self.wall_us(now),
                });
            }
        }
        self.progress.inc(1);
    }

    pub fn record_lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.progress.inc(1);
    }

    fn wall_us(&self, at: Instant) -> u64 {
        let (origin, origin_us) = self.origin;
        let offset = u64::try_from(at.saturating_duration_since(origin).as_micros()).unwrap_or(0);
        origin_us + offset
    }
}

/// What every submitter and collector of one run shares.
struct Session {
    client: Client,
    tally: Arc<Tally>,
    function_id: FunctionId,
    params: Arc<str>,
    collect: Collect,
    /// A task not final this long after `since` counts as lost.
    timeout: Duration,
}

impl Session {
    /// Submits `n` tasks (one request either way); those not accepted count as lost.
    async fn submit(&self, n: usize, since: Instant) -> Vec<Submitted> {
        let sent = Instant::now();
        let ids: Vec<TaskId> = if n == 1 {
            self.client
                .execute(self.function_id, &self.params)
                .await
                .map(|answer| answer.task_id)
                .into_iter()
                .collect()
        } else {
            let payloads = vec![self.params.to_string(); n];
            self.client
                .execute_batch(self.function_id, payloads)
                .await
                .map(|answer| answer.task_ids)
                .unwrap_or_default()
        };
        for _ in ids.len()..n {
            self.tally.record_lost();
        }
        ids.into_iter()
            .map(|id| Submitted { id, since, sent })
            .collect()
    }

    /// Waits for `task` and records it.
    async fn collect(&self, task: &Submitted) {
        let seen = wait(
            &self.client,
            task.id,
            &self.collect,
            task.since + self.timeout,
        )
        .await;
        self.tally.record(seen, task);
    }

    /// Follows `tasks` through `POST /results` streams until each is final or out of time,
    /// recording each as it is seen.
    async fn collect_many(&self, tasks: Vec<Submitted>) {
        let Some(deadline) = tasks.iter().map(|t| t.since).max() else {
            return;
        };
        let deadline = deadline + self.timeout;
        let mut waiting: HashMap<TaskId, Submitted> =
            tasks.into_iter().map(|t| (t.id, t)).collect();
        while !waiting.is_empty() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let ids: Vec<TaskId> = waiting.keys().copied().collect();
            let wait = remaining.min(MAX_SERVER_WAIT);
            stream_results(&self.client, &ids, wait, |id, seen| {
                if let Some(task) = waiting.remove(&id) {
                    self.tally.record(seen, &task);
                }
            })
            .await;
        }
        for _ in waiting.into_values() {
            self.tally.record_lost();
        }
    }

    /// One submit-then-collect.
    async fn one(&self, since: Instant) {
        for task in self.submit(1, since).await {
            self.collect(&task).await;
        }
    }
}

/// Collects the tasks sent on `tasks`: with the fastest method, whatever has arrived together
/// is followed by one `POST /results` stream; with polling, each task is polled on its own.
async fn collector(
    session: Arc<Session>,
    waiters: Arc<Semaphore>,
    mut tasks: mpsc::UnboundedReceiver<Submitted>,
) {
    let mut collectors = tokio::task::JoinSet::new();
    while let Some(first) = tasks.recv().await {
        let permit = waiters
            .clone()
            .acquire_owned()
            .await
            .expect("open semaphore");
        let session = session.clone();
        if session.collect.method == CollectMethod::Poll {
            collectors.spawn(async move {
                session.collect(&first).await;
                drop(permit);
            });
            continue;
        }
        let mut group = vec![first];
        let window = Duration::from_secs_f64(session.collect.window_ms / 1000.0);
        let until = tokio::time::Instant::now() + window;
        while group.len() < MAX_STREAM_TASKS {
            match tasks.try_recv() {
                Ok(task) => group.push(task),
                Err(_) if window.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(until, tasks.recv()).await {
                    Ok(Some(task)) => group.push(task),
                    _ => break,
                },
            }
        }
        collectors.spawn(async move {
            session.collect_many(group).await;
            drop(permit);
        });
    }
    while collectors.join_next().await.is_some() {}
}

/// Spawns `load.clients` loops onto `handles`, each running `one` task after another until
/// `tasks` have started or, with `load.duration_s`, until that long after `started` (no task
/// starts after it).
pub fn spawn_closed_loops<F, Fut>(
    handles: &mut tokio::task::JoinSet<()>,
    load: &Load,
    started: Instant,
    tasks: u64,
    one: F,
) where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let until = load
        .duration_s
        .map(|d| started + Duration::from_secs_f64(d));
    let next = Arc::new(AtomicU64::new(0));
    for _ in 0..load.clients {
        let (next, one) = (next.clone(), one.clone());
        handles.spawn(async move {
            loop {
                let more = match until {
                    Some(until) => Instant::now() < until,
                    None => next.fetch_add(1, Ordering::Relaxed) < tasks,
                };
                if !more {
                    break;
                }
                one().await;
            }
        });
    }
}

/// Runs `tasks` tasks of `function_id` with `params` in the shape `load`, collecting as
/// `collect` says. `submitted`, if given, is told once every task is submitted (burst only).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    function_id: &FunctionId,
    params: &str,
    tasks: u64,
    load: &Load,
    collect: &Collect,
    progress: ProgressBar,
    submitted: Option<oneshot::Sender<()>>,
) -> Run {
    let tally = Arc::new(Tally::new(tasks, progress));
    let started = Instant::now();
    let session = Arc::new(Session {
        client: client.clone(),
        tally: tally.clone(),
        function_id: *function_id,
        params: params.into(),
        collect: collect.clone(),
        timeout: Duration::from_secs_f64(collect.timeout_s),
    });
    let waiters = Arc::new(Semaphore::new(MAX_WAITERS));
    let mut handles = tokio::task::JoinSet::new();

    match load.shape {
        Shape::Closed => {
            let session = session.clone();
            spawn_closed_loops(&mut handles, load, started, tasks, move || {
                let session = session.clone();
                async move { session.one(Instant::now()).await }
            });
        }
        Shape::Burst => {
            // `clients` submitters; results are followed as soon as tasks are submitted, so
            // they are seen when ready, not in submission order.
            let next = Arc::new(AtomicU64::new(0));
            let batch = u64::from(load.batch_size.max(1));
            let (tx, rx) = mpsc::unbounded_channel::<Submitted>();
            let mut submitters = tokio::task::JoinSet::new();
            for _ in 0..load.clients {
                let (next, session, tx) = (next.clone(), session.clone(), tx.clone());
                submitters.spawn(async move {
                    loop {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        if first >= tasks {
                            break;
                        }
                        let n = usize::try_from(batch.min(tasks - first)).unwrap_or(1);
                        for task in session.submit(n, Instant::now()).await {
                            let _ = tx.send(task);
                        }
                    }
                });
            }
            drop(tx);
            handles.spawn(collector(session.clone(), waiters.clone(), rx));
            while submitters.join_next().await.is_some() {}
            if let Some(submitted) = submitted {
                let _ = submitted.send(());
            }
        }
        Shape::Open => {
            // Each task is submitted on its own at its scheduled time; results are followed
            // together by the collector.
            let rate = load.rate.unwrap_or(1.0);
            let (tx, rx) = mpsc::unbounded_channel::<Submitted>();
            handles.spawn(collector(session.clone(), waiters.clone(), rx));
            for i in 0..tasks {
                let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let permit = waiters
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("open semaphore");
                let (session, tx) = (session.clone(), tx.clone());
                handles.spawn(async move {
                    for task in session.submit(1, scheduled).await {
                        let _ = tx.send(task);
                    }
                    drop(permit);
                });
            }
        }
    }
    while handles.join_next().await.is_some() {}
    tally.finish(started)
}
