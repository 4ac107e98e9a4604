//! Hostile peers on the worker transport, in pull and push modes: a raw ZeroMQ socket without
//! keys, one with an admitted key that names another worker, and one that sends an oversized
//! frame. None of them gets a task or changes a result, and the cluster keeps serving.

mod common;

use std::time::Duration;

use common::{Fifo, TestSystem, describe, mode, spec};
use faas::cluster::ClusterSpec;
use faas::curve::ClientKeys;
use faas::protocol::{self, Completion, ToDispatcher, ToWorker};
use faas::task::{TaskId, TaskOutcome};
use rstest::rstest;

/// How long the nap may take to start.
const START: Duration = Duration::from_secs(60);

/// How long a peer waits for an answer that must not come.
const SILENCE: Duration = Duration::from_secs(3);

/// The name the supervisor gives the cluster's first worker.
const VICTIM: &str = "worker-1";

/// A raw socket of the kind `mode`'s workers use, with `keys` or none; sends `message` and
/// returns the answer, if one comes within [`SILENCE`].
async fn exchange(
    endpoint: String,
    mode: &str,
    keys: Option<ClientKeys>,
    message: Vec<u8>,
) -> Option<ToWorker> {
    let kind = if mode == "pull" {
        zmq::REQ
    } else {
        zmq::DEALER
    };
    tokio::task::spawn_blocking(move || {
        let ctx = zmq::Context::new();
        let socket = ctx.socket(kind).expect("socket");
        socket.set_linger(0).expect("linger");
        socket
            .set_rcvtimeo(i32::try_from(SILENCE.as_millis()).expect("ms"))
            .expect("rcvtimeo");
        if let Some(keys) = &keys {
            keys.secure(&socket).expect("CURVE keys");
        }
        socket.connect(&endpoint).expect("connect");
        socket.send(message, 0).expect("send");
        socket
            .recv_bytes(0)
            .ok()
            .map(|frame| protocol::decode(&frame).expect("a protocol message"))
    })
    .await
    .expect("the peer thread")
}

fn ask(worker: &str) -> Vec<u8> {
    protocol::encode(&ToDispatcher::Ask {
        worker: worker.into(),
        free: 100,
        results: Vec::new(),
        started: Vec::new(),
    })
}

/// A forged COMPLETED result for `task`, sent in `worker`'s name.
fn forged(worker: &str, task: &str) -> Vec<u8> {
    protocol::encode(&ToDispatcher::Results {
        worker: worker.into(),
        results: vec![Completion {
            task_id: task.parse::<TaskId>().expect("a task id"),
            outcome: TaskOutcome::Completed(common::serialize_params("'forged'")),
            started_at: None,
            finished_at: 1,
            executor: Some(format!("{worker}/0")),
        }],
        started: Vec::new(),
    })
}

/// A one-worker cluster whose only executor is busy with a nap (whose id is returned) while
/// another task waits in the queue.
async fn busy_cluster(mode_name: &str, extra: &[&str]) -> (TestSystem, Fifo, String, String) {
    let system = TestSystem::from_spec(ClusterSpec {
        dispatcher_args: extra.iter().map(|a| (*a).to_owned()).collect(),
        ..spec(mode(mode_name), &[1])
    })
    .await;
    let mut fifo = Fifo::new();
    let mut tasks = system.submit_naps(&fifo, 2, 1.5).await;
    fifo.next(START).await;
    let queued = tasks.pop().expect("two tasks");
    let running = tasks.pop().expect("two tasks");
    (system, fifo, running, queued)
}

/// A fresh admitted key pair for a peer of `system`'s.
fn admitted(system: &TestSystem) -> ClientKeys {
    system
        .cluster
        .admit_worker_keys()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("remote modes have keys")
}

/// The busy cluster's two tasks end as if no peer had spoken: the nap with its own result.
async fn unharmed(system: &TestSystem, running: &str, queued: &str) {
    let (status, result) = system.wait_final(running, Duration::from_secs(30)).await;
    assert_eq!(
        (status.as_str(), describe(&result).1.as_str()),
        ("COMPLETED", "1.5")
    );
    let (status, _) = system.wait_final(queued, Duration::from_secs(30)).await;
    assert_eq!(status, "COMPLETED");
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_without_keys_gets_nothing(#[values("pull", "push")] mode: &str) {
    let (system, _fifo, running, queued) = busy_cluster(mode, &[]).await;
    let endpoint = system.cluster.worker_endpoint();
    let answer = exchange(endpoint.clone(), mode, None, ask(VICTIM)).await;
    assert_eq!(answer, None, "a peer without keys was answered");
    let answer = exchange(endpoint, mode, None, forged(VICTIM, &running)).await;
    assert_eq!(answer, None, "a peer without keys was answered");
    unharmed(&system, &running, &queued).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn an_admitted_peer_cannot_speak_for_another_worker(#[values("pull", "push")] mode: &str) {
    let (system, _fifo, running, queued) = busy_cluster(mode, &[]).await;
    let endpoint = system.cluster.worker_endpoint();
    let keys = || admitted(&system);
    // Asking in its name (pull) gets no task; results in its name change nothing.
    if mode == "pull" {
        let answer = exchange(endpoint.clone(), mode, Some(keys()), ask(VICTIM)).await;
        assert_eq!(answer, None, "an impostor's ask was answered");
    }
    let answer = exchange(
        endpoint.clone(),
        mode,
        Some(keys()),
        forged(VICTIM, &running),
    )
    .await;
    assert_eq!(answer, None, "an impostor's results were acknowledged");
    // Registering under its name is refused.
    let register = protocol::encode(&ToDispatcher::Register {
        worker: VICTIM.into(),
        capacity: 8,
        secret: None,
    });
    let answer = exchange(endpoint, mode, Some(keys()), register).await;
    assert!(
        matches!(answer, Some(ToWorker::Rejected { .. })),
        "an impostor's registration: {answer:?}"
    );
    unharmed(&system, &running, &queued).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn an_admitted_peer_under_a_name_of_its_own_cannot_write_others_results(
    #[values("pull", "push")] mode: &str,
) {
    let (system, _fifo, running, queued) = busy_cluster(mode, &[]).await;
    let endpoint = system.cluster.worker_endpoint();
    let keys = admitted(&system);
    // Unregistered, its results are not taken; registered, not for tasks another holds.
    let answer = exchange(
        endpoint.clone(),
        mode,
        Some(keys.clone()),
        forged("mallory", &running),
    )
    .await;
    assert!(
        matches!(answer, Some(ToWorker::Reregister { .. }) | None),
        "{answer:?}"
    );
    if mode == "pull" {
        // A REQ peer can register and report over one socket, one exchange each.
        let register = protocol::encode(&ToDispatcher::Register {
            worker: "mallory".into(),
            capacity: 1,
            secret: None,
        });
        let answer = exchange(endpoint.clone(), mode, Some(keys.clone()), register).await;
        assert!(
            matches!(answer, Some(ToWorker::Welcome { .. })),
            "{answer:?}"
        );
        exchange(endpoint, mode, Some(keys), forged("mallory", &running)).await;
    }
    unharmed(&system, &running, &queued).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_frame_drops_only_its_connection(#[values("pull", "push")] mode: &str) {
    let (system, _fifo, running, queued) = busy_cluster(mode, &["--max-message-mb", "1"]).await;
    let keys = admitted(&system);
    // A well-formed registration, padded past the limit: only the size can refuse it.
    let huge = protocol::encode(&ToDispatcher::Register {
        worker: "padded".into(),
        capacity: 1,
        secret: Some("x".repeat(2 << 20)),
    });
    let answer = exchange(system.cluster.worker_endpoint(), mode, Some(keys), huge).await;
    assert_eq!(answer, None, "an oversized frame was answered");
    unharmed(&system, &running, &queued).await;
    let dispatcher = system
        .cluster
        .member(faas::cluster::MemberId::Dispatcher(0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dispatcher.exited(), None);
}
