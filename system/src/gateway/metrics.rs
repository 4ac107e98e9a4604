//! The gateway's `GET /metrics` (Prometheus): requests by route and status and their latency,
//! counted by a layer on every matched route, and the queue read from Redis at scrape time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::metrics::{self, CounterVec, Exposition, HistogramVec};

/// What the gateway counts.
#[derive(Default)]
pub struct GatewayMetrics {
    requests: CounterVec,
    latency: HistogramVec,
}

/// Counts a request to a matched route, and the time until its answer's head.
pub async fn track(
    State(metrics): State<Arc<GatewayMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("?", MatchedPath::as_str)
    );
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics.requests.inc(
        &metrics::labels(&[("route", &route), ("status", &status)]),
        1,
    );
    metrics
        .latency
        .observe(&metrics::labels(&[("route", &route)]), started.elapsed());
    response
}

/// Counters, gauges and latency histograms in the Prometheus text format: requests by route
/// and status, request latency by route, and the queue depth read from Redis. 503 (JSON) if
/// Redis cannot be read.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The Prometheus text exposition (format 0.0.4).", body = String, content_type = "text/plain"),
    ),
)]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let queue = state.store.queue_stats().await?;
    let m = &state.metrics;
    let text = Exposition::default()
        .gauge(
            "faas_queue_waiting_tasks",
            "Tasks in the durable queue that no dispatcher has taken yet.",
            queue.waiting,
        )
        .gauge(
            "faas_queue_held_tasks",
            "Tasks dispatchers have taken that are not final yet (in flight).",
            queue.held,
        )
        .gauge(
            "faas_gateway_result_waiters",
            "Requests waiting for results (long polls and result streams).",
            state.waiters.registrations() as u64,
        )
        .counters(
            "faas_http_requests_total",
            "HTTP requests answered, by route and status.",
            &m.requests,
        )
        .histograms(
            "faas_http_request_duration_seconds",
            "Time from a request to its answer's head, by route.",
            &m.latency,
        )
        .finish();
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
