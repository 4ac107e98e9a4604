//! A ZeroMQ round trip on 127.0.0.1 TCP, against a ROUTER that answers on a thread of its own:
//! a ~200-byte message on raw sockets, the same message with the client side going through
//! [`Bridge`] (sockets driven by a task of the async runtime, async code on the other side of
//! channels, as the dispatcher and workers use ZeroMQ), and a real pull-mode exchange (an
//! `ask` carrying one result, answered by `tasks` with one task) encoded, sent and decoded on
//! both sides. The first is the transport's floor; the difference to the second is the cost
//! of the bridge every remote message pays; the third adds the protocol's JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use faas::bridge::{Bridge, Inbound};
use faas::protocol::{Completion, ToDispatcher, ToWorker, WireTask, decode, encode};
use faas::task::{FunctionId, TaskId, TaskOutcome, now_micros};
use tokio::sync::mpsc;

/// The size of the echoed message.
const MESSAGE_BYTES: usize = 200;
/// `((), {})` as dill writes it.
const PARAMS: &str = "gASVBgAAAAAAAAApfZSGlC4=";
/// `None` as dill writes it.
const RESULT: &str = "gAROLg==";

/// A ROUTER bound to a free loopback port, answering every message with `respond(body)` on a
/// thread; stopped and joined on drop (also when a benchmark panics).
struct Responder {
    endpoint: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(ctx: &zmq::Context, respond: fn(&[u8]) -> Vec<u8>) -> Self {
        let router = ctx.socket(zmq::ROUTER).expect("router socket");
        router.set_linger(0).expect("linger");
        // Wakes the thread now and then to see whether it should stop.
        router.set_rcvtimeo(50).expect("receive timeout");
        router.bind("tcp://127.0.0.1:*").expect("bind router");
        let endpoint = router
            .get_last_endpoint()
            .expect("last endpoint")
            .expect("endpoint is utf8");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zmq-responder".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match router.recv_multipart(0) {
                        // [peer identity, body]
                        Ok(mut frames) => {
                            let body = frames.last_mut().expect("a body frame");
                            *body = respond(body);
                            router.send_multipart(frames, 0).expect("reply");
                        }
                        Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {}
                        Err(e) => panic!("router receive: {e}"),
                    }
                }
            })
            .expect("spawn responder");
        Self {
            endpoint,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn echo(body: &[u8]) -> Vec<u8> {
    body.to_vec()
}

/// The dispatcher's side of a pull-mode exchange: an `ask` with a result in, one task out.
fn dispatch(body: &[u8]) -> Vec<u8> {
    let ask: ToDispatcher = decode(body).expect("a protocol message");
    assert!(matches!(ask, ToDispatcher::Ask { free: 1, .. }), "{ask:?}");
    encode(&ToWorker::Tasks {
        tasks: vec![WireTask {
            task_id: TaskId::new_random(),
            function_id: FunctionId::new_random(),
            function: None,
            params: PARAMS.to_owned(),
            timeout_ms: Some(300_000),
        }],
        acked: vec![TaskId::new_random()],
    })
}

/// The worker's side: one idle executor, and the result of the task it just ran.
fn ask() -> ToDispatcher {
    ToDispatcher::Ask {
        worker: "bench-worker".to_owned(),
        free: 1,
        results: vec![Completion {
            task_id: TaskId::new_random(),
            outcome: TaskOutcome::Completed(RESULT.to_owned()),
            started_at: Some(now_micros()),
            finished_at: now_micros(),
            executor: Some("bench-worker/0".to_owned()),
        }],
        started: Vec::new(),
    }
}

fn dealer(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let dealer = ctx.socket(zmq::DEALER).expect("dealer socket");
    dealer.set_linger(0).expect("linger");
    dealer.connect(endpoint).expect("connect dealer");
    dealer
}

/// The one message a bridge's inbox should hold next.
async fn reply(inbox: &mut mpsc::UnboundedReceiver<Inbound>) -> Vec<u8> {
    match inbox.recv().await {
        Some(Inbound::Message {
            socket: 0, frames, ..
        }) => frames.into_iter().next().expect("a body frame"),
        other => panic!("unexpected inbox item {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let ctx = zmq::Context::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let echoer = Responder::start(&ctx, echo);
    let dispatcher = Responder::start(&ctx, dispatch);
    let message = vec![b'x'; MESSAGE_BYTES];

    let mut group = c.benchmark_group("zmq");

    let raw = dealer(&ctx, &echoer.endpoint);
    group.bench_function("dealer_router_round_trip", |b| {
        b.iter(|| {
            raw.send(&message[..], 0).expect("send");
            let back = raw.recv_bytes(0).expect("receive");
            assert_eq!(back.len(), MESSAGE_BYTES);
        });
    });
    drop(raw);

    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let bridge = {
        // The bridge's task runs on this runtime, while a benchmark blocks on it.
        let _runtime = runtime.enter();
        Bridge::spawn(vec![dealer(&ctx, &echoer.endpoint)], inbox_tx).expect("spawn bridge")
    };
    group.bench_function("bridge_round_trip", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bridge.send(0, vec![message.clone()]);
                    assert_eq!(reply(&mut inbox).await.len(), MESSAGE_BYTES);
                }
                start.elapsed()
            })
        });
    });
    drop(bridge);

    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let bridge = {
        let _runtime = runtime.enter();
        Bridge::spawn(vec![dealer(&ctx, &dispatcher.endpoint)], inbox_tx).expect("spawn bridge")
    };
    group.bench_function("bridge_protocol_round_trip", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bridge.send(0, vec![encode(&ask())]);
                    let answer: ToWorker = decode(&reply(&mut inbox).await).expect("decode");
                    assert!(
                        matches!(&answer, ToWorker::Tasks { tasks, .. } if tasks.len() == 1),
                        "{answer:?}"
                    );
                }
                start.elapsed()
            })
        });
    });
    drop(bridge);

    group.finish();
    // Every socket closes before the context is dropped (which waits for them).
    drop(dispatcher);
    drop(echoer);
    drop(runtime);
    drop(ctx);
}

criterion_group!(benches, bench);
criterion_main!(benches);
