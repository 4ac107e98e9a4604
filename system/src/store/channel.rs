//! Following a pub/sub channel of task ids (completions, cancellations) with a subscription
//! that survives connection loss. A message names one task id, or several separated by spaces
//! (a batch of completions recorded together).

use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::task::TaskId;

/// What a follower hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A subscription (re)started: announcements made before it were missed.
    Subscribed,
    /// A task id was announced (a message naming several is heard as one each).
    Task(TaskId),
}

/// Follows `channel` until `stop` is cancelled or `on` returns `false`, resubscribing (after
/// a short pause) whenever the connection is lost.
pub async fn follow_task_ids(
    redis_url: &str,
    channel: &str,
    stop: &CancellationToken,
    mut on: impl FnMut(Heard) -> bool,
) {
    loop {
        match subscribe_once(redis_url, channel, stop, &mut on).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, channel, "subscription lost; resubscribing"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn subscribe_once(
    redis_url: &str,
    channel: &str,
    stop: &CancellationToken,
    on: &mut impl FnMut(Heard) -> bool,
) -> Result<(), super::StoreError> {
    // A Sentinel address names the primary anew at each subscription, and is asked again
    // every second meanwhile: after a failover the subscription moves to the new primary even
    // if the old one still answers.
    let address = super::RedisAddress::parse(redis_url)?;
    let url = address.current().await?;
    let client = redis::Client::open(url.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    if !on(Heard::Subscribed) {
        return Ok(());
    }
    let recheck_every = address
        .watch_every()
        .map_or(Duration::from_secs(3600), |every| every * 4);
    let mut recheck = tokio::time::interval(recheck_every);
    recheck.tick().await;
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = recheck.tick(), if address.watch_every().is_some() => {
                if address.current().await.is_ok_and(|now| now != url) {
                    let moved = redis::RedisError::from((redis::ErrorKind::Io, "the Redis primary changed"));
                    return Err(moved.into());
                }
            }
            message = messages.next() => {
                let Some(message) = message else {
                    let closed = redis::RedisError::from((redis::ErrorKind::Io, "subscription closed"));
                    return Err(closed.into());
                };
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                for task in payload.split(' ').filter_map(|id| id.parse::<TaskId>().ok()) {
                    if !on(Heard::Task(task)) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestRedis;

    #[tokio::test]
    async fn a_message_naming_several_tasks_is_heard_as_one_each() {
        let redis = TestRedis::start().await;
        let url = redis.url();
        let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let follower = tokio::spawn(async move {
            follow_task_ids(&url, "test-channel", &stop, |h| tx.send(h).is_ok()).await;
        });
        assert_eq!(heard.recv().await, Some(Heard::Subscribed));
        let (a, b) = (TaskId::new_random(), TaskId::new_random());
        let _: i64 = redis::cmd("PUBLISH")
            .arg("test-channel")
            .arg(format!("{a} {b}"))
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        assert_eq!(heard.recv().await, Some(Heard::Task(a)));
        assert_eq!(heard.recv().await, Some(Heard::Task(b)));
        drop(heard);
        follower.abort();
    }
}
