//! The cluster supervisor itself, against the real binaries: readiness without log text, the
//! fault steps later tests build on (pause and resume, kill and restart of a dispatcher,
//! Redis restarted with its data), and an orderly stop that leaves nothing behind.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{READY, TestSystem, describe};
use faas::cluster::{Binaries, Cluster, ClusterError, ClusterSpec, MemberId, Stopped};
use faas::dispatcher::Mode;

const ADD: &str = "def add(a, b):\n    return a + b\n";

/// Runs `add(a, b)` and checks the answer.
async fn add(system: &TestSystem, function: &str, a: i64, b: i64) {
    let task = system
        .execute(function, &format!("(({a}, {b}), {{}})"))
        .await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(status, "COMPLETED", "{:?}", describe(&result));
    assert_eq!(describe(&result), ("int".to_owned(), (a + b).to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_steps_keep_the_cluster_serving() {
    let mut system = TestSystem::with_mode("push", &[1], &[]).await;
    let f = system.register(ADD, "add").await;
    add(&system, &f, 1, 2).await;

    // A paused worker holds its task until it is resumed.
    system.cluster.pause(MemberId::Worker(0)).expect("a worker");
    let task = system.execute(&f, "((3, 4), {})").await;
    let (_, body) = system.get(&format!("/result/{task}?wait=0.5")).await;
    assert_ne!(
        body["status"], "COMPLETED",
        "a frozen worker ran a task: {body}"
    );
    system
        .cluster
        .resume(MemberId::Worker(0))
        .expect("a worker");
    let (status, _) = system.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(status, "COMPLETED");

    // A dispatcher killed and restarted: the worker registers again by itself, which the
    // supervisor sees as its second readiness notification.
    system.kill(MemberId::Dispatcher(0)).await;
    system.restart(MemberId::Dispatcher(0)).await;
    system
        .cluster
        .wait_ready(MemberId::Worker(0), 2, READY)
        .await
        .expect("the worker registers with the new dispatcher");
    add(&system, &f, 5, 6).await;

    // Redis stopped and started again: the function registered before is still there.
    let status = system
        .terminate(MemberId::Redis, Duration::from_secs(10))
        .await
        .expect("redis stops on SIGTERM");
    assert!(status.success(), "redis exited with {status}");
    system.restart(MemberId::Redis).await;
    // The gateway answers 503 ("try again shortly") until its connection is re-established;
    // its health check is what tells a client that it has been.
    system.wait_healthy(Duration::from_secs(20)).await;
    add(&system, &f, 7, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_is_orderly_and_leaves_nothing_behind() {
    let mut cluster = Cluster::start(common::spec(Mode::Pull, &[1, 1]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut exits = cluster.take_exits().expect("exits not taken yet");
    let ids = [
        MemberId::Worker(1),
        MemberId::Worker(0),
        MemberId::Dispatcher(0),
        MemberId::Gateway,
        MemberId::Redis,
    ];
    let pids: Vec<i32> = ids
        .iter()
        .map(|&id| cluster.member(id).expect("started").pid())
        .collect();
    let dir = cluster.dir().to_path_buf();
    assert!(dir.is_dir());
    // A paused member holds SIGTERM until it runs again: stop must wake it, not kill it.
    cluster.pause(MemberId::Worker(0)).expect("a worker");
    assert_eq!(cluster.stop(std::future::pending()).await, Stopped::Clean);
    for id in ids {
        let status = cluster
            .member(id)
            .expect("started")
            .exited()
            .unwrap_or_else(|| panic!("{id} still runs"));
        assert!(
            status.success() || status.signal() == Some(libc::SIGTERM),
            "{id} did not stop on SIGTERM: {status}"
        );
    }
    // Reverse start order: both workers (together), then the dispatcher, the gateway, Redis.
    let mut order = Vec::new();
    for _ in ids {
        let exit = tokio::time::timeout(READY, exits.next())
            .await
            .expect("every exit is reported")
            .expect("the cluster is still here");
        assert!(exit.expected, "{} exited by itself", exit.name);
        order.push(exit.name);
    }
    order[..2].sort();
    assert_eq!(
        order,
        ["worker-1", "worker-2", "dispatcher", "gateway", "redis"]
    );
    drop(cluster);
    assert!(!dir.exists(), "the cluster's directory is left");
    for pid in pids {
        // SAFETY: signal 0 only checks whether the pid exists; it sends nothing.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "pid {pid} outlived its cluster");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_without_its_binaries_says_what_to_build() {
    let spec = ClusterSpec::new(
        Binaries::in_dir(std::env::temp_dir().join("faas-no-binaries-here")),
        Mode::Local,
        common::python(),
    );
    let Err(err) = Cluster::new(spec) else {
        panic!("a cluster without binaries");
    };
    assert!(matches!(err, ClusterError::Binary(_)), "{err}");
    assert!(err.to_string().contains("cargo build --workspace"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_exits_before_it_is_ready_is_named() {
    // A dispatcher that cannot start: an option it does not know.
    let mut system = TestSystem::without_dispatcher(&[]).await;
    let err = system
        .cluster
        .start_dispatcher_with(&["--no-such-flag"], &[])
        .await
        .expect_err("the dispatcher exits");
    assert!(
        err.to_string()
            .starts_with("dispatcher exited (exit status: 2) before it was ready"),
        "{err}"
    );
}
