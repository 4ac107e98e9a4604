//! Unit tests of [`super`] against a real redis-server.
use std::time::Duration;

use super::*;
use crate::store::FinalOutcome;
use crate::store::testing::{TestRedis, registered_function};

#[tokio::test]
async fn a_registered_function_can_be_fetched() {
    let redis = TestRedis::start().await;
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
    let redis = TestRedis::start().await;
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
    let redis = TestRedis::start().await;
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
    let redis = TestRedis::start().await;
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
    let redis = TestRedis::start().await;
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
        claim: None,
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
    let redis = TestRedis::start().await;
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
    let redis = TestRedis::start().await;
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
        claim: None,
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

#[tokio::test]
async fn a_record_from_before_the_rename_still_names_its_dispatcher() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let task = TaskId::new_random();
    let () = redis::cmd("HSET")
        .arg(keys::task(task))
        .arg(&[
            "status",
            "RUNNING",
            "worker",
            "old-dispatcher",
            "attempts",
            "1",
        ])
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let timeline = store.task_timeline(task).await.unwrap().unwrap();
    assert_eq!(timeline.dispatcher.as_deref(), Some("old-dispatcher"));
}

/// Redis's `used_memory`, in bytes.
async fn used_memory(redis: &TestRedis) -> i64 {
    redis
        .info("memory")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

/// What a task costs Redis, measured over 2,000 tasks with the arguments and result of a
/// one-argument call (`f(1)` returning 2, as dill and base64 make them): a queued task (its
/// hash, its stream entry) and a finished one (its hash; the entry is deleted). Printed for
/// the report, and bounded so that a regression in the key schema shows.
#[tokio::test]
async fn bytes_per_task_in_redis() {
    const TASKS: usize = 2000;
    const PARAMS: &str = "gASVDAAAAAAAAABLAYWUfZSGlC4=\n";
    const RESULT: &str = "gARLAi4=\n";
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let mut reader = redis.reader().await;
    let function = registered_function(&store).await;
    store.ensure_queue_group().await.unwrap();
    let before = used_memory(&redis).await;

    let tasks: Vec<(TaskId, String)> = (0..TASKS)
        .map(|_| (TaskId::new_random(), PARAMS.to_owned()))
        .collect();
    for chunk in tasks.chunks(500) {
        assert!(store.submit_tasks(function, chunk).await.unwrap());
    }
    let queued = (used_memory(&redis).await - before) / TASKS as i64;

    let mut entries = Vec::new();
    while entries.len() < TASKS {
        let batch = Store::read_queue(&mut reader, "d1", TASKS, Duration::from_secs(5))
            .await
            .unwrap();
        entries.extend(batch);
    }
    for chunk in entries.chunks(500) {
        store.start_tasks(chunk, "d1").await.unwrap();
        let outcomes: Vec<FinalOutcome> = chunk
            .iter()
            .map(|entry| FinalOutcome {
                task_id: entry.task_id,
                status: TaskStatus::Completed,
                result: RESULT.to_owned(),
                started_at: Some(now_micros()),
                finished_at: now_micros(),
                executor: Some("worker-1/0".into()),
                claim: Some(entry.entry_id.clone()),
            })
            .collect();
        store.finish_tasks(&outcomes).await.unwrap();
    }
    let finished = (used_memory(&redis).await - before) / TASKS as i64;

    eprintln!("bytes per task in Redis: queued {queued}, finished {finished}");
    assert!(queued < 1024, "a queued task takes {queued} bytes");
    assert!(finished < 1024, "a finished task takes {finished} bytes");
}
