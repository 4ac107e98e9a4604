//! Pull and push modes end to end: real dispatcher and worker processes over ZeroMQ, each
//! test run in both modes. Faults are injected once the functions say on a FIFO that they run;
//! workers are known to have registered from the supervisor's readiness notifications.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{Fifo, TestSystem, describe, serialize_params};
use faas::cluster::MemberId;
use rstest::rstest;

/// How long the tasks may take to start.
const START: Duration = Duration::from_secs(30);

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

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_run_four_sleeps_at_once(#[case] mode: &str) {
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

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn work_is_shared_in_proportion_to_executors(#[case] mode: &str) {
    // No prefetch (pull workers take their own --prefetch): each task goes to an idle executor.
    let no_prefetch = vec!["--prefetch".to_owned(), "0".to_owned()];
    let system = TestSystem::from_spec(faas::cluster::ClusterSpec {
        dispatcher_args: no_prefetch.clone(),
        worker_args: no_prefetch,
        ..common::spec(common::mode(mode), &[4, 1])
    })
    .await;
    let f = system.register(SLEEP_FN, "nap").await;
    let tasks = submit_sleeps(&system, &f, 25, 0.2).await;
    for task in &tasks {
        assert_eq!(
            system.wait_final(task, Duration::from_secs(60)).await.0,
            "COMPLETED"
        );
    }
    let counts = workers_of(&system, &tasks).await;
    let count = |i| {
        counts
            .get(&MemberId::Worker(i).to_string())
            .copied()
            .unwrap_or(0)
    };
    let (big, small) = (count(0), count(1));
    // 4:1 executors: expect about 20 and 5; allow for the edges of the run.
    assert!(
        (16..=23).contains(&big) && small >= 2,
        "uneven split: {counts:?}"
    );
}

/// Kills a worker running tasks; returns the system, the FIFO its naps signal on (kept open
/// for their reruns), the tasks, and when the kill happened.
async fn kill_a_busy_worker(
    mode: &str,
    max_retries: &str,
) -> (TestSystem, Fifo, Vec<String>, Instant) {
    let args = [
        "--heartbeat",
        "0.5",
        "--heartbeat-misses",
        "3",
        "--max-retries",
        max_retries,
    ];
    let system = TestSystem::with_mode(mode, &[2, 2], &args).await;
    let mut fifo = Fifo::new();
    let tasks = system.submit_naps(&fifo, 4, 2.0).await;
    // Four executors run one each, so both workers hold tasks.
    let executors: HashSet<String> = fifo
        .take(4, START)
        .await
        .into_iter()
        .filter_map(|signal| signal.split(' ').nth(1).map(str::to_owned))
        .collect();
    assert_eq!(
        executors.len(),
        4,
        "not one task per executor: {executors:?}"
    );
    system.kill(MemberId::Worker(0)).await;
    (system, fifo, tasks, Instant::now())
}

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_workers_tasks_are_retried(#[case] mode: &str) {
    let (mut system, _fifo, tasks, killed) = kill_a_busy_worker(mode, "2").await;
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

    // A new worker serves again, alone.
    let fresh = MemberId::Worker(system.add_worker(1, &[]).await);
    system.kill(MemberId::Worker(1)).await;
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
            .map(|e| e.starts_with(&format!("{fresh}/"))),
        Some(true)
    );
}

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn without_retries_a_killed_workers_tasks_fail(#[case] mode: &str) {
    let (system, _fifo, tasks, _) = kill_a_busy_worker(mode, "0").await;
    let killed = format!("worker {} ", MemberId::Worker(0));
    let mut failed = 0;
    for task in &tasks {
        let (status, result) = system.wait_final(task, Duration::from_secs(30)).await;
        if status == "FAILED" {
            let (kind, message) = describe(&result);
            assert_eq!(kind, "WorkerFailure");
            assert!(
                message.contains(&killed) && message.contains("attempted 1 time"),
                "{message}"
            );
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "the dead worker held two tasks");
}

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_survives_a_dispatcher_restart(#[case] mode: &str) {
    let mut system = TestSystem::with_mode(mode, &[1], &["--heartbeat", "0.5"]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    system.kill(MemberId::Dispatcher(0)).await;
    system.restart(MemberId::Dispatcher(0)).await;
    // It registers again by itself: its second readiness notification.
    system
        .cluster
        .wait_ready(MemberId::Worker(0), 2, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let task = submit_sleeps(&system, &f, 1, 0.1).await.remove(0);
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_the_secret_gets_no_task(#[case] mode: &str) {
    let mut system = TestSystem::control_plane_only(common::spec(common::mode(mode), &[])).await;
    system
        .add_dispatcher(&[], &[("FAAS_WORKER_SECRET", "right")])
        .await;
    let f = system.register("def one():\n    return 1\n", "one").await;
    let task = system.execute(&f, "((), {})").await;

    let intruder = MemberId::Worker(system.spawn_worker(1, &[("FAAS_WORKER_SECRET", "wrong")]));
    let status = system
        .cluster
        .wait_exit(intruder, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a refused worker exits");
    assert_eq!(
        status.code(),
        Some(i32::from(faas::worker::EXIT_REJECTED)),
        "a refused worker exits with {status}"
    );
    let registered = system
        .cluster
        .member(intruder)
        .unwrap_or_else(|e| panic!("{e}"))
        .ready_count();
    assert_eq!(registered, 0, "a refused worker never registers");
    assert_eq!(
        system.get(&format!("/status/{task}")).await.1["status"],
        "QUEUED"
    );

    system
        .add_worker(1, &[("FAAS_WORKER_SECRET", "right")])
        .await;
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_worker_finish_and_report_its_task(#[case] mode: &str) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let mut fifo = Fifo::new();
    let task = system.submit_naps(&fifo, 1, 1.0).await.remove(0);
    fifo.next(START).await;
    let exit = system
        .terminate(MemberId::Worker(0), Duration::from_secs(10))
        .await;
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
