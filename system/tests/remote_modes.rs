//! Pull and push modes end to end: real dispatcher and worker processes over ZeroMQ.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestSystem, describe, serialize_params};

const SLEEP_FN: &str =
    "def nap(seconds):\n    import time\n    time.sleep(seconds)\n    return seconds\n";

/// Submits `n` sleeps of `seconds` with one serialization of the arguments.
async fn submit_sleeps(system: &TestSystem, function: &str, n: usize, seconds: f64) -> Vec<String> {
    let params = serialize_params(&format!("(({seconds},), {{}})"));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tasks.push(system.execute_serialized(function, &params).await);
    }
    tasks
}

/// Which worker (the part of `executor` before the slash) ran each task.
async fn workers_of(system: &TestSystem, tasks: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for task in tasks {
        let executor = system
            .task_field(task, "executor")
            .await
            .expect("executor recorded");
        let worker = executor.split('/').next().unwrap_or_default().to_owned();
        *counts.entry(worker).or_default() += 1;
    }
    counts
}

async fn two_workers_run_four_sleeps_at_once(mode: &str) {
    let system = TestSystem::with_mode(mode, &[2, 2], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let tasks = submit_sleeps(&system, &f, 4, 1.0).await;
    let mut started = Vec::new();
    let mut finished = Vec::new();
    for task in &tasks {
        let (status, _) = system.wait_final(task, Duration::from_secs(30)).await;
        assert_eq!(status, "COMPLETED");
        let at = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).expect("timestamp");
        started.push(at(system.task_field(task, "started_at").await));
        finished.push(at(system.task_field(task, "finished_at").await));
    }
    assert!(
        started.iter().max() < finished.iter().min(),
        "not all four ran at once: started {started:?}, finished {finished:?}"
    );
    let counts = workers_of(&system, &tasks).await;
    assert_eq!(
        counts.len(),
        2,
        "tasks did not land on both workers: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_two_workers_run_four_sleeps_at_once() {
    two_workers_run_four_sleeps_at_once("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_two_workers_run_four_sleeps_at_once() {
    two_workers_run_four_sleeps_at_once("push").await;
}

async fn work_is_shared_in_proportion_to_executors(mode: &str) {
    let system = TestSystem::with_mode(mode, &[4, 1], &["--prefetch", "0"]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let tasks = submit_sleeps(&system, &f, 25, 0.2).await;
    for task in &tasks {
        assert_eq!(
            system.wait_final(task, Duration::from_secs(60)).await.0,
            "COMPLETED"
        );
    }
    let counts = workers_of(&system, &tasks).await;
    let (big, small) = (
        counts.get("w0").copied().unwrap_or(0),
        counts.get("w1").copied().unwrap_or(0),
    );
    // 4:1 executors: expect about 20 and 5; allow for the edges of the run.
    assert!(
        (16..=23).contains(&big) && small >= 2,
        "uneven split: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_work_is_shared_in_proportion_to_executors() {
    work_is_shared_in_proportion_to_executors("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_work_is_shared_in_proportion_to_executors() {
    work_is_shared_in_proportion_to_executors("push").await;
}

/// Kills a worker running tasks; returns the system, the tasks, and when the kill happened.
async fn kill_a_busy_worker(mode: &str, max_retries: &str) -> (TestSystem, Vec<String>, Instant) {
    let args = [
        "--heartbeat",
        "0.5",
        "--heartbeat-misses",
        "3",
        "--max-retries",
        max_retries,
    ];
    let mut system = TestSystem::with_mode(mode, &[2, 2], &args).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let tasks = submit_sleeps(&system, &f, 4, 2.0).await;
    for task in &tasks {
        system
            .wait_status(task, "RUNNING", Duration::from_secs(30))
            .await;
    }
    // Wait until both workers actually hold tasks, then kill the first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    system.workers[0].signal(libc::SIGKILL);
    system.workers[0]
        .wait_exit(Duration::from_secs(5))
        .expect("worker died");
    (system, tasks, Instant::now())
}

async fn a_killed_workers_tasks_are_retried(mode: &str) {
    let (mut system, tasks, killed) = kill_a_busy_worker(mode, "2").await;
    for task in &tasks {
        let (status, result) = system.wait_final(task, Duration::from_secs(30)).await;
        assert_eq!(status, "COMPLETED", "{task}: {:?}", describe(&result));
    }
    // Detection (1.5 s) plus a rerun (2 s) plus slack.
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "recovery took {:?}",
        killed.elapsed()
    );
    let retried = {
        let mut n = 0;
        for task in &tasks {
            n += usize::from(system.task_field(task, "attempts").await.as_deref() == Some("2"));
        }
        n
    };
    assert!(retried >= 1, "no task was retried");

    // A restarted worker serves again.
    let index = system.spawn_worker(mode, 1, system.port).await;
    system.workers[1].signal(libc::SIGKILL);
    let f = system.register("def one():\n    return 1\n", "one").await;
    let task = system.execute(&f, "((), {})").await;
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
    assert_eq!(
        system
            .task_field(&task, "executor")
            .await
            .map(|e| e.starts_with(&format!("w{index}/"))),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_a_killed_workers_tasks_are_retried() {
    a_killed_workers_tasks_are_retried("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_a_killed_workers_tasks_are_retried() {
    a_killed_workers_tasks_are_retried("push").await;
}

async fn without_retries_a_killed_workers_tasks_fail(mode: &str) {
    let (system, tasks, _) = kill_a_busy_worker(mode, "0").await;
    let mut failed = 0;
    for task in &tasks {
        let (status, result) = system.wait_final(task, Duration::from_secs(30)).await;
        if status == "FAILED" {
            let (kind, message) = describe(&result);
            assert_eq!(kind, "WorkerFailure");
            assert!(
                message.contains("worker w0") && message.contains("attempted 1 time"),
                "{message}"
            );
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "the dead worker held two tasks");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_without_retries_a_killed_workers_tasks_fail() {
    without_retries_a_killed_workers_tasks_fail("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_without_retries_a_killed_workers_tasks_fail() {
    without_retries_a_killed_workers_tasks_fail("push").await;
}

async fn a_worker_survives_a_dispatcher_restart(mode: &str) {
    let mut system = TestSystem::with_mode(mode, &[1], &["--heartbeat", "0.5"]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    system.dispatchers[0].signal(libc::SIGKILL);
    system.dispatchers[0]
        .wait_exit(Duration::from_secs(5))
        .expect("dispatcher died");
    let port = system.port.to_string();
    system
        .spawn_dispatcher(&["-m", mode, "-p", &port, "--heartbeat", "0.5"])
        .await;
    system.workers[0]
        .wait_for_log("registered with the dispatcher", 2, Duration::from_secs(20))
        .await;
    let task = submit_sleeps(&system, &f, 1, 0.1).await.remove(0);
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_a_worker_survives_a_dispatcher_restart() {
    a_worker_survives_a_dispatcher_restart("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_a_worker_survives_a_dispatcher_restart() {
    a_worker_survives_a_dispatcher_restart("push").await;
}

async fn a_worker_without_the_secret_gets_no_task(mode: &str) {
    let mut system = TestSystem::without_dispatcher(&[]).await;
    let port = common::free_port();
    let port_arg = port.to_string();
    system.port = port;
    system
        .spawn_dispatcher_with_env(
            &["-m", mode, "-p", &port_arg],
            &[("FAAS_WORKER_SECRET", "right")],
        )
        .await;
    let f = system.register("def one():\n    return 1\n", "one").await;
    let task = system.execute(&f, "((), {})").await;

    let mut intruder = system.start_worker_process(mode, 1, &[("FAAS_WORKER_SECRET", "wrong")]);
    let status = intruder
        .wait_exit(Duration::from_secs(30))
        .expect("a refused worker exits");
    assert!(!status.success());
    intruder
        .wait_for_log("refused this worker", 1, Duration::from_secs(1))
        .await;
    assert_eq!(
        system.get(&format!("/status/{task}")).await.1["status"],
        "QUEUED"
    );

    let welcome = system.start_worker_process(mode, 1, &[("FAAS_WORKER_SECRET", "right")]);
    welcome
        .wait_for_log("registered with the dispatcher", 1, Duration::from_secs(60))
        .await;
    system.workers.push(welcome);
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_a_worker_without_the_secret_gets_no_task() {
    a_worker_without_the_secret_gets_no_task("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_a_worker_without_the_secret_gets_no_task() {
    a_worker_without_the_secret_gets_no_task("push").await;
}

async fn sigterm_lets_a_worker_finish_and_report_its_task(mode: &str) {
    let mut system = TestSystem::with_mode(mode, &[1], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let task = submit_sleeps(&system, &f, 1, 1.0).await.remove(0);
    system
        .wait_status(&task, "RUNNING", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    system.workers[0].signal(libc::SIGTERM);
    let exit = system.workers[0].wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "worker did not stop cleanly: {exit:?}"
    );
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(5)).await.0,
        "COMPLETED"
    );
    assert_eq!(
        system.task_field(&task, "attempts").await.as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_sigterm_lets_a_worker_finish_and_report_its_task() {
    sigterm_lets_a_worker_finish_and_report_its_task("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_sigterm_lets_a_worker_finish_and_report_its_task() {
    sigterm_lets_a_worker_finish_and_report_its_task("push").await;
}
