//! Recording what comes back from the transport: final outcomes in one Redis round trip per
//! batch (first write wins), lost tasks requeued while they have attempts left.

use tokio::sync::mpsc;

use super::core::Core;
use super::in_flight::InFlight;
use super::metrics::Timeline;
use super::{Transport, worker_failure_result};
use crate::protocol::Completion;
use crate::store::{FinalOutcome, FinishOutcome};
use crate::task::{TaskId, TaskOutcome, TaskStatus, now_micros};

/// Most completions recorded in one Redis round trip.
const RECORD_BATCH: usize = 256;

impl Core {
    /// Records `first` and whatever other completions are already waiting, in one round trip,
    /// then tells the transport which are settled (recorded now, or final already), so their
    /// workers may forget them.
    pub async fn record<T: Transport>(
        &mut self,
        first: Completion,
        more: &mut mpsc::UnboundedReceiver<Completion>,
        transport: &mut T,
    ) {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match more.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut settled = Vec::new();
        for done in batch {
            match done.outcome {
                TaskOutcome::Lost(reason) => {
                    if self.requeue_lost(done.task_id, &reason).await {
                        settled.push(done.task_id);
                    }
                }
                _ => {
                    let claim = self.in_flight.claim(done.task_id);
                    outcomes.push(final_outcome(done, claim));
                }
            }
        }
        let store = self.store.clone();
        let recorded = if outcomes.is_empty() {
            Some(Vec::new())
        } else {
            self.retry("record results", || store.finish_tasks(&outcomes))
                .await
        };
        if recorded.is_some() {
            settled.extend(outcomes.iter().map(|o| o.task_id));
        }
        if !settled.is_empty() {
            transport.recorded(settled).await;
        }
        let now = now_micros();
        for (i, outcome) in outcomes.iter().enumerate() {
            let held = self.in_flight.remove(outcome.task_id);
            match recorded.as_ref().map(|r| r[i]) {
                Some(FinishOutcome::AlreadyFinal | FinishOutcome::Missing) => {
                    tracing::debug!(task_id = %outcome.task_id, "late result dropped: task already final or gone");
                }
                Some(FinishOutcome::ClaimLost) => {
                    tracing::warn!(task_id = %outcome.task_id, "result dropped: this dispatcher lost the task (it was requeued while this dispatcher was away)");
                }
                Some(FinishOutcome::Recorded) => self.metrics.finished(
                    outcome.status,
                    &Timeline {
                        submitted: held.as_ref().and_then(|h| h.submitted_at),
                        dispatched: held.as_ref().map(|h| h.dispatched_at),
                        started: outcome.started_at,
                        finished: Some(outcome.finished_at),
                        recorded: Some(now),
                    },
                ),
                None => {}
            }
        }
    }

    /// A task whose worker was lost goes back on the queue, or fails once out of attempts.
    /// Returns whether that is settled (done, or not this dispatcher's to do).
    async fn requeue_lost(&mut self, task_id: TaskId, reason: &str) -> bool {
        let Some(InFlight { entry, .. }) = self.in_flight.remove(task_id) else {
            return true; // not ours (any more): whoever holds it decides
        };
        let failure = self.config.out_of_attempts(reason);
        let store = self.store.clone();
        let max_attempts = self.config.max_attempts();
        let outcome = self
            .retry("requeue a lost task", || {
                store.requeue_task(&entry, max_attempts, &failure)
            })
            .await;
        tracing::info!(%task_id, reason, ?outcome, "lost task handled");
        if let Some(outcome) = outcome {
            self.metrics.requeued(outcome.as_str());
        }
        outcome.is_some()
    }

    /// Fails a started task that never reached the transport (started from `entry_id`).
    pub async fn finish_now(&mut self, task_id: TaskId, entry_id: &str, outcome: TaskOutcome) {
        let done = Completion {
            task_id,
            outcome,
            started_at: None,
            finished_at: now_micros(),
            executor: None,
        };
        let store = self.store.clone();
        let claim = Some(entry_id.to_owned());
        let outcomes = [final_outcome(done, claim)];
        self.retry("record results", || store.finish_tasks(&outcomes))
            .await;
        // The transport never saw this task: its place is free again.
        self.capacity.task_done();
    }
}

/// The record a completion becomes, under `claim` (see [`FinalOutcome::claim`]): the one place
/// task outcomes map to statuses. (`Lost` only gets here if it is final; the core requeues it
/// instead while attempts remain.)
fn final_outcome(done: Completion, claim: Option<String>) -> FinalOutcome {
    let (status, result) = match done.outcome {
        TaskOutcome::Completed(value) => (TaskStatus::Completed, value),
        TaskOutcome::Raised(exception) => (TaskStatus::Failed, exception),
        TaskOutcome::WorkerFailure(message) | TaskOutcome::Lost(message) => {
            (TaskStatus::Failed, worker_failure_result(&message))
        }
    };
    FinalOutcome {
        task_id: done.task_id,
        status,
        result,
        started_at: done.started_at,
        finished_at: done.finished_at,
        executor: done.executor,
        claim,
    }
}
