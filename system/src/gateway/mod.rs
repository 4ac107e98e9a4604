//! The REST gateway: the public contract over HTTP, backed by the [`Store`].
//!
//! [`router`] builds the axum app (so tests can drive it without a socket); [`serve`] runs it
//! until shutdown. The bodies it takes and answers are the [`crate::api`] types.
//!
//! - `handlers/`: the endpoints, one file per group of routes; `result_stream`: the state
//!   machine behind `POST /results`.
//! - `openapi`: the OpenAPI document built from the handlers' annotations, and Swagger UI.
//! - `auth`, `json`, `error`, `metrics`: the token check, the JSON body extractor, the error
//!   answers and `GET /metrics`.
//! - [`waiters`]: requests waiting for results, woken by the store's completion channel.

mod auth;
mod error;
mod handlers;
mod json;
mod metrics;
mod openapi;
mod result_stream;
pub mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
pub use error::ApiError;
use handlers::{functions, results, service, tasks};
use json::BodyLimit;

/// Where the gateway listens unless told otherwise: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// The default request body limit. A 10 MB argument is about 13.4 MB as base64.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What the gateway needs to answer requests.
#[derive(Clone)]
pub struct AppState {
    /// Where functions and tasks live.
    pub store: Store,
    /// Requests waiting for results.
    pub waiters: waiters::Waiters,
    metrics: Arc<metrics::GatewayMetrics>,
}

impl AppState {
    /// Connects to Redis and starts following completions (until `shutdown`) for clients that
    /// wait on results.
    pub async fn connect(
        redis_url: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self, crate::store::StoreError> {
        let store = Store::connect(redis_url).await?;
        let waiters = waiters::Waiters::default();
        tokio::spawn(
            waiters
                .clone()
                .listen(redis_url.to_owned(), shutdown.clone()),
        );
        Ok(Self {
            store,
            waiters,
            metrics: Arc::default(),
        })
    }
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// When set, every request must carry `Authorization: Bearer <token>` or gets 401.
    pub auth_token: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            auth_token: None,
        }
    }
}

/// The gateway's routes.
pub fn router(state: AppState, config: &GatewayConfig) -> Router {
    Router::new()
        .route("/register_function", post(functions::register_function))
        .route("/execute_function", post(tasks::execute_function))
        .route("/execute_batch", post(tasks::execute_batch))
        .route("/status/{task_id}", get(tasks::status))
        .route("/result/{task_id}", get(tasks::result))
        .route("/results", post(results::results))
        .route("/task/{task_id}", get(tasks::task))
        .route("/cancel/{task_id}", post(tasks::cancel))
        .route("/health", get(service::health))
        .merge(openapi::routes())
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .fallback(service::no_route)
        .method_not_allowed_fallback(service::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::Extension(BodyLimit(config.max_body_bytes)))
        // Outermost: a request without the token touches nothing, not even its body.
        .layer(axum::middleware::from_fn_with_state(
            auth::Token::new(config.auth_token.as_deref()),
            auth::require_token,
        ))
        .with_state(state)
}

/// How long requests in progress (long polls included) may finish after a shutdown request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the gateway on `listener` until `shutdown` is cancelled, then finishes the requests
/// in progress, for at most [`DRAIN_TIMEOUT`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "gateway listening");
    crate::readiness::notify(crate::readiness::Ready::GatewayListening);
    // Streamed answers (`POST /results`) write their header and lines separately: without
    // TCP_NODELAY each small write after the first waits for a delayed ACK (40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router(state, config))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drain_limit = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = server => served,
        () = drain_limit => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "requests still open after the drain timeout; stopping anyway");
            Ok(())
        }
    }
}
