//! Workers across a real network: each faulty worker runs in a network namespace of its own,
//! joined by a veth pair, and faults are nftables rules inside it (a partition longer than the
//! heartbeat window, then healed; random packet loss), or behind a Toxiproxy-style proxy
//! (latency with jitter, connections reset mid-message). Nothing is lost, stuck or wrong, and a
//! worker cut off rejoins by itself.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Fifo, NetNs, Proxy, TestSystem, Toxics, mode, spec};
use faas::cluster::{ClusterSpec, MemberId, WorkerPlace};
use rstest::rstest;

const START: Duration = Duration::from_secs(30);

/// A `mode` system with no worker yet, its dispatcher listening on the host's end of `net`'s
/// link (which loopback workers reach too), with `args`.
async fn system_across(net: &NetNs, mode_name: &str, args: &[&str]) -> TestSystem {
    let mut dispatcher_args = vec!["--bind".to_owned(), net.host_ip.clone()];
    dispatcher_args.extend(args.iter().map(|a| (*a).to_owned()));
    TestSystem::from_spec(ClusterSpec {
        dispatcher_args,
        ..spec(mode(mode_name), &[])
    })
    .await
}

/// A worker of `executors` in `net` when `inside`, else beside the dispatcher (reaching it
/// at the same address); its id, once registered.
async fn worker(system: &mut TestSystem, net: &NetNs, inside: bool, executors: u32) -> MemberId {
    let mut place = net.place(system.cluster.worker_port());
    if !inside {
        place.wrapper.clear();
    }
    system.add_worker_at(&place, executors).await
}

/// One worker beside the dispatcher, one across the link; the link is cut while each runs a
/// task, for longer than the heartbeat window. The cut-off worker is declared dead, its task
/// runs again on the other, and once the link heals it registers again by itself (resending
/// the result it kept: the first final write wins) and takes tasks again.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_worker_is_replaced_and_rejoins_when_healed(#[case] mode: &str) {
    let Some(net) = NetNs::require() else {
        return;
    };
    let args = ["--heartbeat", "0.3"];
    let mut system = system_across(&net, mode, &args).await;
    worker(&mut system, &net, false, 1).await;
    let remote = worker(&mut system, &net, true, 1).await;
    let mut fifo = Fifo::new();
    let naps = system.submit_naps(&fifo, 2, 1.5).await;
    fifo.take(2, START).await;

    net.add_rule("drop");
    // The cut-off worker's task starts again beside the dispatcher (after the nap there).
    fifo.next(START).await;
    net.heal();
    system
        .cluster
        .wait_ready(remote, 2, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the worker did not register again: {e}"));
    for nap in &naps {
        let (status, result) = system.wait_final(nap, START).await;
        assert_eq!(
            status,
            "COMPLETED",
            "{nap}: {}",
            common::describe(&result).1
        );
    }

    // Both workers take tasks again.
    let more = system.submit_naps(&fifo, 2, 0.5).await;
    let mut executors = HashSet::new();
    for task in &more {
        assert_eq!(system.wait_final(task, START).await.0, "COMPLETED");
        let executor = system
            .task_field(task, "executor")
            .await
            .unwrap_or_default();
        executors.insert(executor.split('/').next().unwrap_or_default().to_owned());
    }
    assert!(
        executors.contains(&remote.to_string()),
        "the healed worker ran none of {executors:?}"
    );
}

/// 5% of packets lost each way on the worker's link, for a whole run of 60 tasks: every one
/// completes with its own result, none twice.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn tasks_complete_under_packet_loss(#[case] mode: &str) {
    let Some(net) = NetNs::require() else {
        return;
    };
    let mut system = system_across(&net, mode, &[]).await;
    worker(&mut system, &net, true, 2).await;
    net.add_rule("numgen random mod 100 < 5 drop");
    let f = system
        .register("def double(x):\n    return x * 2\n", "double")
        .await;
    let exprs: Vec<String> = (0..60).map(|i| format!("(({i},), {{}})")).collect();
    let mut tasks = Vec::new();
    for params in common::serialize_params_many(&exprs) {
        tasks.push(system.execute_serialized(&f, &params).await);
    }
    system
        .each_completes(&tasks, 60.0, 0, |i| (2 * i).to_string())
        .await;
}

/// The worker's link to the dispatcher runs through a proxy adding 100 ms (up to 140 ms) each
/// way; once the first task is done every connection is reset mid-stream. The worker
/// reconnects by itself, and every task completes with its own result, within the retries.
#[rstest]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn tasks_complete_over_a_slow_link_whose_connections_are_reset(#[case] mode_name: &str) {
    let mut system = TestSystem::from_spec(spec(mode(mode_name), &[])).await;
    let toxics = Toxics {
        latency: Duration::from_millis(100),
        jitter: Duration::from_millis(40),
    };
    let proxy = Proxy::start(system.cluster.worker_port(), toxics).await;
    let place = WorkerPlace {
        endpoint: Some(format!("tcp://127.0.0.1:{}", proxy.port)),
        ..WorkerPlace::default()
    };
    system.add_worker_at(&place, 2).await;
    let f = system
        .register("def double(x):\n    return x * 2\n", "double")
        .await;
    let exprs: Vec<String> = (0..30).map(|i| format!("(({i},), {{}})")).collect();
    let mut tasks = Vec::new();
    for params in common::serialize_params_many(&exprs) {
        tasks.push(system.execute_serialized(&f, &params).await);
    }
    system.wait_final(&tasks[0], START).await;
    proxy.reset_all();
    system
        .each_completes(&tasks, 60.0, 2, |i| (2 * i).to_string())
        .await;
    assert!(proxy.resets() > 0, "no connection was reset");
}
