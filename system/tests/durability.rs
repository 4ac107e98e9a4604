//! Durability: Redis restarts, dispatcher and worker crashes. Nothing is lost, nothing hangs.

mod common;

use std::time::{Duration, Instant};

use common::{TestSystem, serialize_params};

const SLEEP_FN: &str =
    "def nap(seconds):\n    import time\n    time.sleep(seconds)\n    return seconds\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_keeps_the_data_and_the_services_recover() {
    let mut system = TestSystem::with_mode("local", &[2], &[]).await;
    let f = system
        .register("def double(x):\n    return x * 2\n", "double")
        .await;
    let before = system.execute(&f, "((21,), {})").await;
    assert_eq!(
        system.wait_final(&before, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );

    system.redis.stop();
    for path in [
        format!("/status/{before}"),
        format!("/result/{before}"),
        "/health".to_owned(),
    ] {
        let started = Instant::now();
        let (status, body) = system.get(&path).await;
        assert_eq!(status, 503, "GET {path} while Redis is down: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("unavailable"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "GET {path} took {:?}",
            started.elapsed()
        );
    }
    let params = serialize_params("((5,), {})");
    let (status, body) = system
        .post(
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": params}),
        )
        .await;
    assert_eq!(status, 503, "{body}");

    system.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while system.get("/health").await.0 != 200 {
        assert!(Instant::now() < deadline, "gateway did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = system.get(&format!("/result/{before}")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("COMPLETED")),
        "the task survived"
    );
    // The function survived, and the dispatcher serves again.
    let after = system.execute_serialized(&f, &params).await;
    assert_eq!(
        system.wait_final(&after, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

/// Kills the dispatcher while workers run tasks and others wait, starts a new one on the
/// same port: every task completes, none is lost or stays RUNNING.
async fn a_dispatcher_crash_loses_nothing(mode: &str) {
    let mut system = TestSystem::with_mode(mode, &[2, 2], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let params = serialize_params("((1.0,), {})");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(system.execute_serialized(&f, &params).await);
    }
    for task in &tasks[..4] {
        system
            .wait_status(task, "RUNNING", Duration::from_secs(30))
            .await;
    }
    system.dispatchers[0].signal(libc::SIGKILL);
    system.dispatchers[0]
        .wait_exit(Duration::from_secs(5))
        .expect("dispatcher died");
    let port = system.port.to_string();
    system.spawn_dispatcher(&["-m", mode, "-p", &port]).await;
    for task in &tasks {
        let (status, _) = system.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(status, "COMPLETED", "task {task}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_a_dispatcher_crash_loses_nothing() {
    a_dispatcher_crash_loses_nothing("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_a_dispatcher_crash_loses_nothing() {
    a_dispatcher_crash_loses_nothing("push").await;
}

/// Kills every worker: queued tasks wait, running ones fail (no retries), and new workers
/// run what waited.
async fn losing_every_worker(mode: &str) {
    let args = ["--heartbeat", "0.5", "--max-retries", "0"];
    let mut system = TestSystem::with_mode(mode, &[1, 1], &args).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let params = serialize_params("((3.0,), {})");
    let mut tasks = Vec::new();
    for _ in 0..5 {
        tasks.push(system.execute_serialized(&f, &params).await);
    }
    for task in &tasks[..2] {
        system
            .wait_status(task, "RUNNING", Duration::from_secs(30))
            .await;
    }
    for worker in &mut system.workers {
        worker.signal(libc::SIGKILL);
        worker
            .wait_exit(Duration::from_secs(5))
            .expect("worker died");
    }
    // Detection takes 1.5 s; the running tasks fail, the rest keep waiting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut failed = 0;
    for task in &tasks {
        let (_, body) = system.get(&format!("/status/{task}")).await;
        match body["status"].as_str() {
            Some("FAILED") => failed += 1,
            Some("QUEUED" | "RUNNING") => {}
            other => panic!("task {task} is {other:?} with no worker alive"),
        }
    }
    assert!(
        failed >= 2,
        "the tasks the dead workers held must fail, {failed} did"
    );

    let port = system.port;
    system.spawn_worker(mode, 2, port).await;
    let mut completed = 0;
    for task in &tasks {
        completed +=
            usize::from(system.wait_final(task, Duration::from_secs(60)).await.0 == "COMPLETED");
    }
    assert_eq!(completed + failed, tasks.len(), "every task ends");
    assert!(completed >= 1, "the waiting tasks run on the new worker");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_losing_every_worker() {
    losing_every_worker("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_losing_every_worker() {
    losing_every_worker("push").await;
}
