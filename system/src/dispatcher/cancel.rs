//! Cancellations of running tasks: the gateway records the cancellation and announces the task
//! on the cancel channel; every dispatcher follows it and stops the task if it holds it.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::channel::{Heard, follow_task_ids};
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
    follow_task_ids(
        &redis_url,
        keys::CANCEL_CHANNEL,
        &stop,
        |heard| match heard {
            Heard::Subscribed => true,
            Heard::Task(task) => cancels.send(task).is_ok(),
        },
    )
    .await;
}
