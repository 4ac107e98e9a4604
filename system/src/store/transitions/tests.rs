//! Unit tests of [`super`] against a real redis-server.
use std::time::Duration;

use redis::AsyncCommands;

use super::*;
use crate::store::QueueReader;
use crate::store::testing::{TestRedis, registered_function};

/// A store with one task submitted and the queue group made.
struct Fixture {
    redis: TestRedis,
    store: Store,
    reader: QueueReader,
    task: TaskId,
    function: FunctionId,
}

impl Fixture {
    async fn new() -> Self {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let reader = redis.reader().await;
        let function = registered_function(&store).await;
        store.ensure_queue_group().await.unwrap();
        let task = TaskId::new_random();
        assert!(store.submit_task(task, function, "params").await.unwrap());
        Self {
            redis,
            store,
            reader,
            task,
            function,
        }
    }

    /// Receives the next entry as dispatcher `d1`.
    async fn receive(&mut self) -> QueueEntry {
        let mut entries = Store::read_queue(&mut self.reader, "d1", 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        entries.remove(0)
    }

    /// Receives and starts the task as dispatcher `d1`.
    async fn start(&mut self) -> (QueueEntry, StartOutcome) {
        let entry = self.receive().await;
        let mut outcomes = self
            .store
            .start_tasks(std::slice::from_ref(&entry), "d1")
            .await
            .unwrap();
        (entry, outcomes.remove(0))
    }

    fn outcome(&self, status: TaskStatus, result: &str) -> FinalOutcome {
        FinalOutcome {
            task_id: self.task,
            status,
            result: result.into(),
            started_at: Some(now_micros()),
            finished_at: now_micros(),
            executor: Some("w1/0".into()),
            claim: None,
        }
    }
}

#[tokio::test]
async fn a_started_task_is_running_with_its_params() {
    let mut f = Fixture::new().await;
    let (_, outcome) = f.start().await;
    let StartOutcome::Started {
        function_id,
        params,
        attempt,
        submitted_at,
        registered,
    } = outcome
    else {
        panic!("not started: {outcome:?}");
    };
    assert_eq!(
        (function_id, params.as_str(), attempt, registered),
        (f.function, "params", 1, true)
    );
    assert!(submitted_at.is_some());
    let hash = f.redis.task_hash(f.task).await;
    assert_eq!(hash["status"], "RUNNING");
    assert_eq!(hash["dispatcher"], "d1");
    assert!(hash.contains_key("dispatched_at"));
    assert!(f.store.start_tasks(&[], "d1").await.unwrap().is_empty());
}

#[tokio::test]
async fn entries_with_nothing_to_run_are_dropped_and_removed() {
    let mut f = Fixture::new().await;
    let (entry, _) = f.start().await;
    f.store
        .finish_tasks(&[f.outcome(TaskStatus::Completed, "r")])
        .await
        .unwrap();
    let other = TaskId::new_random();
    f.store.submit_task(other, f.function, "p").await.unwrap();
    let live = f.redis.queue().await;
    // Entries the live records do not name: a task that never existed, and an old entry of
    // a task that was queued again under a new one.
    let mut conn = f.redis.conn().await;
    let mut add = async |task: TaskId| QueueEntry {
        entry_id: conn
            .xadd(keys::QUEUE, "*", &[("task", task.to_string())])
            .await
            .unwrap(),
        task_id: task,
    };
    let missing = add(TaskId::new_random()).await;
    let stale = add(other).await;

    let outcomes = f
        .store
        .start_tasks(&[entry, missing, stale], "d1")
        .await
        .unwrap();

    assert_eq!(
        outcomes,
        [
            StartOutcome::Dropped("task is already final"),
            StartOutcome::Dropped("task record is missing"),
            StartOutcome::Dropped("entry was superseded by a requeue"),
        ]
    );
    assert_eq!(f.redis.queue().await, live);
    assert_eq!(
        f.store.task_status(other).await.unwrap(),
        Some(TaskStatus::Queued)
    );
}

#[tokio::test]
async fn the_first_final_write_wins() {
    let mut f = Fixture::new().await;
    let mut done = f.redis.subscribe(keys::DONE_CHANNEL).await;
    f.start().await;

    let first = f
        .store
        .finish_tasks(&[f.outcome(TaskStatus::Completed, "first")])
        .await;
    assert_eq!(first.unwrap(), [FinishOutcome::Recorded]);
    assert_eq!(done.next().await, f.task.to_string());
    let late = f.outcome(TaskStatus::Failed, "late");
    let unknown = FinalOutcome {
        task_id: TaskId::new_random(),
        ..late.clone()
    };
    assert_eq!(
        f.store.finish_tasks(&[late, unknown]).await.unwrap(),
        [FinishOutcome::AlreadyFinal, FinishOutcome::Missing]
    );

    let hash = f.redis.task_hash(f.task).await;
    assert_eq!(
        (hash["status"].as_str(), hash["result"].as_str()),
        ("COMPLETED", "first")
    );
    assert_eq!(hash["executor"], "w1/0");
    assert!(!hash.contains_key("params"));
    assert!(f.redis.queue().await.is_empty());
    assert_eq!(f.store.queue_stats().await.unwrap().held, 0);
    assert!(f.store.finish_tasks(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_queued_task_is_cancelled() {
    let f = Fixture::new().await;
    let mut done = f.redis.subscribe(keys::DONE_CHANNEL).await;

    let previous = f.store.cancel_task(f.task, "cancelled").await.unwrap();

    assert_eq!(previous, Some(TaskStatus::Queued));
    assert_eq!(done.next().await, f.task.to_string());
    let hash = f.redis.task_hash(f.task).await;
    assert_eq!(
        (hash["status"].as_str(), hash["result"].as_str()),
        ("FAILED", "cancelled")
    );
    assert!(!hash.contains_key("params"));
    assert!(f.redis.queue().await.is_empty());
    let timeline = f.store.task_timeline(f.task).await.unwrap().unwrap();
    assert!(timeline.cancelled_at.is_some());
    assert_eq!(timeline.cancelled_at, timeline.finished_at);
}

#[tokio::test]
async fn a_running_task_is_cancelled_and_its_dispatcher_told() {
    let mut f = Fixture::new().await;
    let mut cancels = f.redis.subscribe(keys::CANCEL_CHANNEL).await;
    f.start().await;

    let previous = f.store.cancel_task(f.task, "cancelled").await.unwrap();

    assert_eq!(previous, Some(TaskStatus::Running));
    assert_eq!(cancels.next().await, f.task.to_string());
    assert_eq!(f.store.queue_stats().await.unwrap().held, 0);
    // A result arriving afterwards does not overwrite the cancellation.
    let late = f
        .store
        .finish_tasks(&[f.outcome(TaskStatus::Completed, "r")])
        .await;
    assert_eq!(late.unwrap(), [FinishOutcome::AlreadyFinal]);
    assert_eq!(f.redis.task_hash(f.task).await["result"], "cancelled");
}

#[tokio::test]
async fn a_final_or_unknown_task_is_not_cancelled() {
    let mut f = Fixture::new().await;
    f.start().await;
    f.store
        .finish_tasks(&[f.outcome(TaskStatus::Completed, "r")])
        .await
        .unwrap();

    let previous = f.store.cancel_task(f.task, "cancelled").await.unwrap();

    assert_eq!(previous, Some(TaskStatus::Completed));
    assert_eq!(f.redis.task_hash(f.task).await["result"], "r");
    assert_eq!(
        f.store
            .cancel_task(TaskId::new_random(), "c")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_lost_task_is_requeued_until_it_runs_out_of_attempts() {
    let mut f = Fixture::new().await;
    let mut done = f.redis.subscribe(keys::DONE_CHANNEL).await;
    let (first, _) = f.start().await;

    let outcome = f.store.requeue_task(&first, 2, "lost").await.unwrap();

    assert_eq!(outcome, RequeueOutcome::Requeued);
    let queue = f.redis.queue().await;
    assert_eq!(queue.len(), 1);
    assert_ne!(queue[0].0, first.entry_id);
    assert_eq!(f.redis.task_hash(f.task).await["queue_entry"], queue[0].0);
    // The abandoned entry is superseded: requeueing it again does nothing.
    let again = f.store.requeue_task(&first, 2, "lost").await.unwrap();
    assert_eq!(again, RequeueOutcome::Skipped);

    let (second, outcome) = f.start().await;
    assert!(
        matches!(outcome, StartOutcome::Started { attempt: 2, .. }),
        "{outcome:?}"
    );
    let outcome = f.store.requeue_task(&second, 2, "lost").await.unwrap();

    assert_eq!(outcome, RequeueOutcome::Failed);
    assert_eq!(done.next().await, f.task.to_string());
    let hash = f.redis.task_hash(f.task).await;
    assert_eq!(
        (hash["status"].as_str(), hash["result"].as_str()),
        ("FAILED", "lost")
    );
    assert!(hash.contains_key("finished_at"));
    assert!(f.redis.queue().await.is_empty());
    assert_eq!(f.store.queue_stats().await.unwrap().held, 0);
    let final_task = f.store.requeue_task(&second, 5, "lost").await.unwrap();
    assert_eq!(final_task, RequeueOutcome::Skipped);
    assert_eq!(RequeueOutcome::Skipped.as_str(), "skipped");
}

/// The task's time to live in ms (-1: none).
async fn ttl(f: &Fixture, task: TaskId) -> i64 {
    f.redis.conn().await.pttl(keys::task(task)).await.unwrap()
}

#[tokio::test]
async fn final_tasks_expire_after_the_retention_and_live_ones_never() {
    let day = 24 * 3600 * 1000;
    let mut f = Fixture::new().await;
    let (entry, _) = f.start().await;
    assert_eq!(ttl(&f, f.task).await, -1, "a running task does not expire");
    f.store
        .finish_tasks(&[f.outcome(TaskStatus::Completed, "R")])
        .await
        .unwrap();
    let left = ttl(&f, f.task).await;
    assert!(
        (day - 60_000..=day).contains(&left),
        "a day by default: {left} ms"
    );
    assert_eq!(
        f.store.requeue_task(&entry, 1, "lost").await.unwrap(),
        RequeueOutcome::Skipped
    );

    // Cancelled, and failed out of attempts, with a retention of a minute; kept forever
    // without one.
    let minute = f
        .store
        .clone()
        .with_retention(Some(Duration::from_secs(60)));
    let cancelled = TaskId::new_random();
    assert!(
        f.store
            .submit_task(cancelled, f.function, "p")
            .await
            .unwrap()
    );
    minute.cancel_task(cancelled, "cancelled").await.unwrap();
    assert!((1..=60_000).contains(&ttl(&f, cancelled).await));

    let lost = TaskId::new_random();
    assert!(f.store.submit_task(lost, f.function, "p").await.unwrap());
    let entries = Store::read_queue(&mut f.reader, "d1", 1, Duration::from_secs(5))
        .await
        .unwrap();
    f.store.start_tasks(&entries, "d1").await.unwrap();
    minute.requeue_task(&entries[0], 1, "lost").await.unwrap();
    assert!((1..=60_000).contains(&ttl(&f, lost).await));

    let forever = f.store.clone().with_retention(None);
    let kept = TaskId::new_random();
    assert!(f.store.submit_task(kept, f.function, "p").await.unwrap());
    forever.cancel_task(kept, "cancelled").await.unwrap();
    assert_eq!(ttl(&f, kept).await, -1);
}

#[tokio::test]
async fn a_lost_claim_cannot_record_but_an_unclaimed_result_can() {
    let mut f = Fixture::new().await;
    let (first, _) = f.start().await;
    assert_eq!(
        f.store.requeue_task(&first, 3, "lost").await.unwrap(),
        RequeueOutcome::Requeued
    );
    let (second, _) = f.start().await;

    let under = |claim: &QueueEntry, result: &str| FinalOutcome {
        claim: Some(claim.entry_id.clone()),
        ..f.outcome(TaskStatus::Completed, result)
    };
    assert_eq!(
        f.store
            .finish_tasks(&[under(&first, "stale")])
            .await
            .unwrap(),
        [FinishOutcome::ClaimLost]
    );
    assert_eq!(f.redis.task_hash(f.task).await["status"], "RUNNING");
    assert_eq!(
        f.store
            .finish_tasks(&[under(&second, "fresh")])
            .await
            .unwrap(),
        [FinishOutcome::Recorded]
    );
    assert_eq!(f.redis.task_hash(f.task).await["result"], "fresh");

    // Without a claim (a worker's result for a task its dispatcher does not hold): recorded
    // unless final.
    let other = TaskId::new_random();
    assert!(f.store.submit_task(other, f.function, "p").await.unwrap());
    let unclaimed = FinalOutcome {
        task_id: other,
        ..f.outcome(TaskStatus::Completed, "late")
    };
    assert_eq!(
        f.store.finish_tasks(&[unclaimed]).await.unwrap(),
        [FinishOutcome::Recorded]
    );
}

#[tokio::test]
async fn a_batch_of_outcomes_is_announced_in_one_message() {
    let mut f = Fixture::new().await;
    for _ in 0..2 {
        let task = TaskId::new_random();
        assert!(f.store.submit_task(task, f.function, "p").await.unwrap());
    }
    let entries = Store::read_queue(&mut f.reader, "d1", 3, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    let store = &f.store;
    store.start_tasks(&entries, "d1").await.unwrap();
    let mut done = f.redis.subscribe(keys::DONE_CHANNEL).await;
    let outcomes: Vec<FinalOutcome> = entries
        .iter()
        .map(|entry| FinalOutcome {
            task_id: entry.task_id,
            status: TaskStatus::Completed,
            result: "r".into(),
            started_at: None,
            finished_at: now_micros(),
            executor: None,
            claim: Some(entry.entry_id.clone()),
        })
        .collect();
    let recorded = store.finish_tasks(&outcomes).await.unwrap();
    assert_eq!(recorded, [FinishOutcome::Recorded; 3]);
    let ids: Vec<String> = entries.iter().map(|e| e.task_id.to_string()).collect();
    assert_eq!(done.next().await, ids.join(" "));
}

#[tokio::test]
async fn a_start_no_replica_confirms_is_an_error_with_replicas_asked_for() {
    let mut f = Fixture::new().await;
    let entry = f.receive().await;
    // This Redis has no replica: the start is written but never confirmed.
    let store = f.store.clone().with_replicas(1);
    let error = store
        .start_tasks(std::slice::from_ref(&entry), "d1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotReplicated {
                wanted: 1,
                confirmed: 0
            }
        ),
        "{error}"
    );
}
