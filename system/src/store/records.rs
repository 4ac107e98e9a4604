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

/// Where a task is and has been.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(
    description = "Where a task is and has been. Every `*_at` field is a timestamp in microseconds since the Unix epoch, `null` until that step happened."
)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<u64>,
}

impl TaskTimeline {
    /// The task hash fields a timeline is read from, in the order they are parsed.
    const FIELDS: [&'static str; 10] = [
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
        let mut conn = self.conn.clone();
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

    /// The serialized body of a function, or `None` if it is not registered.
    pub async fn function_body(&self, id: FunctionId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
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
            let mut conn = self.conn.clone();
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
        let created: Vec<i64> = self.run_script(&call).await?;
        Ok(created.iter().all(|&c| c == 1))
    }

    /// A task's status, or `None` if there is no such task.
    pub async fn task_status(&self, id: TaskId) -> Result<Option<TaskStatus>, StoreError> {
        let key = keys::task(id);
        let mut conn = self.conn.clone();
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
        let mut conn = self.conn.clone();
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
        let mut conn = self.conn.clone();
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
        ] = <[Option<String>; 10]>::try_from(fields).map_err(|_| StoreError::Corrupt {
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
            dispatcher,
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
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::FinalOutcome;
    use crate::store::testing::{TestRedis, registered_function};

    #[tokio::test]
    async fn a_registered_function_can_be_fetched() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let id = FunctionId::new_random();
        store.register_function(id, "double", "Zm4=").await.unwrap();
        assert_eq!(
            store.function_body(id).await.unwrap().as_deref(),
            Some("Zm4=")
        );
        let unknown = FunctionId::new_random();
        assert_eq!(store.function_body(unknown).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_submitted_task_is_recorded_queued_and_announced() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let function = registered_function(&store).await;
        let mut announced = redis.subscribe(keys::TASKS_CHANNEL).await;
        let task = TaskId::new_random();

        assert!(store.submit_task(task, function, "params").await.unwrap());

        assert_eq!(announced.next().await, task.to_string());
        let queue = redis.queue().await;
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].1, task.to_string());
        let hash = redis.task_hash(task).await;
        assert_eq!(hash["status"], "QUEUED");
        assert_eq!(hash["function_id"], function.to_string());
        assert_eq!(hash["params"], "params");
        assert_eq!(hash["attempts"], "0");
        assert_eq!(hash["queue_entry"], queue[0].0);
        assert!(hash["submitted_at"].parse::<u64>().is_ok());
        assert_eq!(
            store.task_status(task).await.unwrap(),
            Some(TaskStatus::Queued)
        );
    }

    #[tokio::test]
    async fn a_batch_is_recorded_queued_and_announced_in_order() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let function = registered_function(&store).await;
        let mut announced = redis.subscribe(keys::TASKS_CHANNEL).await;
        let tasks: Vec<(TaskId, String)> = (0..3)
            .map(|i| (TaskId::new_random(), format!("params-{i}")))
            .collect();

        assert!(store.submit_tasks(function, &tasks).await.unwrap());

        let queue = redis.queue().await;
        assert_eq!(queue.len(), 3);
        for ((task, params), (entry, queued)) in tasks.iter().zip(&queue) {
            assert_eq!(announced.next().await, task.to_string());
            assert_eq!(queued, &task.to_string());
            let hash = redis.task_hash(*task).await;
            assert_eq!(hash["status"], "QUEUED");
            assert_eq!(&hash["params"], params);
            assert_eq!(&hash["queue_entry"], entry);
        }
    }

    #[tokio::test]
    async fn nothing_is_submitted_for_an_unknown_function() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let unknown = FunctionId::new_random();
        let task = TaskId::new_random();

        assert!(!store.submit_task(task, unknown, "p").await.unwrap());
        let batch = [(TaskId::new_random(), "p".to_owned())];
        assert!(!store.submit_tasks(unknown, &batch).await.unwrap());
        assert!(!store.submit_tasks(unknown, &[]).await.unwrap());

        assert!(redis.queue().await.is_empty());
        assert!(redis.task_hash(task).await.is_empty());
        assert!(redis.task_hash(batch[0].0).await.is_empty());
        let function = registered_function(&store).await;
        assert!(store.submit_tasks(function, &[]).await.unwrap());
    }

    #[tokio::test]
    async fn results_are_shown_once_final_in_the_order_asked() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let function = registered_function(&store).await;
        let (queued, done, unknown) = (
            TaskId::new_random(),
            TaskId::new_random(),
            TaskId::new_random(),
        );
        store.submit_task(queued, function, "p").await.unwrap();
        store.submit_task(done, function, "p").await.unwrap();
        let outcome = FinalOutcome {
            task_id: done,
            status: TaskStatus::Completed,
            result: "value".into(),
            started_at: None,
            finished_at: now_micros(),
            executor: None,
        };
        store.finish_tasks(&[outcome]).await.unwrap();

        let results = store.task_results(&[done, unknown, queued]).await.unwrap();
        assert_eq!(
            results,
            [
                Some(TaskResult {
                    status: TaskStatus::Completed,
                    result: Some("value".into())
                }),
                None,
                Some(TaskResult {
                    status: TaskStatus::Queued,
                    result: None
                }),
            ]
        );
        assert_eq!(store.task_result(unknown).await.unwrap(), None);
        assert_eq!(store.task_status(unknown).await.unwrap(), None);
        assert!(store.task_results(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unknown_status_is_a_corrupt_record() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let task = TaskId::new_random();
        let () = redis::cmd("HSET")
            .arg(keys::task(task))
            .arg("status")
            .arg("LOST")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        let error = store.task_status(task).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { key, .. } if *key == keys::task(task)),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_timeline_follows_a_task_and_names_its_dispatcher() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let mut reader = redis.reader().await;
        let function = registered_function(&store).await;
        let task = TaskId::new_random();
        store.ensure_queue_group().await.unwrap();
        store.submit_task(task, function, "p").await.unwrap();

        let timeline = store.task_timeline(task).await.unwrap().unwrap();
        assert_eq!(timeline.status, TaskStatus::Queued);
        assert_eq!(timeline.function_id, Some(function));
        assert_eq!(
            (timeline.attempts, timeline.dispatcher.as_deref()),
            (0, None)
        );
        assert!(timeline.submitted_at.is_some());
        assert_eq!(timeline.dispatched_at, None);

        let entries = Store::read_queue(&mut reader, "dispatcher-1", 1, Duration::from_secs(5))
            .await
            .unwrap();
        store.start_tasks(&entries, "dispatcher-1").await.unwrap();
        let finished_at = now_micros();
        let outcome = FinalOutcome {
            task_id: task,
            status: TaskStatus::Completed,
            result: "value".into(),
            started_at: Some(finished_at - 1),
            finished_at,
            executor: Some("worker-1/0".into()),
        };
        store.finish_tasks(&[outcome]).await.unwrap();

        let timeline = store.task_timeline(task).await.unwrap().unwrap();
        assert_eq!(timeline.status, TaskStatus::Completed);
        assert_eq!(timeline.attempts, 1);
        assert_eq!(timeline.dispatcher.as_deref(), Some("dispatcher-1"));
        assert_eq!(timeline.executor.as_deref(), Some("worker-1/0"));
        assert!(timeline.dispatched_at.is_some());
        assert_eq!(timeline.started_at, Some(finished_at - 1));
        assert_eq!(timeline.finished_at, Some(finished_at));
        assert_eq!(timeline.cancelled_at, None);
        let hash = redis.task_hash(task).await;
        assert_eq!(hash["dispatcher"], "dispatcher-1");
        assert!(!hash.contains_key("worker"), "{hash:?}");
        assert_eq!(
            store.task_timeline(TaskId::new_random()).await.unwrap(),
            None
        );
    }
}
