//! Durability: Redis restarts, dispatcher and worker crashes. Nothing is lost, nothing hangs.
//! Faults are injected once the functions say on a FIFO that they run.

mod common;

use std::time::{Duration, Instant};

use common::{Fifo, TestSystem, serialize_params};
use faas::cluster::MemberId;
use rstest::rstest;

/// How long the tasks may take to start.
const START: Duration = Duration::from_secs(30);

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

    let stopped = system
        .terminate(MemberId::Redis, Duration::from_secs(10))
        .await;
    assert!(stopped.is_some(), "redis-server stops on SIGTERM");
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

    system.restart(MemberId::Redis).await;
    // The gateway reconnects when asked: each request waits for the reconnection it starts.
    system.wait_healthy(Duration::from_secs(20)).await;
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

/// Kills the dispatcher while workers run tasks and others wait, and starts it again on the
/// same port: every task completes, none is lost or stays RUNNING.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatcher_crash_loses_nothing(#[case] mode: &str) {
    let mut system = TestSystem::with_mode(mode, &[2, 2], &[]).await;
    let mut fifo = Fifo::new();
    let tasks = system.submit_naps(&fifo, 8, 1.0).await;
    // All four executors run one.
    fifo.take(4, START).await;
    system.kill(MemberId::Dispatcher(0)).await;
    system.restart(MemberId::Dispatcher(0)).await;
    for task in &tasks {
        let (status, _) = system.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(status, "COMPLETED", "task {task}");
    }
}

/// Kills every worker: queued tasks wait, running ones fail (no retries), and new workers
/// run what waited. Nothing is prefetched (a task a dead worker held waiting uses an attempt
/// like one it ran), so the tasks not running stay in the queue.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn losing_every_worker(#[case] mode: &str) {
    let no_prefetch = ["--prefetch", "0"];
    let args = ["--heartbeat", "0.5", "--max-retries", "0"];
    let mut system = TestSystem::from_spec(faas::cluster::ClusterSpec {
        dispatcher_args: args
            .iter()
            .chain(&no_prefetch)
            .map(|a| (*a).to_owned())
            .collect(),
        worker_args: no_prefetch.map(str::to_owned).to_vec(),
        ..common::spec(common::mode(mode), &[1, 1])
    })
    .await;
    let mut fifo = Fifo::new();
    let tasks = system.submit_naps(&fifo, 5, 3.0).await;
    // Each worker's one executor runs one.
    let running: Vec<&String> = fifo
        .take(2, START)
        .await
        .iter()
        .map(|signal| {
            let tag = signal.split(' ').next().expect("a tag");
            &tasks[tag.parse::<usize>().expect("an index")]
        })
        .collect();
    for worker in [MemberId::Worker(0), MemberId::Worker(1)] {
        system.kill(worker).await;
    }
    // Once the workers are declared dead (1.5 s), the tasks they ran fail...
    for task in &running {
        let (status, result) = system.wait_final(task, Duration::from_secs(30)).await;
        assert_eq!(status, "FAILED", "task {task}");
        assert_eq!(common::describe(&result).0, "WorkerFailure");
    }
    // ...and, with no worker alive, none completes.
    for task in &tasks {
        let (_, body) = system.get(&format!("/status/{task}")).await;
        match body["status"].as_str() {
            Some("FAILED" | "QUEUED" | "RUNNING") => {}
            other => panic!("task {task} is {other:?} with no worker alive"),
        }
    }

    let fresh = MemberId::Worker(system.add_worker(2, &[]).await);
    let dead = [MemberId::Worker(0), MemberId::Worker(1)].map(|w| format!("worker {w} "));
    let (mut completed, mut failed) = (0, 0);
    for task in &tasks {
        let (status, result) = system.wait_final(task, Duration::from_secs(60)).await;
        if status == "COMPLETED" {
            completed += 1;
            let executor = system.task_field(task, "executor").await;
            assert!(
                executor.is_some_and(|e| e.starts_with(&format!("{fresh}/"))),
                "task {task} completed on no new worker"
            );
        } else {
            failed += 1;
            let (kind, message) = common::describe(&result);
            assert_eq!(kind, "WorkerFailure", "task {task}: {message}");
            assert!(
                dead.iter().any(|worker| message.contains(worker)),
                "task {task} failed, but not on a killed worker: {message}"
            );
        }
    }
    assert!(
        failed >= 2,
        "the tasks the dead workers held must fail, {failed} did"
    );
    assert!(completed >= 1, "the waiting tasks run on the new worker");
}

/// Signals `"{tag} start"`, sleeps `seconds`, signals `"{tag} end"` and returns `tag`.
const MARKED: &str = "import time\n\ndef marked(fifo, tag, seconds):\n    signal(fifo, '%s start' % tag)\n    time.sleep(seconds)\n    signal(fifo, '%s end' % tag)\n    return tag\n";

/// Registers [`MARKED`] and submits one task tagged `task{i}` per entry of `seconds`; the
/// function's id and the task ids.
async fn submit_marked(system: &TestSystem, fifo: &Fifo, seconds: &[f64]) -> (String, Vec<String>) {
    let f = system.register(&common::signalling(MARKED), "marked").await;
    let path = fifo.path();
    let mut tasks = Vec::new();
    for (i, seconds) in seconds.iter().enumerate() {
        let params = format!("(({path:?}, 'task{i}', {seconds}), {{}})");
        tasks.push(system.execute(&f, &params).await);
    }
    (f, tasks)
}

/// Every task of [`submit_marked`] completes with its own tag.
async fn each_returns_its_tag(system: &TestSystem, tasks: &[String], timeout: Duration) {
    for (i, task) in tasks.iter().enumerate() {
        let (status, result) = system.wait_final(task, timeout).await;
        assert_eq!(
            (status.as_str(), common::describe(&result).1),
            ("COMPLETED", format!("task{i}")),
            "{task}"
        );
    }
}

/// Waits until the dispatcher's `/health` (at `url`) answers 503 "degraded"; its body.
async fn wait_degraded(system: &TestSystem, url: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = system.http.get(url).send().await.expect("GET /health");
        if response.status() == 503 {
            let body: serde_json::Value = response.json().await.expect("json");
            if body["status"] == "degraded" {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dispatcher never said it was degraded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many commands Redis has refused with `code` so far (`INFO errorstats`).
async fn refusals(system: &TestSystem, code: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(&mut system.redis().await)
        .await
        .expect("INFO errorstats");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("errorstat_{code}:count=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Redis at `maxmemory` (noeviction) while a task finishes: the gateway answers 503 saying
/// so, the dispatcher's writes are refused with OOM, and once memory is raised every task it
/// had accepted completes; none stays RUNNING.
#[tokio::test(flavor = "multi_thread")]
async fn redis_out_of_memory_strands_nothing() {
    let system = TestSystem::with_mode("local", &[1], &[]).await;
    let mut fifo = Fifo::new();
    let (f, tasks) = submit_marked(&system, &fifo, &[0.3; 7]).await;
    assert_eq!(fifo.next(START).await, "task0 start");

    // Full: every write is refused from now on.
    system.redis_full(true).await;
    let (status, body) = system
        .post(
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": serialize_params("(('x', 'late', 0), {})")}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("OOM")),
        "{body}"
    );
    // The running task ends, and the dispatcher's attempt to record it is refused.
    let seen = refusals(&system, "OOM").await;
    assert_eq!(fifo.next(START).await, "task0 end");
    let deadline = Instant::now() + Duration::from_secs(20);
    while refusals(&system, "OOM").await <= seen {
        assert!(Instant::now() < deadline, "the dispatcher never wrote");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    system.redis_full(false).await;
    each_returns_its_tag(&system, &tasks, Duration::from_secs(30)).await;
}

/// A graceful shutdown that cannot put its tasks back (Redis refuses its scripts: NOPERM) must
/// leave them for its successor, not drop them: once Redis serves again, the next dispatcher recovers
/// and completes every one.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_that_cannot_requeue_loses_nothing() {
    let mut system = TestSystem::with_mode("local", &[1], &[]).await;
    let mut fifo = Fifo::new();
    // The first outlasts the shutdown's grace (5 s); the others wait in the pool's queue.
    let (_, tasks) = submit_marked(&system, &fifo, &[8.0, 0.1, 0.1, 0.1]).await;
    assert_eq!(fifo.next(START).await, "task0 start");
    for task in &tasks[1..] {
        system
            .wait_status(task, "RUNNING", Duration::from_secs(10))
            .await;
    }

    // Scripts (every task transition) are refused from now on; plain commands are not.
    system
        .admin(&["ACL", "SETUSER", "default", "-evalsha", "-eval"])
        .await;
    let exit = system
        .terminate(MemberId::Dispatcher(0), Duration::from_secs(30))
        .await;
    assert!(exit.is_some(), "the dispatcher did not stop");
    system.admin(&["ACL", "SETUSER", "default", "+@all"]).await;

    system.restart(MemberId::Dispatcher(0)).await;
    each_returns_its_tag(&system, &tasks, Duration::from_secs(60)).await;
}

/// The one dispatcher's consumer name, from its liveness marker.
async fn consumer_name(system: &TestSystem) -> String {
    let markers: Vec<String> = redis::cmd("KEYS")
        .arg("faas:dispatcher:*")
        .query_async(&mut system.redis().await)
        .await
        .expect("KEYS");
    let [marker] = &markers[..] else {
        panic!("one dispatcher marker expected: {markers:?}")
    };
    marker["faas:dispatcher:".len()..].to_owned()
}

/// An entry Redis delivered to a live dispatcher whose reply never reached it (a connection
/// lost mid-reply; here the test reads the entry under the dispatcher's name) stays pending
/// for that dispatcher, which must notice and requeue it: its task runs.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_delivered_but_never_received_is_reclaimed() {
    let args = ["--prefetch", "0", "--reclaim-after", "0.5"];
    let system = TestSystem::with_mode("local", &[1], &args).await;
    let mut fifo = Fifo::new();
    // The one executor is busy, and with no prefetch the dispatcher reads nothing more.
    let (f, first) = submit_marked(&system, &fifo, &[2.0]).await;
    assert_eq!(fifo.next(START).await, "task0 start");
    let params = format!("(({:?}, 'task1', 0), {{}})", fifo.path());
    let second = system.execute(&f, &params).await;
    let consumer = consumer_name(&system).await;
    let delivered: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "dispatchers", &consumer, "COUNT", "1"])
        .arg(&["STREAMS", "faas:queue", ">"])
        .query_async(&mut system.redis().await)
        .await
        .expect("XREADGROUP");
    assert!(
        format!("{delivered:?}").contains(&second),
        "the test took the entry: {delivered:?}"
    );

    let tasks = [first[0].clone(), second];
    each_returns_its_tag(&system, &tasks, Duration::from_secs(30)).await;
}

/// A worker keeps a result until the dispatcher has recorded it. Here the dispatcher has the
/// result in hand but cannot record it (Redis refuses its scripts) when it is killed; its
/// liveness marker is kept, so nothing recovers the task but the worker itself, which must
/// send the result again to the restarted dispatcher. With `--max-retries 0` a rerun would
/// fail the task instead.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_result_is_kept_by_its_worker_until_recorded(#[case] mode: &str) {
    let http = format!("127.0.0.1:{}", common::free_port());
    let args = ["--max-retries", "0", "--http", &http];
    let mut system = TestSystem::with_mode(mode, &[1], &args).await;
    let mut fifo = Fifo::new();
    let (_, tasks) = submit_marked(&system, &fifo, &[0.2]).await;
    assert_eq!(fifo.next(START).await, "task0 start");

    let consumer = consumer_name(&system).await;
    system
        .admin(&["ACL", "SETUSER", "default", "-evalsha", "-eval"])
        .await;
    assert_eq!(fifo.next(START).await, "task0 end");
    let health = wait_degraded(&system, &format!("http://{http}/health")).await;
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("record") && r.to_lowercase().contains("noperm")),
        "{health}"
    );
    system.kill(MemberId::Dispatcher(0)).await;
    // The killed dispatcher stays "alive" to its successor: no recovery scan takes the task.
    let marker = format!("faas:dispatcher:{consumer}");
    system.admin(&["PERSIST", &marker]).await;
    system.admin(&["ACL", "SETUSER", "default", "+@all"]).await;

    system.restart(MemberId::Dispatcher(0)).await;
    each_returns_its_tag(&system, &tasks, Duration::from_secs(30)).await;
    let attempts = system.task_field(&tasks[0], "attempts").await;
    assert_eq!(attempts.as_deref(), Some("1"), "the task ran once");
}

/// A task's deadline runs from when an executor starts it, not from when the dispatcher hands
/// it to a worker: with one executor and two tasks prefetched behind the first, each using
/// two thirds of its own 3 s deadline, the last waits 4 s before it starts (past the 3.6 s
/// its deadline from assignment would allow, slack included) and still completes, once.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_runs_from_the_start_of_execution(#[case] mode: &str) {
    let dispatcher_args = [
        "--task-timeout",
        "3",
        "--heartbeat",
        "0.2",
        "--max-retries",
        "0",
        "--prefetch",
        "2",
    ];
    let system = TestSystem::from_spec(faas::cluster::ClusterSpec {
        dispatcher_args: dispatcher_args.map(str::to_owned).to_vec(),
        worker_args: vec!["--prefetch".into(), "2".into()],
        ..common::spec(common::mode(mode), &[1])
    })
    .await;
    let fifo = Fifo::new();
    let (_, tasks) = submit_marked(&system, &fifo, &[2.0; 3]).await;
    each_returns_its_tag(&system, &tasks, Duration::from_secs(60)).await;
    for task in &tasks {
        let attempts = system.task_field(task, "attempts").await;
        assert_eq!(attempts.as_deref(), Some("1"), "task {task} ran once");
    }
}

/// Signals `"start {token}"`, sleeps `seconds`, signals `"end {token}"` and returns the token,
/// drawn afresh by each execution: which execution a result came from.
const WHICH: &str = "import time, uuid\n\ndef which(fifo, seconds):\n    token = uuid.uuid4().hex\n    signal(fifo, 'start %s' % token)\n    time.sleep(seconds)\n    signal(fifo, 'end %s' % token)\n    return token\n";

/// A dispatcher that lost its claim on a task cannot record it. Dispatcher A runs the task and
/// is paused past its liveness; B requeues the task and runs it again. A resumes with the
/// first execution's result while B's is still running: A's write is fenced off, and the
/// result recorded is B's.
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatcher_that_lost_its_claim_cannot_record() {
    let ttl = ["--liveness-ttl", "1", "--prefetch", "0"];
    let mut system = TestSystem::with_mode("local", &[1], &ttl).await;
    let mut fifo = Fifo::new();
    let f = system.register(&common::signalling(WHICH), "which").await;
    let task = system
        .execute(&f, &format!("(({:?}, 3), {{}})", fifo.path()))
        .await;
    let first = fifo.next(START).await;
    assert!(first.starts_with("start "), "{first}");
    system.add_dispatcher(&[], &[]).await;
    system
        .cluster
        .pause(MemberId::Dispatcher(0))
        .unwrap_or_else(|e| panic!("{e}"));

    // B takes the task over once A's liveness lapses, and runs it again.
    let second = fifo.next(START).await;
    assert!(second.starts_with("start "), "{second}");
    assert_ne!(first, second, "another execution");
    // The first execution ends while B's still runs; A records it as soon as it resumes.
    assert_eq!(fifo.next(START).await, first.replace("start", "end"));
    system
        .cluster
        .resume(MemberId::Dispatcher(0))
        .unwrap_or_else(|e| panic!("{e}"));

    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(status, "COMPLETED");
    let token = second.trim_start_matches("start ");
    assert_eq!(
        common::describe(&result).1,
        token,
        "the result is the execution of the dispatcher holding the claim"
    );
}
