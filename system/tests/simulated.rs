//! Executors simulated in Rust (`--simulate-executors`), the control-plane benchmark mode:
//! in every dispatch mode a cluster whose executors' Python does not exist (so none can have
//! run) completes every task with the result of a function returning `None`, and a task
//! deadline shorter than the simulated run still fails the task with `WorkerFailure`. No
//! Python runs on the test's side either: the payloads are fixed.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestSystem, spec_with_python};
use faas::cluster::ClusterSpec;
use faas::dispatcher::{Mode, worker_failure_result};
use faas::executor::simulated::NONE_RESULT;
use faas::task::{FunctionId, TaskId};

/// What the executor hosts are told their Python is: nothing there, so a host that looked
/// for it would fail to start.
const NO_PYTHON: &str = "/nonexistent/faas-simulated-executors/python";

/// `codecs.encode(dill.dumps(noop), "base64")` of `def noop(*args, **kwargs): return None`
/// (dill 0.4.1, Python 3.11); never loaded: simulated executors do not look at it.
const NOOP: &str = "gASVzgAAAAAAAACMCmRpbGwuX2RpbGyUjBBfY3JlYXRlX2Z1bmN0aW9ulJOUKGgAjAxfY3JlYXRl\n\
X2NvZGWUk5QoQwICAZRLAEsASwBLAksBSw9DBpcAZABTAJROhZQpjARhcmdzlIwGa3dhcmdzlIaU\n\
jAsvdG1wL2dlbi5weZSMBG5vb3CUaAxLAkMHgADYCw+INJRDAJQpKXSUUpRjX19idWlsdGluX18K\n\
X19tYWluX18KaAxOTnSUUpR9lH2UjA9fX2Fubm90YXRpb25zX1+UfZRzhpRiLg==\n";

/// `codecs.encode(dill.dumps(((), {})), "base64")`: no arguments.
const NO_ARGS: &str = "gASVBgAAAAAAAAApfZSGlC4=\n";

/// Tasks submitted per mode.
const TASKS: usize = 200;

/// A `mode` cluster of simulated executors (local: one pool of their sum; pull and push: a
/// worker per entry) taking `run_us` per task, with extra dispatcher flags. The flags go to
/// every dispatcher and worker alike, as a benchmark harness gives them.
async fn simulated(
    mode: Mode,
    executors: &[u32],
    run_us: u64,
    dispatcher_args: &[&str],
) -> TestSystem {
    let flags: Vec<String> = ["--simulate-executors", "--simulated-run-us"]
        .iter()
        .map(|f| (*f).to_owned())
        .chain([run_us.to_string()])
        .collect();
    let spec = ClusterSpec {
        dispatcher_args: flags
            .iter()
            .cloned()
            .chain(dispatcher_args.iter().map(|a| (*a).to_owned()))
            .collect(),
        worker_args: flags,
        ..spec_with_python(mode, executors, PathBuf::from(NO_PYTHON))
    };
    TestSystem::from_spec(spec).await
}

/// Registers the no-op function and submits `n` executions of it in one batch; the task ids.
async fn submit_noops(system: &TestSystem, n: usize) -> Vec<TaskId> {
    let function: FunctionId = system
        .client
        .register("noop", NOOP)
        .await
        .expect("register")
        .function_id;
    system
        .client
        .execute_batch(function, vec![NO_ARGS.to_owned(); n])
        .await
        .expect("execute a batch")
        .task_ids
}

/// Every task of a `mode` cluster of simulated executors completes once, with `None`, and
/// its timeline says which executor ran it and when.
async fn every_task_completes_with_none(mode: Mode, executors: &[u32]) {
    let system = simulated(mode, executors, 0, &[]).await;
    let tasks = submit_noops(&system, TASKS).await;
    let ids: Vec<String> = tasks.iter().map(ToString::to_string).collect();
    let lines = system.results(&ids, 60.0).await;
    assert_eq!(lines.len(), TASKS, "one line per task");
    for line in &lines {
        assert_eq!(line["status"], "COMPLETED", "{line}");
        assert_eq!(line["result"], NONE_RESULT, "{line}");
    }
    for task in &tasks {
        let attempts = system.task_field(&task.to_string(), "attempts").await;
        assert_eq!(attempts.as_deref(), Some("1"), "task {task}");
    }
    let timeline = system.client.timeline(tasks[0]).await.expect("a timeline");
    let (started, finished) = (
        timeline.started_at.expect("a start"),
        timeline.finished_at.expect("an end"),
    );
    assert!(started <= finished, "{timeline:?}");
    assert!(timeline.executor.is_some(), "{timeline:?}");
}

/// A task deadline shorter than the simulated run fails each task with the `WorkerFailure`
/// a Python executor past its deadline gets.
async fn the_deadline_still_holds(mode: Mode) {
    let system = simulated(mode, &[2], 30_000_000, &["--task-timeout", "0.2"]).await;
    for task in submit_noops(&system, 3).await {
        let (status, result) = system
            .wait_final(&task.to_string(), Duration::from_secs(30))
            .await;
        assert_eq!(status, "FAILED");
        let want = worker_failure_result(&format!(
            "task {task} exceeded its deadline of 200ms and its executor was killed"
        ));
        assert_eq!(result, want, "task {task}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_completes_every_task_with_none() {
    every_task_completes_with_none(Mode::Local, &[8]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_mode_completes_every_task_with_none() {
    every_task_completes_with_none(Mode::Pull, &[4, 4]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_mode_completes_every_task_with_none() {
    every_task_completes_with_none(Mode::Push, &[4, 4]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_enforces_deadlines_on_simulated_executors() {
    the_deadline_still_holds(Mode::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_mode_enforces_deadlines_on_simulated_executors() {
    the_deadline_still_holds(Mode::Pull).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_mode_enforces_deadlines_on_simulated_executors() {
    the_deadline_still_holds(Mode::Push).await;
}
