//! The Redis store: function and task records, the durable queue, and the task state
//! transitions, each transition one Lua script so it is atomic and first-wins.
//!
//! Layout: [`keys`] documents every key; `scripts/*.lua` hold the transitions.

pub mod channel;
mod error;
pub mod keys;

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, ErrorKind, Script, ServerErrorKind, Value};

use crate::task::{FunctionId, TaskId, TaskStatus, now_micros};
pub use error::StoreError;

static SUBMIT_TASK: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/submit_task.lua")));
static START_TASK: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/start_task.lua")));
static FINISH_TASK: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/finish_task.lua")));
static CANCEL_TASK: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/cancel_task.lua")));
static REQUEUE_TASK: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/requeue_task.lua")));

/// How long one command may take before the connection is considered broken. Generous,
/// because a 10 MB payload on a loaded machine is slow, and blocking reads add their own wait.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on the store. Cheap to clone; clones share one multiplexed, self-reconnecting
/// connection.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
}

/// The durable queue at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Entries no dispatcher has taken yet.
    pub waiting: u64,
    /// Entries delivered to a dispatcher whose task is not final yet.
    pub held: u64,
}

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
    const FIELDS: [&'static str; 10] = [
        "status",
        "function_id",
        "attempts",
        "worker",
        "executor",
        "submitted_at",
        "dispatched_at",
        "started_at",
        "finished_at",
        "cancelled_at",
    ];
}

/// A queue entry this dispatcher received, not yet started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The stream entry id; the task hash names its live entry in `queue_entry`.
    pub entry_id: String,
    pub task_id: TaskId,
}

/// What `start_task` decided about a received entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The task is now RUNNING; run it.
    Started {
        function_id: FunctionId,
        params: String,
        attempt: u32,
        /// When the task was submitted (µs), for the queue-wait metric.
        submitted_at: Option<u64>,
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

/// A queue entry held by a dispatcher that is no longer alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedEntry {
    pub consumer: String,
    pub entry: QueueEntry,
}

impl Store {
    /// Connects (and later reconnects by itself) to the Redis at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn })
    }

    /// Answers whether Redis is reachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

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
        let mut invocation = SUBMIT_TASK.prepare_invoke();
        invocation
            .key(keys::function(function_id))
            .key(keys::task(task_id))
            .key(keys::QUEUE)
            .arg(task_id.to_string())
            .arg(function_id.to_string())
            .arg(params)
            .arg(now_micros())
            .arg(keys::TASKS_CHANNEL);
        let mut conn = self.conn.clone();
        let created: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(created == 1)
    }

    /// [`Self::submit_task`] for many tasks of one function, in one round trip. Returns
    /// `false` (and creates nothing) if the function is not registered.
    pub async fn submit_tasks(
        &self,
        function_id: FunctionId,
        tasks: &[(TaskId, String)],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let registered: bool = conn.exists(keys::function(function_id)).await?;
        if !registered {
            return Ok(false);
        }
        let now = now_micros();
        let mut pipe = redis::pipe();
        for (task_id, params) in tasks {
            pipe.invoke_script(
                SUBMIT_TASK
                    .key(keys::function(function_id))
                    .key(keys::task(*task_id))
                    .key(keys::QUEUE)
                    .arg(task_id.to_string())
                    .arg(function_id.to_string())
                    .arg(params)
                    .arg(now)
                    .arg(keys::TASKS_CHANNEL),
            );
        }
        let created: Vec<i64> = self.query_scripts(&pipe).await?;
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
            worker,
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
            dispatcher: worker,
            executor,
            submitted_at: micros(submitted),
            dispatched_at: micros(dispatched),
            started_at: micros(started),
            finished_at: micros(finished),
            cancelled_at: micros(cancelled),
        }))
    }

    /// How many tasks wait in the queue and how many dispatchers hold (delivered, not final).
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut conn = self.conn.clone();
        let length: u64 = redis::cmd("XLEN")
            .arg(keys::QUEUE)
            .query_async(&mut conn)
            .await?;
        // No group yet (no dispatcher ever ran): nothing is held.
        let pending: Result<Value, _> = redis::cmd("XPENDING")
            .arg(keys::QUEUE)
            .arg(keys::QUEUE_GROUP)
            .query_async(&mut conn)
            .await;
        let held = match pending {
            Ok(Value::Array(summary)) => summary
                .first()
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                .unwrap_or(0),
            Ok(_) => 0,
            Err(e) if e.code() == Some("NOGROUP") => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(QueueStats {
            waiting: length.saturating_sub(held),
            held,
        })
    }

    /// Creates the dispatchers' consumer group (and the stream) unless they exist. The group
    /// starts at the beginning of the stream so entries added before any dispatcher ran are
    /// delivered too; the stream only ever holds live tasks.
    pub async fn ensure_queue_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let created: Result<(), _> = conn
            .xgroup_create_mkstream(keys::QUEUE, keys::QUEUE_GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Marks the dispatcher `consumer` alive for `ttl`.
    pub async fn mark_dispatcher_alive(
        &self,
        consumer: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let () = conn
            .pset_ex(keys::dispatcher(consumer), now_micros(), ttl_ms)
            .await?;
        Ok(())
    }

    /// Removes a dispatcher's liveness marker and its (empty) consumer from the group.
    pub async fn retire_dispatcher(&self, consumer: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ((), _): ((), i64) = redis::pipe()
            .del(keys::dispatcher(consumer))
            .xgroup_delconsumer(keys::QUEUE, keys::QUEUE_GROUP, consumer)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Receives up to `count` new entries for `consumer`, waiting up to `block` for the first.
    ///
    /// Takes its own connection: a blocking read must not stall the commands multiplexed on
    /// the shared one. Never cancel the returned future once polled: entries Redis delivered
    /// to a dropped read stay pending for this consumer until it is declared dead.
    pub async fn read_queue(
        reader: &mut QueueReader,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let block_ms = usize::try_from(block.as_millis()).unwrap_or(usize::MAX);
        let options = StreamReadOptions::default()
            .group(keys::QUEUE_GROUP, consumer)
            .count(count)
            .block(block_ms);
        let reply: Option<StreamReadReply> = reader
            .conn
            .xread_options(&[keys::QUEUE], &[">"], &options)
            .await?;
        let mut entries = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for item in stream.ids {
                entries.push(parse_entry(item.id, &item.map)?);
            }
        }
        Ok(entries)
    }

    /// Moves each received entry's task to RUNNING on `worker`, in one round trip.
    pub async fn start_tasks(
        &self,
        entries: &[QueueEntry],
        worker: &str,
    ) -> Result<Vec<StartOutcome>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = START_TASK.key(keys::QUEUE);
        call.arg(keys::QUEUE_GROUP).arg(now_micros()).arg(worker);
        for entry in entries {
            call.key(keys::task(entry.task_id)).arg(&entry.entry_id);
        }
        let replies: Vec<Value> = self
            .invoke_batch(&call, entries.len(), "start_tasks")
            .await?;
        entries
            .iter()
            .zip(replies)
            .map(|(entry, reply)| parse_start(entry, reply))
            .collect()
    }

    /// Records final outcomes, first write wins, in one round trip. Returns, per outcome,
    /// whether it was recorded (`false`: the task was already final or is unknown).
    pub async fn finish_tasks(&self, outcomes: &[FinalOutcome]) -> Result<Vec<bool>, StoreError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = FINISH_TASK.key(keys::QUEUE);
        call.arg(keys::QUEUE_GROUP).arg(keys::DONE_CHANNEL);
        for outcome in outcomes {
            let started = outcome
                .started_at
                .map(|t| t.to_string())
                .unwrap_or_default();
            call.key(keys::task(outcome.task_id))
                .arg(outcome.status.as_str())
                .arg(&outcome.result)
                .arg(outcome.finished_at)
                .arg(started)
                .arg(outcome.task_id.to_string())
                .arg(outcome.executor.as_deref().unwrap_or_default());
        }
        let replies: Vec<i64> = self
            .invoke_batch(&call, outcomes.len(), "finish_tasks")
            .await?;
        Ok(replies.into_iter().map(|r| r == 1).collect())
    }

    /// Cancels a task that is not final: it becomes FAILED with `failure` (a serialized
    /// exception) and, if it was running, its dispatcher is told to stop it. Returns the
    /// status the task had, or `None` if there is no such task.
    pub async fn cancel_task(
        &self,
        id: TaskId,
        failure: &str,
    ) -> Result<Option<TaskStatus>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            CANCEL_TASK
                .key(keys::task(id))
                .key(keys::QUEUE)
                .arg(keys::QUEUE_GROUP)
                .arg(failure)
                .arg(now_micros())
                .arg(keys::DONE_CHANNEL)
                .arg(keys::CANCEL_CHANNEL)
                .arg(id.to_string()),
        );
        let (reply,): (String,) = self.query_scripts(&pipe).await?;
        if reply == "missing" {
            return Ok(None);
        }
        parse_status(&keys::task(id), &reply).map(Some)
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
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            REQUEUE_TASK
                .key(keys::task(entry.task_id))
                .key(keys::QUEUE)
                .arg(&entry.entry_id)
                .arg(keys::QUEUE_GROUP)
                .arg(max_attempts)
                .arg(failure)
                .arg(now_micros())
                .arg(keys::DONE_CHANNEL)
                .arg(entry.task_id.to_string()),
        );
        let (outcome,): (String,) = self.query_scripts(&pipe).await?;
        Ok(match outcome.as_str() {
            "requeued" => RequeueOutcome::Requeued,
            "failed" => RequeueOutcome::Failed,
            _ => RequeueOutcome::Skipped,
        })
    }

    /// Entries held by consumers of the group other than `me` whose liveness marker has
    /// expired: their dispatcher died (or was stopped) with these tasks in hand. Consumers found
    /// dead with nothing pending are removed from the group.
    pub async fn orphaned_entries(&self, me: &str) -> Result<Vec<OrphanedEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let info: redis::streams::StreamInfoConsumersReply =
            conn.xinfo_consumers(keys::QUEUE, keys::QUEUE_GROUP).await?;
        let mut orphans = Vec::new();
        for consumer in info.consumers.into_iter().filter(|c| c.name != me) {
            let alive: bool = conn.exists(keys::dispatcher(&consumer.name)).await?;
            if alive {
                continue;
            }
            if consumer.pending == 0 {
                let _: i64 = conn
                    .xgroup_delconsumer(keys::QUEUE, keys::QUEUE_GROUP, &consumer.name)
                    .await?;
                continue;
            }
            orphans.extend(self.pending_entries(&consumer.name).await?);
        }
        Ok(orphans)
    }

    /// Every entry delivered to `consumer` and not yet acknowledged.
    pub async fn pending_entries(&self, consumer: &str) -> Result<Vec<OrphanedEntry>, StoreError> {
        const PAGE: usize = 1000;
        let mut conn = self.conn.clone();
        let mut start = "-".to_owned();
        let mut orphans = Vec::new();
        loop {
            let pending: redis::streams::StreamPendingCountReply = conn
                .xpending_consumer_count(
                    keys::QUEUE,
                    keys::QUEUE_GROUP,
                    &start,
                    "+",
                    PAGE,
                    consumer,
                )
                .await?;
            let ids: Vec<String> = pending.ids.into_iter().map(|p| p.id).collect();
            let Some(last) = ids.last().cloned() else {
                break;
            };
            // XPENDING does not return the entries' fields; XRANGE per id does, and an id
            // missing there was deleted after delivery (its task is final).
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.xrange(keys::QUEUE, id, id);
            }
            let ranges: Vec<redis::streams::StreamRangeReply> = pipe.query_async(&mut conn).await?;
            for (id, range) in ids.iter().zip(ranges) {
                match range.ids.into_iter().next() {
                    Some(item) => orphans.push(OrphanedEntry {
                        consumer: consumer.to_owned(),
                        entry: parse_entry(item.id, &item.map)?,
                    }),
                    None => {
                        let _: i64 = conn.xack(keys::QUEUE, keys::QUEUE_GROUP, &[id]).await?;
                    }
                }
            }
            if ids.len() < PAGE {
                break;
            }
            start = format!("({last}");
        }
        Ok(orphans)
    }

    /// Runs a pipeline of script invocations, loading the scripts first if Redis lost them
    /// (a restarted server has an empty script cache).
    /// Runs one batch script call (`start_tasks`, `finish_tasks`) and checks it answered once
    /// per item.
    async fn invoke_batch<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
        items: usize,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(call);
        let (replies,): (Vec<T>,) = self.query_scripts(&pipe).await?;
        if replies.len() != items {
            return Err(StoreError::Corrupt {
                key: keys::QUEUE.to_owned(),
                reason: format!("{what} answered {} of {items}", replies.len()),
            });
        }
        Ok(replies)
    }

    async fn query_scripts<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut load = redis::pipe();
                for script in [
                    &*SUBMIT_TASK,
                    &*START_TASK,
                    &*FINISH_TASK,
                    &*REQUEUE_TASK,
                    &*CANCEL_TASK,
                ] {
                    load.load_script(script);
                }
                let _: Vec<String> = load.query_async(&mut conn).await?;
                Ok(pipe.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }
}

/// A dedicated connection for blocking queue reads.
pub struct QueueReader {
    conn: ConnectionManager,
}

impl QueueReader {
    /// Opens a connection whose response timeout leaves room for reads blocking up to
    /// `max_block`.
    pub async fn connect(url: &str, max_block: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT + max_block))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn })
    }
}

fn parse_status(key: &str, s: &str) -> Result<TaskStatus, StoreError> {
    s.parse()
        .map_err(|e: crate::task::UnknownStatus| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

fn parse_entry(
    entry_id: String,
    fields: &std::collections::HashMap<String, Value>,
) -> Result<QueueEntry, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: format!("{} entry {entry_id}", keys::QUEUE),
        reason: reason.to_owned(),
    };
    let raw = fields.get("task").ok_or_else(|| corrupt("no task field"))?;
    let text: String =
        redis::from_redis_value_ref(raw).map_err(|_| corrupt("task field is not text"))?;
    let task_id = text
        .parse()
        .map_err(|_| corrupt("task field is not a uuid"))?;
    Ok(QueueEntry { entry_id, task_id })
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
            let (function_id, params, attempt, submitted_at): (
                Option<String>,
                Option<String>,
                u32,
                Option<String>,
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
