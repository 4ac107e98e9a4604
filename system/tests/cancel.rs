//! `POST /cancel/{task_id}` in every mode: a queued task never runs, a running one has its
//! executor killed (the function stops mid-way) and replaced (the next task runs at once), and
//! both are recorded as FAILED with a `TaskCancelled` exception. The functions say on a FIFO
//! when they start and end, the killed executor's exit is watched through a pidfd, and "never
//! ran" is shown by order: a later task on the same single executor completed first.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::{Fifo, TestSystem, describe, mode, signalling, spec};
use faas::cluster::ClusterSpec;
use rstest::rstest;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Names its executor process with a fresh random name (its pid would be that of its
/// sandbox's PID namespace, meaningless to the test) and signals `"{tag} start {name}"` as
/// it starts, sleeps, then signals `"{tag} end"`.
const MARKED_SLEEP: &str = "import ctypes, random, time\n\ndef marked(fifo, tag, seconds):\n    name = 'faas%010x' % random.getrandbits(40)\n    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)\n    signal(fifo, '%s start %s' % (tag, name))\n    time.sleep(seconds)\n    signal(fifo, '%s end' % tag)\n    return seconds\n";
const ECHO: &str = "def echo(x):\n    return x\n";

/// How long a task may take to start on an idle executor.
const START: Duration = Duration::from_secs(30);

#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn cancel_queued_and_running(#[case] mode: &str) {
    // One executor, and no prefetch: the second task stays in the queue.
    let system = one_executor(mode, 0).await;
    let mut fifo = Fifo::new();
    let f = system.register(&signalling(MARKED_SLEEP), "marked").await;
    let path = fifo.path().to_owned();
    let marked = |tag: &str, seconds: f64| format!("(({path:?}, {tag:?}, {seconds}), {{}})");
    // Far longer than the test: only a kill ends it in time.
    let running = system.execute(&f, &marked("running", 600.0)).await;
    let queued = system.execute(&f, &marked("queued", 0.1)).await;
    let executor = ProcessExit::watch(started_pid(&fifo.next(START).await, "running"));
    assert_eq!(status_of(&system, &queued).await, "QUEUED");

    // The queued task: cancelled at once.
    let (code, body) = system
        .post(&format!("/cancel/{queued}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["previous_status"], "QUEUED", "{body}");
    assert_eq!(body["status"], "FAILED", "{body}");

    // The running task: final at once; its executor is killed before the function ends.
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
    executor.wait(Duration::from_secs(10)).await;

    // The executor was replaced: a new task runs on the one executor the cancelled function
    // would have held for 600 s.
    let echo = system.register(ECHO, "echo").await;
    let next = system.execute(&echo, "((7,), {})").await;
    let (status, result) = system.wait_final(&next, Duration::from_secs(20)).await;
    assert_eq!(
        (status.as_str(), describe(&result).1.as_str()),
        ("COMPLETED", "7")
    );
    // The queued task, ahead of that one on the same executor, never started, and the
    // cancelled function never got to its end.
    let signals = fifo.written_so_far().await;
    assert!(signals.is_empty(), "cancelled tasks ran: {signals:?}");

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
}

/// A task already handed to an executor's queue (prefetched) but not started is skipped.
#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn cancel_prefetched(#[case] mode: &str) {
    let system = one_executor(mode, 1).await;
    let mut fifo = Fifo::new();
    let f = system.register(&signalling(MARKED_SLEEP), "marked").await;
    let path = fifo.path().to_owned();
    let marked = |tag: &str, seconds: f64| format!("(({path:?}, {tag:?}, {seconds}), {{}})");
    // Long enough for a pull worker to hear of the cancellation (with its next heartbeat,
    // within a second) before its executor is free again, even on a loaded machine.
    let first = system.execute(&f, &marked("first", 4.0)).await;
    let second = system.execute(&f, &marked("second", 0.1)).await;
    started_pid(&fifo.next(START).await, "first");
    // Handed out too: RUNNING while it waits for the executor.
    system
        .wait_status(&second, "RUNNING", Duration::from_secs(10))
        .await;
    let (code, body) = system
        .post(&format!("/cancel/{second}"), serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    let (status, _) = system.wait_final(&first, Duration::from_secs(20)).await;
    assert_eq!(status, "COMPLETED", "the task ahead of it is untouched");

    // A task after it on the same executor completes: the cancelled one would have started
    // before it.
    let echo = system.register(ECHO, "echo").await;
    let next = system.execute(&echo, "((7,), {})").await;
    assert_eq!(
        system.wait_final(&next, Duration::from_secs(20)).await.0,
        "COMPLETED"
    );
    let signals = fifo.written_so_far().await;
    assert_eq!(
        signals,
        ["first end"],
        "the cancelled task ran: {signals:?}"
    );
    let (status, result) = system.wait_final(&second, Duration::from_secs(1)).await;
    assert_eq!(
        (status.as_str(), describe(&result).0.as_str()),
        ("FAILED", "TaskCancelled")
    );
}

/// A system with one executor that takes `prefetch` more tasks than it runs.
async fn one_executor(mode_name: &str, prefetch: u32) -> TestSystem {
    let prefetch = prefetch.to_string();
    let spec = spec(mode(mode_name), &[1]);
    // Pull workers decide their own prefetch; elsewhere the dispatcher does.
    let (dispatcher_args, worker_args) = if mode_name == "pull" {
        (vec![], vec!["--prefetch".to_owned(), prefetch])
    } else {
        (vec!["--prefetch".to_owned(), prefetch], vec![])
    };
    TestSystem::from_spec(ClusterSpec {
        dispatcher_args,
        worker_args,
        ..spec
    })
    .await
}

async fn status_of(system: &TestSystem, task: &str) -> String {
    let (_, body) = system.get(&format!("/status/{task}")).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

/// The pid of the executor named in the start signal of the task tagged `tag`.
fn started_pid(signal: &str, tag: &str) -> i32 {
    let name = signal
        .strip_prefix(&format!("{tag} start "))
        .unwrap_or_else(|| panic!("expected {tag} to start, got {signal:?}"));
    common::processes(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == name)
    })
    .first()
    .copied()
    .unwrap_or_else(|| panic!("no process named {name}"))
}

/// A process's exit as an event: its pidfd turns readable when it ends.
struct ProcessExit {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
}

impl ProcessExit {
    /// Watches `pid`, which must be running.
    fn watch(pid: i32) -> Self {
        // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).expect("a descriptor");
        assert!(
            fd >= 0,
            "pidfd_open {pid}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor just opened here, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the descriptor, which stays open until it is dropped.
        let pidfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .unwrap_or_else(|e| panic!("watch the pidfd: {e}"));
        Self { pid, pidfd }
    }

    /// Waits up to `timeout` for the process to end.
    async fn wait(&self, timeout: Duration) {
        let ended = tokio::time::timeout(timeout, self.pidfd.readable()).await;
        assert!(
            ended.is_ok(),
            "process {} still runs after {timeout:?}",
            self.pid
        );
    }
}
