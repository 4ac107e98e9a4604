//! The task state transitions after submission: start, finish (first write wins), cancel and
//! requeue. Each is one Lua script over a batch of tasks, called through `scripts`; the
//! single-task methods are batches of one.

use redis::Value;

use super::queue::QueueEntry;
use super::records::parse_status;
use super::scripts::{ScriptCall, Transition};
use super::{Store, StoreError, keys};
use crate::task::{FunctionId, TaskId, TaskStatus, now_micros};

/// What `start_task` decided about a received entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The task is now RUNNING; run it (or fail it, if its function was deleted).
    Started {
        function_id: FunctionId,
        params: String,
        attempt: u32,
        /// When the task was submitted (µs), for the queue-wait metric.
        submitted_at: Option<u64>,
        /// `false` once the function has been deleted: the task must not run.
        registered: bool,
    },
    /// Nothing to run: the task is gone, already final, or the entry was superseded.
    Dropped(&'static str),
}

/// How a task ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalOutcome {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub result: String,
    /// When the executor began running it (µs), if it did.
    pub started_at: Option<u64>,
    pub finished_at: u64,
    /// The executor that ran it (`worker/slot`), if one did.
    pub executor: Option<String>,
    /// The queue entry the recording dispatcher started the task from: its claim, which fences
    /// the write (see [`Store::finish_tasks`]). `None` for a result of a task it does not hold.
    pub claim: Option<String>,
}

/// What `finish_tasks` did with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    /// Recorded: the task is final with this outcome.
    Recorded,
    /// Not recorded: the task was already final (first write wins).
    AlreadyFinal,
    /// Not recorded: there is no such task.
    Missing,
    /// Not recorded: the claim was lost (the task was requeued and belongs to another
    /// attempt now).
    ClaimLost,
}

/// What `requeue_task` did with a lost task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueOutcome {
    /// Back on the queue for another attempt.
    Requeued,
    /// Out of attempts: FAILED with the given `WorkerFailure`.
    Failed,
    /// Already final, or someone else requeued it first: nothing done.
    Skipped,
}

impl RequeueOutcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requeued => "requeued",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

impl Store {
    /// Moves each received entry's task to RUNNING on the dispatcher named `dispatcher` (its
    /// consumer name), in one round trip.
    pub async fn start_tasks(
        &self,
        entries: &[QueueEntry],
        dispatcher: &str,
    ) -> Result<Vec<StartOutcome>, StoreError> {
        let mut call = ScriptCall::new(
            Transition::Start,
            &[keys::QUEUE],
            (
                keys::QUEUE_GROUP,
                now_micros(),
                dispatcher,
                keys::FUNCTION_PREFIX,
            ),
        );
        for entry in entries {
            call.task(keys::task(entry.task_id), &entry.entry_id);
        }
        // A start lost in a failover would let the task run again under the same attempt.
        let replies: Vec<Value> = self.run_replicated(&call).await?;
        entries
            .iter()
            .zip(replies)
            .map(|(entry, reply)| parse_start(entry, reply))
            .collect()
    }

    /// Records final outcomes, first write wins, in one round trip; an outcome with a claim is
    /// recorded only while the claim holds (the task was not requeued since), so a dispatcher
    /// that lost a task cannot write it. Returns what happened to each.
    pub async fn finish_tasks(
        &self,
        outcomes: &[FinalOutcome],
    ) -> Result<Vec<FinishOutcome>, StoreError> {
        let mut call = ScriptCall::new(
            Transition::Finish,
            &[keys::QUEUE],
            (keys::QUEUE_GROUP, keys::DONE_CHANNEL, self.retention_ms()),
        );
        for outcome in outcomes {
            let started = outcome
                .started_at
                .map(|t| t.to_string())
                .unwrap_or_default();
            call.task(
                keys::task(outcome.task_id),
                (
                    outcome.status.as_str(),
                    &outcome.result,
                    outcome.finished_at,
                    started,
                    outcome.task_id.to_string(),
                    outcome.executor.as_deref().unwrap_or_default(),
                    outcome.claim.as_deref().unwrap_or_default(),
                ),
            );
        }
        let replies: Vec<i64> = self.run_script(&call).await?;
        Ok(replies
            .into_iter()
            .map(|r| match r {
                1 => FinishOutcome::Recorded,
                0 => FinishOutcome::AlreadyFinal,
                -2 => FinishOutcome::ClaimLost,
                _ => FinishOutcome::Missing,
            })
            .collect())
    }

    /// Cancels a task that is not final: it becomes FAILED with `failure` (a serialized
    /// exception) and, if it was running, its dispatcher is told to stop it. Returns the
    /// status the task had, or `None` if there is no such task.
    pub async fn cancel_task(
        &self,
        id: TaskId,
        failure: &str,
    ) -> Result<Option<TaskStatus>, StoreError> {
        let mut call = ScriptCall::new(
            Transition::Cancel,
            &[keys::QUEUE],
            (
                keys::QUEUE_GROUP,
                now_micros(),
                keys::DONE_CHANNEL,
                keys::CANCEL_CHANNEL,
                self.retention_ms(),
            ),
        );
        call.task(keys::task(id), (failure, id.to_string()));
        let previous = self.run_one(&call).await?;
        if previous == "missing" {
            return Ok(None);
        }
        parse_status(&keys::task(id), &previous).map(Some)
    }

    /// Puts a task whose executor, worker or dispatcher was lost back on the queue, or, once it
    /// has been attempted `max_attempts` times, FAILs it with `failure` (a serialized
    /// `WorkerFailure`).
    pub async fn requeue_task(
        &self,
        entry: &QueueEntry,
        max_attempts: u32,
        failure: &str,
    ) -> Result<RequeueOutcome, StoreError> {
        let mut call = ScriptCall::new(
            Transition::Requeue,
            &[keys::QUEUE],
            (
                keys::QUEUE_GROUP,
                max_attempts,
                now_micros(),
                keys::DONE_CHANNEL,
                self.retention_ms(),
            ),
        );
        call.task(
            keys::task(entry.task_id),
            (&entry.entry_id, failure, entry.task_id.to_string()),
        );
        let outcome = self.run_one(&call).await?;
        Ok(match outcome.as_str() {
            "requeued" => RequeueOutcome::Requeued,
            "failed" => RequeueOutcome::Failed,
            _ => RequeueOutcome::Skipped,
        })
    }

    /// Runs a batch of one task and returns its reply.
    async fn run_one(&self, call: &ScriptCall) -> Result<String, StoreError> {
        let mut replies: Vec<String> = self.run_script(call).await?;
        Ok(replies
            .pop()
            .expect("run_script checks there is one reply per task"))
    }
}

fn parse_start(entry: &QueueEntry, reply: Value) -> Result<StartOutcome, StoreError> {
    let key = keys::task(entry.task_id);
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    match reply {
        Value::SimpleString(s) => Ok(StartOutcome::Dropped(drop_reason(&s))),
        Value::BulkString(b) => Ok(StartOutcome::Dropped(drop_reason(
            &String::from_utf8_lossy(&b),
        ))),
        Value::Array(items) => {
            let (function_id, params, attempt, submitted_at, registered): (
                Option<String>,
                Option<String>,
                u32,
                Option<String>,
                i64,
            ) = redis::from_redis_value(Value::Array(items))
                .map_err(|e| corrupt(format!("start_task reply: {e}")))?;
            let function_id = function_id
                .ok_or_else(|| corrupt("no function_id".into()))?
                .parse()
                .map_err(|_| corrupt("function_id is not a uuid".into()))?;
            let params = params.ok_or_else(|| corrupt("no params".into()))?;
            Ok(StartOutcome::Started {
                function_id,
                params,
                attempt,
                submitted_at: submitted_at.and_then(|t| t.parse().ok()),
                registered: registered == 1,
            })
        }
        other => Err(corrupt(format!("unexpected start_task reply {other:?}"))),
    }
}

fn drop_reason(s: &str) -> &'static str {
    match s {
        "missing" => "task record is missing",
        "final" => "task is already final",
        _ => "entry was superseded by a requeue",
    }
}

#[cfg(test)]
mod tests;
