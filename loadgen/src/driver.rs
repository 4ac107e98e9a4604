//! Drives one measured run against a live system: submissions in the configured load shape,
//! result collection in the configured way, every task's latency into a histogram. The hot
//! loop is Rust; Python only runs inside the system.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::{Mutex, Semaphore};

use crate::experiment::{Collect, CollectMethod, Load, Shape};
use crate::stats::{Run, new_histogram};

/// Most results awaited at once; beyond this, waiting tasks queue in loadgen (their latency
/// still counts from their submission or scheduled time).
const MAX_WAITERS: usize = 2048;

/// The gateway, as a client sees it.
#[derive(Clone)]
pub struct Target {
    http: reqwest::Client,
    base: String,
}

/// How one task ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Completed,
    Failed,
    Lost,
}

impl Target {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(MAX_WAITERS)
            .tcp_nodelay(true)
            .build()
            .expect("http client");
        Self {
            http,
            base: base.to_owned(),
        }
    }

    pub async fn register(&self, payload: &str) -> anyhow::Result<String> {
        let reply: serde_json::Value = self
            .http
            .post(format!("{}/register_function", self.base))
            .json(&serde_json::json!({"name": "loadgen", "payload": payload}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        reply["function_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no function_id in {reply}"))
    }

    /// POSTs `body` to `path`; the JSON reply, or `None` on any failure (counted as lost).
    async fn post(&self, path: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        response.ok()?.json().await.ok()
    }

    async fn submit(&self, function_id: &str, params: &str) -> Option<String> {
        let body = serde_json::json!({"function_id": function_id, "payload": params});
        let reply = self.post("/execute_function", &body).await?;
        reply["task_id"].as_str().map(str::to_owned)
    }

    /// Submits `n` tasks in one `POST /execute_batch`.
    async fn submit_batch(&self, function_id: &str, params: &str, n: usize) -> Vec<String> {
        let body = serde_json::json!({"function_id": function_id, "payloads": vec![params; n]});
        let reply = self.post("/execute_batch", &body).await;
        reply
            .and_then(|r| r["task_ids"].as_array().cloned())
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the task is final or `deadline` passes.
    async fn wait(&self, task_id: &str, collect: &Collect, deadline: Instant) -> Seen {
        let interval = Duration::from_secs_f64(collect.interval_ms / 1000.0);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Seen::Lost;
            }
            let url = match collect.method {
                CollectMethod::Poll => format!("{}/result/{task_id}", self.base),
                CollectMethod::Fastest => format!(
                    "{}/result/{task_id}?wait={:.3}",
                    self.base,
                    remaining.as_secs_f64().min(30.0)
                ),
            };
            let status = match self.http.get(url).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            match status.as_deref() {
                Some("COMPLETED") => return Seen::Completed,
                Some("FAILED") => return Seen::Failed,
                _ if collect.method == CollectMethod::Poll => tokio::time::sleep(interval).await,
                _ => {}
            }
        }
    }
}

/// Shared tallies of one run.
struct Tally {
    completed: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    last_done: Mutex<Option<Instant>>,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    progress: ProgressBar,
}

impl Tally {
    async fn record(&self, seen: Seen, since: Instant) {
        let now = Instant::now();
        match seen {
            Seen::Completed => self.completed.fetch_add(1, Ordering::Relaxed),
            Seen::Failed => self.failed.fetch_add(1, Ordering::Relaxed),
            Seen::Lost => self.lost.fetch_add(1, Ordering::Relaxed),
        };
        if seen != Seen::Lost {
            let micros = u64::try_from(now.duration_since(since).as_micros()).unwrap_or(u64::MAX);
            let _ = self.latency.lock().await.record(micros.max(1));
            let mut last = self.last_done.lock().await;
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        self.progress.inc(1);
    }
}

/// What every submitter and collector of one run shares.
struct Session {
    target: Target,
    tally: Arc<Tally>,
    function_id: Arc<str>,
    params: Arc<str>,
    collect: Collect,
    /// A task not final this long after `since` counts as lost.
    timeout: Duration,
}

impl Session {
    /// Submits `n` tasks (one request either way); those not accepted count as lost.
    async fn submit(&self, n: usize, sent: Instant) -> Vec<String> {
        let ids: Vec<String> = if n == 1 {
            self.target
                .submit(&self.function_id, &self.params)
                .await
                .into_iter()
                .collect()
        } else {
            self.target
                .submit_batch(&self.function_id, &self.params, n)
                .await
        };
        for _ in ids.len()..n {
            self.tally.record(Seen::Lost, sent).await;
        }
        ids
    }

    /// Waits for `task` and records it; `since` is when it was (or should have been) sent.
    async fn collect(&self, task: &str, since: Instant) {
        let seen = self
            .target
            .wait(task, &self.collect, since + self.timeout)
            .await;
        self.tally.record(seen, since).await;
    }

    /// One submit-then-collect.
    async fn one(&self, since: Instant) {
        for task in self.submit(1, since).await {
            self.collect(&task, since).await;
        }
    }
}

/// Runs `tasks` tasks of `function_id` with `params` in the shape `load`, collecting as
/// `collect` says.
pub async fn run(
    target: &Target,
    function_id: &str,
    params: &str,
    tasks: u64,
    load: &Load,
    collect: &Collect,
    progress: ProgressBar,
) -> Run {
    let tally = Arc::new(Tally {
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        last_done: Mutex::new(None),
        latency: Mutex::new(new_histogram()),
        progress,
    });
    let started = Instant::now();
    let session = Arc::new(Session {
        target: target.clone(),
        tally: tally.clone(),
        function_id: function_id.into(),
        params: params.into(),
        collect: collect.clone(),
        timeout: Duration::from_secs_f64(collect.timeout_s),
    });
    let waiters = Arc::new(Semaphore::new(MAX_WAITERS));
    let mut handles = tokio::task::JoinSet::new();

    match load.shape {
        Shape::Closed => {
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..load.clients {
                let (next, session) = (next.clone(), session.clone());
                handles.spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < tasks {
                        session.one(Instant::now()).await;
                    }
                });
            }
        }
        Shape::Burst => {
            // `clients` submitters; each task's wait runs on its own, so results are seen
            // as soon as they are ready, not in submission order.
            let next = Arc::new(AtomicU64::new(0));
            let batch = u64::from(load.batch_size.max(1));
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
            for _ in 0..load.clients {
                let (next, session, tx) = (next.clone(), session.clone(), tx.clone());
                handles.spawn(async move {
                    loop {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        if first >= tasks {
                            break;
                        }
                        let n = usize::try_from(batch.min(tasks - first)).unwrap_or(1);
                        let sent = Instant::now();
                        for task in session.submit(n, sent).await {
                            let _ = tx.send((task, sent));
                        }
                    }
                });
            }
            drop(tx);
            let (session, waiters) = (session.clone(), waiters.clone());
            handles.spawn(async move {
                let mut collectors = tokio::task::JoinSet::new();
                while let Some((task, sent)) = rx.recv().await {
                    let permit = waiters
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("open semaphore");
                    let session = session.clone();
                    collectors.spawn(async move {
                        session.collect(&task, sent).await;
                        drop(permit);
                    });
                }
                while collectors.join_next().await.is_some() {}
            });
        }
        Shape::Open => {
            let rate = load.rate.unwrap_or(1.0);
            for i in 0..tasks {
                let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let permit = waiters
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("open semaphore");
                let session = session.clone();
                handles.spawn(async move {
                    session.one(scheduled).await;
                    drop(permit);
                });
            }
        }
    }
    while handles.join_next().await.is_some() {}
    tally.progress.finish();
    let last = tally.last_done.lock().await.unwrap_or_else(Instant::now);
    let latency = tally.latency.lock().await.clone();
    Run {
        completed: tally.completed.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        lost: tally.lost.load(Ordering::Relaxed),
        makespan_s: last.duration_since(started).as_secs_f64(),
        latency,
    }
}
