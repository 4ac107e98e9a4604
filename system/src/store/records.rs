//! Function and task records: registering functions, submitting tasks (the `submit_task`
//! transition), and reading a task's status, result and timeline.

use redis::AsyncCommands;

use super::scripts::{ScriptCall, Transition};
use super::{Store, StoreError, keys};
use crate::task::{FunctionId, TaskId, TaskStatus, now_micros};

/// A task as the result endpoint sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub status: TaskStatus,
    /// `base64(dill.dumps(value))`, present once the task is final.
    pub result: Option<String>,
}

/// Where a task is and has been, as recorded (the gateway answers it as
/// [`crate::api::TimelineResponse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTimeline {
    pub status: TaskStatus,
    pub function_id: Option<FunctionId>,
    /// Times it was handed to an executor.
    pub attempts: u32,
    /// The dispatcher that started it last.
    pub dispatcher: Option<String>,
    /// The executor (`worker/slot`) that ran it to the end.
    pub executor: Option<String>,
    pub submitted_at: Option<u64>,
    pub dispatched_at: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Set when the task was cancelled through the API.
    pub cancelled_at: Option<u64>,
}

impl TaskTimeline {
    /// The task hash fields a timeline is read from, in the order they are parsed.
    /// The last, `worker`, is where records written before the field was renamed keep the
    /// dispatcher's name.
    const FIELDS: [&'static str; 11] = [
        "status",
        "function_id",
        "attempts",
        "dispatcher",
        "executor",
        "submitted_at",
        "dispatched_at",
        "started_at",
        "finished_at",
        "cancelled_at",
        "worker",
    ];
}

impl Store {
    /// Stores a function under `id`.
    pub async fn register_function(
        &self,
        id: FunctionId,
        name: &str,
        payload: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let () = conn
            .hset_multiple(
                keys::function(id),
                &[
                    ("name", name),
                    ("payload", payload),
                    ("created_at", &now_micros().to_string()),
                ],
            )
            .await?;
        Ok(())
    }

    /// Deletes a function: it can no longer be executed, and its tasks that have not started
    /// fail when a dispatcher takes them. Returns `false` if it was not registered.
    pub async fn delete_function(&self, id: FunctionId) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let deleted: i64 = conn.del(keys::function(id)).await?;
        Ok(deleted == 1)
    }

    /// The serialized body of a function, or `None` if it is not registered.
    pub async fn function_body(&self, id: FunctionId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        Ok(conn.hget(keys::function(id), "payload").await?)
    }

    /// Creates a QUEUED task, appends it to the durable queue and announces it on `tasks`, in
    /// one atomic step. Returns `false` (and creates nothing) if the function is not registered.
    pub async fn submit_task(
        &self,
        task_id: TaskId,
        function_id: FunctionId,
        params: &str,
    ) -> Result<bool, StoreError> {
        self.submit(function_id, &[(task_id, params)]).await
    }

    /// [`Self::submit_task`] for many tasks of one function, in one round trip and one atomic
    /// step. Returns `false` (and creates nothing) if the function is not registered.
    pub async fn submit_tasks(
        &self,
        function_id: FunctionId,
        tasks: &[(TaskId, String)],
    ) -> Result<bool, StoreError> {
        let tasks: Vec<(TaskId, &str)> = tasks.iter().map(|(id, p)| (*id, p.as_str())).collect();
        self.submit(function_id, &tasks).await
    }

    async fn submit(
        &self,
        function_id: FunctionId,
        tasks: &[(TaskId, &str)],
    ) -> Result<bool, StoreError> {
        if tasks.is_empty() {
            let mut conn = self.conn();
            return Ok(conn.exists(keys::function(function_id)).await?);
        }
        let mut call = ScriptCall::new(
            Transition::Submit,
            &[&keys::function(function_id), keys::QUEUE],
            (function_id.to_string(), now_micros(), keys::TASKS_CHANNEL),
        );
        for (task_id, params) in tasks {
            call.task(keys::task(*task_id), (task_id.to_string(), *params));
        }
        let created: Vec<i64> = self.run_replicated(&call).await?;
        Ok(created.iter().all(|&c| c == 1))
    }

    /// A task's status, or `None` if there is no such task.
    pub async fn task_status(&self, id: TaskId) -> Result<Option<TaskStatus>, StoreError> {
        let key = keys::task(id);
        let mut conn = self.conn();
        let status: Option<String> = conn.hget(&key, "status").await?;
        status.map(|s| parse_status(&key, &s)).transpose()
    }

    /// A task's status and (once final) result, or `None` if there is no such task.
    pub async fn task_result(&self, id: TaskId) -> Result<Option<TaskResult>, StoreError> {
        Ok(self.task_results(&[id]).await?.pop().flatten())
    }

    /// [`Store::task_result`] for many tasks in one round trip, in the order given.
    pub async fn task_results(
        &self,
        ids: &[TaskId],
    ) -> Result<Vec<Option<TaskResult>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(keys::task(*id))
                .arg("status")
                .arg("result");
        }
        let mut conn = self.conn();
        let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut conn).await?;
        ids.iter()
            .zip(rows)
            .map(|(id, (status, result))| {
                let Some(status) = status else {
                    return Ok(None);
                };
                let status = parse_status(&keys::task(*id), &status)?;
                Ok(Some(TaskResult {
                    status,
                    result: result.filter(|_| status.is_final()),
                }))
            })
            .collect()
    }

    /// A task's timeline: status, attempts, where it ran, and its timestamps (µs), without the
    /// (possibly large) params and result. `None` if there is no such task.
    pub async fn task_timeline(&self, id: TaskId) -> Result<Option<TaskTimeline>, StoreError> {
        let key = keys::task(id);
        let mut conn = self.conn();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&TaskTimeline::FIELDS[..])
            .query_async(&mut conn)
            .await?;
        let [
            status,
            function_id,
            attempts,
            dispatcher,
            executor,
            submitted,
            dispatched,
            started,
            finished,
            cancelled,
            dispatcher_before_rename,
        ] = <[Option<String>; 11]>::try_from(fields).map_err(|_| StoreError::Corrupt {
            key: key.clone(),
            reason: "HMGET returned the wrong number of fields".into(),
        })?;
        let Some(status) = status else {
            return Ok(None);
        };
        let micros = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        Ok(Some(TaskTimeline {
            status: parse_status(&key, &status)?,
            function_id: function_id.and_then(|f| f.parse().ok()),
            attempts: attempts.and_then(|v| v.parse().ok()).unwrap_or(0),
            dispatcher: dispatcher.or(dispatcher_before_rename),
            executor,
            submitted_at: micros(submitted),
            dispatched_at: micros(dispatched),
            started_at: micros(started),
            finished_at: micros(finished),
            cancelled_at: micros(cancelled),
        }))
    }
}

/// A task status read from the record at `key`.
pub(super) fn parse_status(key: &str, s: &str) -> Result<TaskStatus, StoreError> {
    s.parse()
        .map_err(|e: crate::task::UnknownStatus| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
