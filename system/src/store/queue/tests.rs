//! Unit tests of [`super`] against a real redis-server.
use super::*;
use crate::store::FinalOutcome;
use crate::store::testing::{TestRedis, registered_function};
use crate::task::{FunctionId, TaskStatus};

const BLOCK: Duration = Duration::from_secs(5);

/// Submits `n` tasks of `function` in one batch and returns their ids, in order.
async fn submit(store: &Store, function: FunctionId, n: usize) -> Vec<TaskId> {
    let tasks: Vec<(TaskId, String)> = (0..n)
        .map(|_| (TaskId::new_random(), "p".to_owned()))
        .collect();
    assert!(store.submit_tasks(function, &tasks).await.unwrap());
    tasks.into_iter().map(|(id, _)| id).collect()
}

/// A store whose queue group exists and holds `n` submitted tasks, and a reader of it.
async fn queue_of(n: usize) -> (TestRedis, Store, QueueReader) {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let reader = redis.reader().await;
    let function = registered_function(&store).await;
    store.ensure_queue_group().await.unwrap();
    submit(&store, function, n).await;
    (redis, store, reader)
}

fn finished(task_id: TaskId) -> FinalOutcome {
    FinalOutcome {
        task_id,
        status: TaskStatus::Completed,
        result: "r".into(),
        started_at: None,
        finished_at: now_micros(),
        executor: None,
        claim: None,
    }
}

#[tokio::test]
async fn a_blocked_read_receives_a_task_submitted_later() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let mut reader = redis.reader().await;
    let function = registered_function(&store).await;
    store.ensure_queue_group().await.unwrap();
    store.ensure_queue_group().await.unwrap();

    let read = tokio::spawn(async move { Store::read_queue(&mut reader, "d1", 10, BLOCK).await });
    let task = TaskId::new_random();
    store.submit_task(task, function, "p").await.unwrap();
    let entries = read.await.unwrap().unwrap();

    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].task_id, task);
    assert_eq!(
        redis.task_hash(task).await["queue_entry"],
        entries[0].entry_id
    );
}

#[tokio::test]
async fn stats_count_waiting_and_held_entries() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let mut reader = redis.reader().await;
    let function = registered_function(&store).await;
    assert_eq!(store.queue_stats().await.unwrap(), QueueStats::default());
    let tasks = submit(&store, function, 5).await;
    // No dispatcher ever ran: there is no group, and nothing is held.
    assert_eq!(
        store.queue_stats().await.unwrap(),
        QueueStats {
            waiting: 5,
            held: 0
        }
    );

    store.ensure_queue_group().await.unwrap();
    let entries = Store::read_queue(&mut reader, "d1", 2, BLOCK)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| e.task_id).collect::<Vec<_>>(),
        tasks[..2]
    );
    assert_eq!(
        store.queue_stats().await.unwrap(),
        QueueStats {
            waiting: 3,
            held: 2
        }
    );

    store.finish_tasks(&[finished(tasks[0])]).await.unwrap();
    assert_eq!(
        store.queue_stats().await.unwrap(),
        QueueStats {
            waiting: 3,
            held: 1
        }
    );
}

#[tokio::test]
async fn pending_entries_are_listed_across_pages_and_deleted_ones_acknowledged() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let mut reader = redis.reader().await;
    let function = registered_function(&store).await;
    store.ensure_queue_group().await.unwrap();
    let n = 2 * PENDING_PAGE + 1;
    submit(&store, function, n).await;
    let entries = Store::read_queue(&mut reader, "d1", n, BLOCK)
        .await
        .unwrap();
    assert_eq!(entries.len(), n);
    // An entry deleted after delivery (without an acknowledgement) is not listed.
    let gone = &entries[PENDING_PAGE];
    let _: i64 = redis
        .conn()
        .await
        .xdel(keys::QUEUE, &[&gone.entry_id])
        .await
        .unwrap();

    let pending = store.pending_entries("d1").await.unwrap();

    let mut expected = entries.clone();
    expected.remove(PENDING_PAGE);
    assert_eq!(pending.len(), n - 1);
    assert!(pending.iter().all(|p| p.consumer == "d1"));
    assert_eq!(
        pending.into_iter().map(|p| p.entry).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        store.queue_stats().await.unwrap().held,
        u64::try_from(n - 1).unwrap()
    );
    assert!(store.pending_entries("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn orphans_are_the_entries_of_dead_dispatchers() {
    let (redis, store, mut reader) = queue_of(5).await;
    let mut read = async |consumer: &str, count: usize| {
        Store::read_queue(&mut reader, consumer, count, BLOCK)
            .await
            .unwrap()
    };
    read("me", 1).await;
    read("alive", 1).await;
    let dead = read("dead", 2).await;
    let idle = read("idle", 1).await;
    store
        .finish_tasks(&[finished(idle[0].task_id)])
        .await
        .unwrap();
    store
        .mark_dispatcher_alive("alive", Duration::from_secs(60))
        .await
        .unwrap();

    let orphans = store.orphaned_entries("me").await.unwrap();

    assert_eq!(
        orphans,
        dead.into_iter()
            .map(|entry| OrphanedEntry {
                consumer: "dead".into(),
                entry
            })
            .collect::<Vec<_>>()
    );
    let mut conn = redis.conn().await;
    let info: StreamInfoConsumersReply = conn
        .xinfo_consumers(keys::QUEUE, keys::QUEUE_GROUP)
        .await
        .unwrap();
    let mut names: Vec<String> = info.consumers.into_iter().map(|c| c.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["alive", "dead", "me"],
        "a dead consumer holding nothing is removed"
    );
}

#[tokio::test]
async fn a_dispatcher_is_alive_until_retired() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    store.ensure_queue_group().await.unwrap();
    let mut conn = redis.conn().await;
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(keys::QUEUE)
        .arg(keys::QUEUE_GROUP)
        .arg("d1")
        .query_async(&mut conn)
        .await
        .unwrap();
    store
        .mark_dispatcher_alive("d1", Duration::from_secs(60))
        .await
        .unwrap();
    let ttl: i64 = conn.pttl(keys::dispatcher("d1")).await.unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    store.retire_dispatcher("d1").await.unwrap();

    let alive: bool = conn.exists(keys::dispatcher("d1")).await.unwrap();
    assert!(!alive);
    let info: StreamInfoConsumersReply = conn
        .xinfo_consumers(keys::QUEUE, keys::QUEUE_GROUP)
        .await
        .unwrap();
    assert!(info.consumers.is_empty());
}

#[tokio::test]
async fn pending_entries_can_be_filtered_by_idle_time() {
    let (redis, store, mut reader) = queue_of(2).await;
    let entries = Store::read_queue(&mut reader, "d1", 2, BLOCK)
        .await
        .unwrap();
    let idle = Duration::from_secs(60);
    assert!(
        store
            .pending_entries_idle("d1", idle)
            .await
            .unwrap()
            .is_empty(),
        "both were just delivered"
    );
    // The first has been idle for a minute (XCLAIM can say so without the wait).
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(keys::QUEUE)
        .arg(keys::QUEUE_GROUP)
        .arg("d1")
        .arg(0)
        .arg(&entries[0].entry_id)
        .arg("IDLE")
        .arg(61_000)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let stale = store.pending_entries_idle("d1", idle).await.unwrap();
    assert_eq!(
        stale.into_iter().map(|p| p.entry).collect::<Vec<_>>(),
        vec![entries[0].clone()]
    );
}

#[tokio::test]
async fn a_refresh_tells_whether_the_liveness_had_lapsed() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let ttl = Duration::from_secs(60);
    assert!(
        !store.refresh_dispatcher_liveness("d1", ttl).await.unwrap(),
        "never marked: lapsed"
    );
    assert!(store.refresh_dispatcher_liveness("d1", ttl).await.unwrap());
    store.end_liveness("d1").await.unwrap();
    assert!(!store.refresh_dispatcher_liveness("d1", ttl).await.unwrap());
    let alive: bool = redis
        .conn()
        .await
        .exists(keys::dispatcher("d1"))
        .await
        .unwrap();
    assert!(alive, "marked again");
}

#[tokio::test]
async fn a_consumer_is_dropped_only_if_dead_and_empty_when_dropped() {
    let (redis, store, mut reader) = queue_of(1).await;
    // "back" was seen dead and empty, then came back and read an entry before the removal;
    // "gone" is dead and empty; "alive" is empty but alive.
    Store::read_queue(&mut reader, "back", 1, BLOCK)
        .await
        .unwrap();
    for empty in ["gone", "alive"] {
        let _: i64 = redis::cmd("XGROUP")
            .arg(&["CREATECONSUMER", keys::QUEUE, keys::QUEUE_GROUP, empty])
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
    }
    store
        .mark_dispatcher_alive("alive", Duration::from_secs(60))
        .await
        .unwrap();
    let mut call = ScriptCall::new(Transition::DropConsumers, &[keys::QUEUE], keys::QUEUE_GROUP);
    for consumer in ["back", "gone", "alive"] {
        call.task(keys::dispatcher(consumer), consumer);
    }
    let dropped: Vec<i64> = store.run_script(&call).await.unwrap();
    assert_eq!(dropped, [0, 1, 0]);
    let info: StreamInfoConsumersReply = redis
        .conn()
        .await
        .xinfo_consumers(keys::QUEUE, keys::QUEUE_GROUP)
        .await
        .unwrap();
    let mut left: Vec<String> = info.consumers.into_iter().map(|c| c.name).collect();
    left.sort();
    assert_eq!(left, ["alive", "back"]);
}
