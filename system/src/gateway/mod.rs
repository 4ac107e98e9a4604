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
//! - `submissions`: group commit of concurrent single submissions.

mod auth;
mod error;
mod handlers;
mod json;
mod metrics;
mod openapi;
mod result_stream;
mod server;
mod submissions;
pub mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tokio_util::sync::CancellationToken;

use crate::store::Store;
pub use error::ApiError;
use handlers::{functions, results, service, tasks};
use json::BodyRules;

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
    /// Single submissions, grouped under load.
    submissions: submissions::Submissions,
    metrics: Arc<metrics::GatewayMetrics>,
}

impl AppState {
    /// Connects to Redis and starts following completions (until `shutdown`) for clients that
    /// wait on results.
    pub async fn connect(
        redis_url: &str,
        config: &GatewayConfig,
        shutdown: &CancellationToken,
    ) -> Result<Self, crate::store::StoreError> {
        let store = Store::connect(redis_url)
            .await?
            .with_retention(config.retention)
            .with_replicas(config.replicas);
        let waiters = waiters::Waiters::new(config.max_waiting);
        tokio::spawn(
            waiters
                .clone()
                .listen(redis_url.to_owned(), shutdown.clone()),
        );
        Ok(Self {
            submissions: submissions::Submissions::start(store.clone()),
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
    /// A request's headers must arrive within this (else the connection is closed), and
    /// an idle keep-alive connection is closed after it.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this, else 408.
    pub body_read_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Requests waiting for results at once (`?wait=`, `POST /results` with a wait); one
    /// more is answered 503.
    pub max_waiting: usize,
    /// How long a task cancelled here is kept; `None`: forever.
    pub retention: Option<Duration>,
    /// Replicas a submission must reach (Redis `WAIT`) before it is acknowledged.
    pub replicas: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            auth_token: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_waiting: 2048,
            retention: Some(crate::store::DEFAULT_RETENTION),
            replicas: 0,
        }
    }
}

/// The gateway's routes.
pub fn router(state: AppState, config: &GatewayConfig) -> Router {
    Router::new()
        .route("/register_function", post(functions::register_function))
        .route(
            "/functions/{function_id}",
            delete(functions::delete_function),
        )
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
        .layer(axum::Extension(BodyRules {
            limit: config.max_body_bytes,
            timeout: config.body_read_timeout,
        }))
        // Outermost: a request without the token touches nothing, not even its body.
        .layer(axum::middleware::from_fn_with_state(
            auth::Token::new(config.auth_token.as_deref()),
            auth::require_token,
        ))
        .with_state(state)
}

pub use server::DRAIN_TIMEOUT;

/// Serves the gateway on `listener` until `shutdown` is cancelled, then finishes the requests
/// in progress, for at most [`DRAIN_TIMEOUT`]; with the limits of `config` (see `server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "gateway listening");
    crate::readiness::notify(crate::readiness::Ready::GatewayListening);
    server::serve(listener, router(state, config), config, shutdown).await
}
