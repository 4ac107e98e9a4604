//! `POST /cancel/{task_id}` in every mode: a queued task never runs, a running one has its
//! executor killed (the function stops mid-way) and replaced (the next task runs at once), and
//! both are recorded as FAILED with a `TaskCancelled` exception.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestSystem, describe};

/// Leaves `<path>.start`, sleeps, then leaves `<path>.end`: what ran, and how far, is on disk.
const MARKED_SLEEP: &str = "import time\ndef marked(path, seconds):\n    open(path + '.start', 'w').close()\n    time.sleep(seconds)\n    open(path + '.end', 'w').close()\n    return seconds\n";
const ECHO: &str = "def echo(x):\n    return x\n";

async fn cancel_queued_and_running(mode: &str) {
    // One executor, and no prefetch: the second task stays in the queue.
    let system = one_executor(mode, 0).await;
    let dir = tempdir(mode);
    let f = system.register(MARKED_SLEEP, "marked").await;
    let marker = |name: &str| dir.join(name).display().to_string();
    let running = system
        .execute(&f, &format!("(({:?}, 4.0), {{}})", marker("running")))
        .await;
    let queued = system
        .execute(&f, &format!("(({:?}, 0.1), {{}})", marker("queued")))
        .await;
    let started = dir.join("running.start");
    common::wait_until(Duration::from_secs(30), "the first task starts", || {
        started.exists()
    });
    assert_eq!(status_of(&system, &queued).await, "QUEUED");

    // The queued task: cancelled at once, and never runs.
    let (code, body) = system
        .post(&format!("/cancel/{queued}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["previous_status"], "QUEUED", "{body}");
    assert_eq!(body["status"], "FAILED", "{body}");

    // The running task: final at once; its executor is killed before the function ends.
    let asked = Instant::now();
    let (code, body) = system
        .post(&format!("/cancel/{running}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["previous_status"], "RUNNING", "{body}");
    for task in [&running, &queued] {
        let (status, result) = system.wait_final(task, Duration::from_secs(1)).await;
        assert_eq!(status, "FAILED");
        let (kind, message) = describe(&result);
        assert_eq!(kind, "TaskCancelled", "{message}");
        assert!(message.contains("cancelled"), "{message}");
    }
    let (_, timeline) = system.get(&format!("/task/{running}")).await;
    assert!(timeline["cancelled_at"].is_u64(), "{timeline}");

    // The executor was replaced: a new task runs well before the cancelled one would have
    // ended (4 s), and the cancelled function never got to its end.
    let echo = system.register(ECHO, "echo").await;
    let next = system.execute(&echo, "((7,), {})").await;
    let (status, result) = system.wait_final(&next, Duration::from_secs(20)).await;
    assert_eq!(
        (status.as_str(), describe(&result).1.as_str()),
        ("COMPLETED", "7")
    );
    let elapsed = asked.elapsed();
    std::thread::sleep(Duration::from_secs(4).saturating_sub(elapsed) + Duration::from_secs(1));
    assert!(
        !dir.join("running.end").exists(),
        "the cancelled function ran to its end"
    );
    assert!(
        !dir.join("queued.start").exists(),
        "the cancelled queued task ran"
    );

    // Final tasks cannot be cancelled; unknown and malformed ids are refused.
    let (code, body) = system
        .post(&format!("/cancel/{next}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("COMPLETED"),
        "{body}"
    );
    let (code, _) = system
        .post(
            "/cancel/00000000-0000-4000-8000-000000000000",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(code, 404);
    let (code, body) = system.post("/cancel/nope", serde_json::json!({})).await;
    assert_eq!(code, 400, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A task already handed to an executor's queue (prefetched) but not started is skipped.
async fn cancel_prefetched(mode: &str) {
    let system = one_executor(mode, 1).await;
    let dir = tempdir(&format!("{mode}-prefetch"));
    let f = system.register(MARKED_SLEEP, "marked").await;
    let marker = |name: &str| dir.join(name).display().to_string();
    let first = system
        // Long enough for a pull worker to hear of the cancellation (with its next heartbeat,
        // within a second) before its executor is free again, even on a loaded machine.
        .execute(&f, &format!("(({:?}, 4.0), {{}})", marker("first")))
        .await;
    let second = system
        .execute(&f, &format!("(({:?}, 0.1), {{}})", marker("second")))
        .await;
    let started = dir.join("first.start");
    common::wait_until(Duration::from_secs(30), "the first task starts", || {
        started.exists()
    });
    // Wait until the second is handed out too (RUNNING while it waits for the executor).
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&system, &second).await != "RUNNING" {
        assert!(
            Instant::now() < deadline,
            "the second task was never handed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, body) = system
        .post(&format!("/cancel/{second}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    let (status, _) = system.wait_final(&first, Duration::from_secs(20)).await;
    assert_eq!(status, "COMPLETED", "the task ahead of it is untouched");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!dir.join("second.start").exists(), "the cancelled task ran");
    let (status, result) = system.wait_final(&second, Duration::from_secs(1)).await;
    assert_eq!(
        (status.as_str(), describe(&result).0.as_str()),
        ("FAILED", "TaskCancelled")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A system with one executor that takes `prefetch` more tasks than it runs.
async fn one_executor(mode: &str, prefetch: u32) -> TestSystem {
    let prefetch = prefetch.to_string();
    if mode != "pull" {
        return TestSystem::with_mode(mode, &[1], &["--prefetch", &prefetch]).await;
    }
    // Pull workers decide their own prefetch.
    let mut system = TestSystem::with_mode(mode, &[], &[]).await;
    system
        .spawn_worker_with_env(mode, 1, &[("FAAS_WORKER_PREFETCH", &prefetch)])
        .await;
    system
}

async fn status_of(system: &TestSystem, task: &str) -> String {
    let (_, body) = system.get(&format!("/status/{task}")).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "faas-cancel-{tag}-{}-{}",
        std::process::id(),
        uuid_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    assert!(Path::new(&dir).is_dir());
    dir
}

fn uuid_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test(flavor = "multi_thread")]
async fn local_cancel_queued_and_running() {
    cancel_queued_and_running("local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_cancel_queued_and_running() {
    cancel_queued_and_running("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_cancel_queued_and_running() {
    cancel_queued_and_running("push").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_cancel_prefetched() {
    cancel_prefetched("local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_cancel_prefetched() {
    cancel_prefetched("pull").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_cancel_prefetched() {
    cancel_prefetched("push").await;
}
