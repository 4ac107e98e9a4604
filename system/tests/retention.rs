//! Retention: final tasks expire after the retention the gateway and the dispatcher are
//! given, live ones never do; a deleted function cannot run, not even from a dispatcher's
//! cache. Expiry is awaited through Redis's keyspace notifications, never a timer.

mod common;

use std::time::Duration;

use common::{Fifo, TestSystem, mode, spec};
use faas::cluster::ClusterSpec;
use faas::task::{FunctionId, TaskId};
use futures_util::StreamExt;

const START: Duration = Duration::from_secs(30);
const DOUBLE: &str = "def double(x):\n    return x * 2\n";

/// A local-mode system with one executor and no prefetch, whose gateway and dispatcher keep
/// final tasks for `retention` seconds.
async fn system(retention: &str) -> TestSystem {
    let retention = vec!["--retention".to_owned(), retention.to_owned()];
    let mut dispatcher_args = retention.clone();
    dispatcher_args.extend(["--prefetch".to_owned(), "0".to_owned()]);
    TestSystem::from_spec(ClusterSpec {
        gateway_args: retention,
        dispatcher_args,
        ..spec(mode("local"), &[1])
    })
    .await
}

/// Waits until the task's hash is gone from Redis, woken by keyspace notifications.
async fn wait_expired(system: &TestSystem, task: &str) {
    let mut events = system
        .keyspace_events("Kgx", &format!("faas:task:{task}"))
        .await;
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        while system.task_field(task, "status").await.is_some() {
            events.next().await.expect("the subscription stays open");
        }
    })
    .await;
    assert!(gone.is_ok(), "task {task} never expired");
}

/// The task's time to live in ms (-1: none).
async fn ttl(system: &TestSystem, task: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(format!("faas:task:{task}"))
        .query_async(&mut system.redis().await)
        .await
        .expect("PTTL")
}

#[tokio::test(flavor = "multi_thread")]
async fn final_tasks_expire_after_the_retention_and_live_ones_stay() {
    let system = system("1").await;
    let f = system.register(DOUBLE, "double").await;
    let done = system.execute(&f, "((21,), {})").await;
    assert_eq!(system.wait_final(&done, START).await.0, "COMPLETED");
    let mut fifo = Fifo::new();
    let naps = system.submit_naps(&fifo, 2, 60.0).await;
    fifo.next(START).await;
    // One runs, one waits: neither expires while live.
    for nap in &naps {
        assert_eq!(ttl(&system, nap).await, -1, "live task {nap}");
    }

    wait_expired(&system, &done).await;
    let (status, body) = system.get(&format!("/result/{done}")).await;
    assert_eq!(status, 404, "{body}");

    // Cancelled (by the gateway): final, so it expires too.
    for nap in &naps {
        let id: TaskId = nap.parse().expect("a task id");
        system.client.cancel(id).await.expect("cancel");
    }
    for nap in &naps {
        wait_expired(&system, nap).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_function_cannot_run_even_from_a_dispatchers_cache() {
    let system = system("0").await;
    let f = system.register(DOUBLE, "double").await;
    let id: FunctionId = f.parse().expect("a function id");
    // The dispatcher has run it, so it has its body cached.
    let before = system.execute(&f, "((1,), {})").await;
    assert_eq!(system.wait_final(&before, START).await.0, "COMPLETED");
    let mut fifo = Fifo::new();
    let nap = system.submit_naps(&fifo, 1, 60.0).await.remove(0);
    fifo.next(START).await;
    // The one executor naps: this one waits in the queue.
    let queued = system.execute(&f, "((2,), {})").await;

    let deleted = system.client.delete_function(id).await.expect("DELETE");
    assert_eq!((deleted.function_id, deleted.deleted), (id, true));
    let (status, body) = system
        .post(
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": common::serialize_params("((3,), {})")}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let again = system.http.delete(format!("{}/functions/{f}", system.url));
    let again = again.send().await.expect("DELETE");
    assert_eq!(again.status(), 404);
    let bad = system.http.delete(format!("{}/functions/nope", system.url));
    assert_eq!(bad.send().await.expect("DELETE").status(), 400);

    let nap: TaskId = nap.parse().expect("a task id");
    system.client.cancel(nap).await.expect("cancel the nap");
    let (status, result) = system.wait_final(&queued, START).await;
    let (kind, message) = common::describe(&result);
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("FAILED", "WorkerFailure")
    );
    assert!(message.contains("deleted"), "{message}");
    let (status, _) = system.get(&format!("/result/{before}")).await;
    assert_eq!(status, 200, "a finished task keeps its result");
    assert_eq!(ttl(&system, &before).await, -1, "--retention 0 keeps tasks");
}
