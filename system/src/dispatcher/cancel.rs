//! Cancellations of running tasks: the gateway records the cancellation and announces the task
//! on the cancel channel; every dispatcher follows it and stops the task if it holds it.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::keys;
use crate::task::TaskId;

/// Forwards cancelled task ids to `cancels` until `stop`, resubscribing after connection loss.
/// A cancellation announced while this dispatcher was not subscribed is missed: the task's
/// record is final all the same, and whatever its executor reports later is dropped.
pub async fn follow(
    redis_url: String,
    cancels: mpsc::UnboundedSender<TaskId>,
    stop: CancellationToken,
) {
    loop {
        match subscribe_once(&redis_url, &cancels, &stop).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cancel subscription lost; resubscribing"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn subscribe_once(
    redis_url: &str,
    cancels: &mpsc::UnboundedSender<TaskId>,
    stop: &CancellationToken,
) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(keys::CANCEL_CHANNEL).await?;
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed")));
                };
                if let Ok(Ok(task)) = message.get_payload::<String>().map(|p| p.parse::<TaskId>())
                    && cancels.send(task).is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}
