//! The dispatcher's own metrics and its small HTTP server (`--http ADDR`): `GET /health` and
//! `GET /metrics` (Prometheus) for the tasks it holds, its executors or workers, outcomes by
//! status, and each phase of a task's life.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, CounterVec, Exposition, Gauge, HistogramVec};
use crate::store::Store;
use crate::task::TaskStatus;

/// What a dispatcher counts.
#[derive(Default)]
pub struct DispatcherMetrics {
    /// Outcomes recorded, by final status.
    finished: CounterVec,
    /// Tasks put back on the queue after their worker or executor was lost.
    requeued: CounterVec,
    phases: HistogramVec,
    pub in_flight: Gauge,
    /// Executors this dispatcher feeds (its pool, or its live workers' capacity).
    pub executors: Gauge,
    /// Live remote workers (0 in local mode).
    pub workers: Gauge,
    /// Why the dispatcher cannot record or start tasks right now (Redis refusing or away),
    /// while it retries; `None` while it can.
    degraded: std::sync::Mutex<Option<String>>,
    /// Whether `degraded` holds a reason: every store operation that succeeds clears it, and
    /// this keeps that from taking the lock when there is nothing to clear.
    is_degraded: std::sync::atomic::AtomicBool,
}

/// The phases of a task, as timestamps (µs) where known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline {
    pub submitted: Option<u64>,
    pub dispatched: Option<u64>,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub recorded: Option<u64>,
}

impl DispatcherMetrics {
    /// A recorded outcome with its timeline: queue (submitted → dispatched), dispatch
    /// (→ started on an executor), run (→ finished), record (→ stored final).
    pub fn finished(&self, status: TaskStatus, t: &Timeline) {
        self.finished
            .inc(&metrics::labels(&[("status", status.as_str())]), 1);
        let phases = [
            ("queue", t.submitted, t.dispatched),
            ("dispatch", t.dispatched, t.started),
            ("run", t.started, t.finished),
            ("record", t.finished, t.recorded),
        ];
        for (phase, from, to) in phases {
            if let (Some(from), Some(to)) = (from, to) {
                self.phases.observe(
                    &metrics::labels(&[("phase", phase)]),
                    Duration::from_micros(to.saturating_sub(from)),
                );
            }
        }
    }

    /// A lost task handled: `outcome` is what the store did (requeued, failed, ...).
    pub fn requeued(&self, outcome: &str) {
        self.requeued
            .inc(&metrics::labels(&[("outcome", outcome)]), 1);
    }

    /// Notes why store operations keep failing (`None`: they succeed again).
    pub fn set_degraded(&self, reason: Option<String>) {
        use std::sync::atomic::Ordering;
        if reason.is_none() && !self.is_degraded.load(Ordering::Acquire) {
            return;
        }
        let mut degraded = self
            .degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.is_degraded.store(reason.is_some(), Ordering::Release);
        *degraded = reason;
    }

    /// Why the dispatcher cannot do its work right now, if it cannot.
    #[must_use]
    pub fn degraded(&self) -> Option<String> {
        self.degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn render(&self) -> String {
        Exposition::default()
            .gauge(
                "faas_dispatcher_degraded",
                "1 while the dispatcher cannot record or start tasks (Redis refusing or away).",
                u64::from(self.degraded().is_some()),
            )
            .gauge(
                "faas_dispatcher_tasks_in_flight",
                "Tasks this dispatcher has started and not yet recorded.",
                self.in_flight.get(),
            )
            .gauge(
                "faas_dispatcher_executors",
                "Executors this dispatcher feeds (its pool, or its live workers' executors).",
                self.executors.get(),
            )
            .gauge(
                "faas_dispatcher_workers_alive",
                "Remote workers registered and alive (0 in local mode).",
                self.workers.get(),
            )
            .counters(
                "faas_dispatcher_tasks_finished_total",
                "Outcomes recorded by this dispatcher, by final status.",
                &self.finished,
            )
            .counters(
                "faas_dispatcher_lost_tasks_total",
                "Tasks whose worker or executor was lost, by what happened to them.",
                &self.requeued,
            )
            .histograms(
                "faas_task_phase_seconds",
                "Time tasks spent in each phase: queue, dispatch, run, record.",
                &self.phases,
            )
            .finish()
    }
}

#[derive(Clone)]
struct HttpState {
    store: Store,
    metrics: Arc<DispatcherMetrics>,
    consumer: Arc<str>,
}

/// Serves `/health` and `/metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    metrics: Arc<DispatcherMetrics>,
    consumer: Arc<str>,
    stop: CancellationToken,
) {
    tracing::info!(addr = ?listener.local_addr().ok(), "dispatcher http listening");
    let state = HttpState {
        store,
        metrics,
        consumer,
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "dispatcher http server failed");
    }
}

/// 200 with what this dispatcher holds while Redis answers and takes its writes; 503 otherwise:
/// `degraded` with the reason while its writes are refused.
async fn health(State(state): State<HttpState>) -> Response {
    let m = &state.metrics;
    if let Some(reason) = m.degraded() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "degraded",
                "reason": reason,
                "consumer": &*state.consumer,
                "tasks_in_flight": m.in_flight.get(),
            })),
        )
            .into_response();
    }
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({
            "status": "ok",
            "consumer": &*state.consumer,
            "tasks_in_flight": m.in_flight.get(),
            "executors": m.executors.get(),
            "workers_alive": m.workers.get(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": format!("the task store is unavailable: {e}")})),
        )
            .into_response(),
    }
}

/// The exposition, with the queue read from Redis (left out while Redis is away).
async fn render(State(state): State<HttpState>) -> Response {
    let mut text = String::new();
    if let Ok(queue) = state.store.queue_stats().await {
        text = Exposition::default()
            .gauge(
                "faas_queue_waiting_tasks",
                "Tasks in the durable queue that no dispatcher has taken yet.",
                queue.waiting,
            )
            .finish();
    }
    text.push_str(&state.metrics.render());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
