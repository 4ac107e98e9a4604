//! High availability: three dispatchers in one mode share one Redis, and the workers of the
//! remote modes know all three. One dispatcher is killed, another paused past its liveness
//! and resumed: every task completes with its own result, reruns only after those faults and
//! within the retry limit. Faults wait on events: tasks starting (a FIFO) and the lost
//! dispatchers' liveness keys expiring (keyspace notifications).

mod common;

use std::time::Duration;

use common::{Fifo, TestSystem, free_port, mode, spec};
use faas::cluster::{MemberId, WorkerPlace};
use futures_util::StreamExt;
use rstest::rstest;

const START: Duration = Duration::from_secs(30);
const DISPATCHERS: usize = 3;
const TASKS: usize = 30;

/// Signals `"{tag} start"`, sleeps, returns `tag`.
const TAGGED: &str = "import time\n\ndef tagged(fifo, tag, seconds):\n    signal(fifo, '%s start' % tag)\n    time.sleep(seconds)\n    return tag\n";

#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn dispatchers_share_one_redis_and_any_of_them_may_fail(#[case] mode_name: &str) {
    let args = [
        "--liveness-ttl",
        "1",
        "--heartbeat",
        "0.3",
        "--prefetch",
        "0",
    ];
    let mut system = TestSystem::control_plane_only(spec(mode(mode_name), &[1])).await;
    let mut ports = vec![system.cluster.worker_port()];
    ports.extend((1..DISPATCHERS).map(|_| free_port()));
    for &port in &ports {
        system
            .cluster
            .start_dispatcher_on(port, &args, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    if mode_name != "local" {
        // Each worker knows every dispatcher, starting with a different one.
        for first in 0..DISPATCHERS {
            let place = WorkerPlace {
                endpoint: Some(common::endpoints("127.0.0.1", &ports, first)),
                ..WorkerPlace::default()
            };
            system.add_worker_at(&place, 1).await;
        }
    }

    // Liveness keys expiring: the lost dispatchers, as their peers will see them.
    let mut expired = system.keyspace_events("Kx", "faas:dispatcher:*").await;

    let mut fifo = Fifo::new();
    let f = system.register(&common::signalling(TAGGED), "tagged").await;
    let exprs: Vec<String> = (0..TASKS)
        .map(|i| format!("(({:?}, 'task{i}', 0.3), {{}})", fifo.path()))
        .collect();
    let mut tasks = Vec::new();
    for params in common::serialize_params_many(&exprs) {
        tasks.push(system.execute_serialized(&f, &params).await);
    }

    fifo.take(3, START).await;
    system.kill(MemberId::Dispatcher(0)).await;
    fifo.take(3, START).await;
    system
        .cluster
        .pause(MemberId::Dispatcher(1))
        .unwrap_or_else(|e| panic!("{e}"));
    // Both lost dispatchers' liveness lapses: their peers take their tasks over.
    for _ in 0..2 {
        tokio::time::timeout(START, expired.next())
            .await
            .expect("a liveness key expires")
            .expect("the subscription stays open");
    }
    system
        .cluster
        .resume(MemberId::Dispatcher(1))
        .unwrap_or_else(|e| panic!("{e}"));

    if mode_name != "local" {
        // The killed dispatcher's worker moved on to another by itself. (The paused one's
        // may have, or may have been back in time: either way it serves.)
        let orphan = MemberId::Worker(0);
        system
            .cluster
            .wait_ready(orphan, 2, START)
            .await
            .unwrap_or_else(|e| panic!("{orphan} did not fail over: {e}"));
    }

    system
        .each_completes(&tasks, 120.0, 2, |i| format!("task{i}"))
        .await;
}
