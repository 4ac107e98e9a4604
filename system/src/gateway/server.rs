//! The gateway's connection loop: hyper's HTTP/1 on each accepted connection, with the
//! limits `axum::serve` cannot set, so that no client can hold the gateway's resources for
//! free.
//!
//! - A client must send each request's headers within [`GatewayConfig::header_read_timeout`]
//!   (a slowloris that trickles them is dropped); the same timer closes idle keep-alive
//!   connections.
//! - At most [`GatewayConfig::max_connections`] connections are served at once; one more is
//!   answered `503` with a JSON body and closed, never left waiting unanswered (beyond
//!   [`MAX_REFUSING`] such answers in progress, it is closed at once).
//! - On shutdown the listener stops, every connection finishes the request in hand and
//!   closes, for at most [`DRAIN_TIMEOUT`].
//!
//! Request bodies have their own deadline (see `limits`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::GatewayConfig;

/// Refusals answered at once; a flood beyond them is closed without an answer, so refusing
/// never costs more descriptors than this.
const MAX_REFUSING: usize = 64;

/// How long requests in progress (long polls included) may finish after a shutdown request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole answer to a connection beyond the cap: 503 with the usual JSON error body.
fn busy(limit: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("too many open connections to the gateway (at most {limit}); retry shortly"),
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(config.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let tcp = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors and the like: wait for some to be closed.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Streamed answers (`POST /results`) write their header and lines separately: without
        // TCP_NODELAY each small write after the first waits for a delayed ACK (40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(turn) = refusing.clone().try_acquire_owned() {
                let limit = config.max_connections;
                tokio::spawn(async move {
                    refuse(tcp, limit).await;
                    drop(turn);
                });
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "requests still open after the drain timeout; stopping anyway");
        }
    }
    Ok(())
}

/// Answers a connection beyond the cap of `limit` with [`busy`] and closes it.
async fn refuse(mut tcp: TcpStream, limit: usize) {
    tracing::debug!(limit, "connection limit reached; refusing a connection");
    let answered = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(&busy(limit)).await?;
        tcp.shutdown().await
    })
    .await;
    if let Ok(Err(e)) = answered {
        tracing::debug!(error = %e, "cannot answer a refused connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let answer = busy(7);
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("at most 7"));
    }
}
