//! The local-mode dispatcher end to end: real Redis, real binaries, real Python executors.
//! Faults are injected once the functions say on a FIFO that they run.

mod common;

use std::time::Duration;

use common::{
    Fifo, NAP, TestSystem, describe, nap_args, serialize_params, serialize_params_many, signalling,
};
use faas::cluster::MemberId;

/// How long a task may take to start on an idle executor.
const START: Duration = Duration::from_secs(30);

const SLEEP_FN: &str =
    "def nap(seconds):\n    import time\n    time.sleep(seconds)\n    return seconds\n";

#[tokio::test(flavor = "multi_thread")]
async fn double_21_is_42() {
    let system = TestSystem::with_mode("local", &[2], &[]).await;
    let f = system
        .register("def double(x):\n    return x * 2\n", "double")
        .await;
    let task = system.execute(&f, "((21,), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(describe(&result), ("int".to_owned(), "42".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn n_executors_run_n_tasks_at_once() {
    let system = TestSystem::with_mode("local", &[4], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let params = serialize_params("((1.5,), {})");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(system.execute_serialized(&f, &params).await);
    }
    let mut started = Vec::new();
    let mut finished = Vec::new();
    for task in &tasks {
        let (status, _) = system.wait_final(task, Duration::from_secs(30)).await;
        assert_eq!(status, "COMPLETED");
        started.push(timestamp(&system, task, "started_at").await);
        finished.push(timestamp(&system, task, "finished_at").await);
    }
    // Truly parallel: every task had started before any finished.
    let last_start = started.iter().max().unwrap();
    let first_finish = finished.iter().min().unwrap();
    assert!(
        last_start < first_finish,
        "tasks ran one after another: started {started:?}, finished {finished:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_are_recorded_in_order() {
    let system = TestSystem::with_mode("local", &[1], &[]).await;
    let f = system.register("def one():\n    return 1\n", "one").await;
    let task = system.execute(&f, "((), {})").await;
    system.wait_final(&task, Duration::from_secs(30)).await;
    let mut times = Vec::new();
    for field in ["submitted_at", "dispatched_at", "started_at", "finished_at"] {
        times.push(timestamp(&system, &task, field).await);
    }
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps out of order: {times:?}"
    );
    assert_eq!(
        system.task_field(&task, "attempts").await.as_deref(),
        Some("1")
    );
    let (status, timeline) = system.get(&format!("/task/{task}")).await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline["task_id"], task.as_str());
    assert_eq!(timeline["status"], "COMPLETED");
    assert_eq!(timeline["attempts"], 1);
    assert!(
        timeline["executor"]
            .as_str()
            .is_some_and(|e| e.starts_with("local/")),
        "{timeline}"
    );
    let served: Vec<u64> = ["submitted_at", "dispatched_at", "started_at", "finished_at"]
        .iter()
        .map(|f| {
            timeline[*f]
                .as_u64()
                .unwrap_or_else(|| panic!("no {f} in {timeline}"))
        })
        .collect();
    assert_eq!(served, times, "the endpoint serves the recorded timestamps");
    let unknown = faas::task::TaskId::new_random();
    assert_eq!(system.get(&format!("/task/{unknown}")).await.0, 404);
    assert_eq!(system.get("/task/nope").await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_dispatchers_tasks_are_recovered_by_its_successor() {
    let mut system = TestSystem::with_mode("local", &[1], &[]).await;
    let mut fifo = Fifo::new();
    let f = system.register(&signalling(NAP), "nap").await;
    let running = system.execute(&f, &nap_args(&fifo, "running", 2.0)).await;
    fifo.next(START).await;
    let queued = system.execute(&f, &nap_args(&fifo, "queued", 0.1)).await;

    // The successor: the same command, a new process (and consumer).
    system.kill(MemberId::Dispatcher(0)).await;
    system.restart(MemberId::Dispatcher(0)).await;

    // The successor requeues them once the dead one's liveness marker expires (5 s).
    for task in [&running, &queued] {
        let (status, result) = system.wait_final(task, Duration::from_secs(40)).await;
        assert_eq!(status, "COMPLETED", "{task}: {:?}", describe(&result));
    }
    assert_eq!(
        system.task_field(&running, "attempts").await.as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_retries_a_lost_task_fails_with_worker_failure() {
    let mut system = TestSystem::with_mode("local", &[1], &["--max-retries", "0"]).await;
    let mut fifo = Fifo::new();
    let f = system.register(&signalling(NAP), "nap").await;
    let task = system.execute(&f, &nap_args(&fifo, "lost", 5.0)).await;
    fifo.next(START).await;
    system.kill(MemberId::Dispatcher(0)).await;
    system.restart(MemberId::Dispatcher(0)).await;

    let (status, result) = system.wait_final(&task, Duration::from_secs(40)).await;
    assert_eq!(status, "FAILED");
    let (kind, message) = describe(&result);
    assert_eq!(kind, "WorkerFailure");
    assert!(message.contains("was lost"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_task_in_hand_and_exits() {
    let system = TestSystem::with_mode("local", &[1], &[]).await;
    let mut fifo = Fifo::new();
    let task = system.submit_naps(&fifo, 1, 1.0).await.remove(0);
    fifo.next(START).await;
    let exit = system
        .terminate(MemberId::Dispatcher(0), Duration::from_secs(15))
        .await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "dispatcher did not exit cleanly: {exit:?}"
    );
    let (status, _) = system.wait_final(&task, Duration::from_secs(5)).await;
    assert_eq!(status, "COMPLETED");
    assert!(
        system.live_dispatchers().await.is_empty(),
        "liveness marker left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn executors_get_no_secrets_and_respect_the_memory_limit() {
    let system = TestSystem::with_mode("local", &[1], &["--memory-limit-mb", "400"]).await;
    let env = system
        .register(
            "def env():\n    import os\n    return sorted(os.environ)\n",
            "env",
        )
        .await;
    let task = system.execute(&env, "((), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(status, "COMPLETED");
    let (_, names) = describe(&result);
    assert!(
        !names.contains("FAAS_"),
        "executor environment leaks: {names}"
    );

    let bomb = system
        .register("def bomb():\n    return bytearray(2 * 1024 ** 3)\n", "bomb")
        .await;
    let task = system.execute(&bomb, "((), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(status, "FAILED");
    assert_eq!(describe(&result).0, "MemoryError");

    let task = system.execute(&env, "((), {})").await;
    assert_eq!(
        system.wait_final(&task, Duration::from_secs(30)).await.0,
        "COMPLETED"
    );
}

/// A task timestamp (µs) from its Redis hash.
async fn timestamp(system: &TestSystem, task: &str, field: &str) -> u64 {
    system
        .task_field(task, field)
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("task {task} has no {field}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_result_request_returns_when_the_task_finishes() {
    let system = TestSystem::with_mode("local", &[1], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    let task = system.execute(&f, "((1.0,), {})").await;
    let asked = std::time::Instant::now();
    let (status, body) = system.get(&format!("/result/{task}?wait=20")).await;
    let waited = asked.elapsed();
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("COMPLETED")),
        "{body}"
    );
    assert!(body["result"].is_string());
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}, not when the task finished"
    );

    let (status, body) = system.get(&format!("/result/{task}?wait=forever")).await;
    assert_eq!(status, 400, "{body}");
    let running = system.execute(&f, "((5.0,), {})").await;
    let (status, body) = system.get(&format!("/result/{running}?wait=0.3")).await;
    assert_eq!(status, 200);
    assert!(body["result"].is_null(), "not final yet: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_results_stream_sends_each_task_as_it_finishes() {
    let system = TestSystem::with_mode("local", &[2], &[]).await;
    let f = system.register(SLEEP_FN, "nap").await;
    // Serialized first, so the three are submitted within milliseconds of each other.
    let params = serialize_params_many(&[
        "((0.5,), {})".into(),
        "((1.5,), {})".into(),
        "((8.0,), {})".into(),
    ]);
    let quick = system.execute_serialized(&f, &params[0]).await;
    let slow = system.execute_serialized(&f, &params[1]).await;
    let late = system.execute_serialized(&f, &params[2]).await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    let asked = std::time::Instant::now();
    let mut response = reqwest::Client::new()
        .post(format!("{}/results", system.url))
        .json(&serde_json::json!({
            "task_ids": [slow, quick, late, unknown, quick],
            "wait": 3.0,
        }))
        .send()
        .await
        .expect("POST /results");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    // Each line with when it arrived.
    let mut lines: Vec<(serde_json::Value, Duration)> = Vec::new();
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("stream") {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push((serde_json::from_slice(&line).unwrap(), asked.elapsed()));
        }
    }
    let ended = asked.elapsed();
    let ids: Vec<&str> = lines
        .iter()
        .map(|(l, _)| l["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "one line per distinct id: {lines:?}");
    assert_eq!(
        ids[0], unknown,
        "unknown ids are answered at once: {lines:?}"
    );
    assert!(lines[0].0["error"].as_str().unwrap().contains("no task"));
    assert_eq!(
        &ids[1..3],
        [quick.as_str(), slow.as_str()],
        "in completion order"
    );
    for (line, _) in &lines[1..3] {
        assert_eq!(line["status"], "COMPLETED", "{line}");
        assert!(line["result"].is_string());
    }
    assert!(
        lines[2].1 - lines[1].1 > Duration::from_millis(500),
        "the quick task was sent before the slow one finished: {lines:?}"
    );
    assert_eq!(ids[3], late);
    assert!(lines[3].0["result"].is_null(), "not final: {:?}", lines[3]);
    assert!(
        ended >= Duration::from_millis(2900) && ended < Duration::from_secs(7),
        "the stream ends when the wait runs out: {ended:?}"
    );

    // Already final: answered at once without a wait.
    let (status, body) = system
        .post("/results", serde_json::json!({"task_ids": [quick]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "COMPLETED", "{body}");

    for (bad, mentions) in [
        (serde_json::json!({"task_ids": []}), "task_ids"),
        (
            serde_json::json!({"task_ids": [quick, "nope"]}),
            "task_ids[1]",
        ),
        (serde_json::json!({"task_ids": [quick], "wait": -1}), "wait"),
        (serde_json::json!({"ids": [quick]}), "ids"),
    ] {
        let (status, body) = system.post("/results", bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(mentions),
            "{bad} -> {body}"
        );
    }
}
