//! Encoding and decoding the messages that cross the wire: worker protocol frames (JSON) and
//! the executor pipe's framed messages, for a no-op task and a 1 MB argument.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use faas::executor::frame::{RunRequest, read_message, write_message};
use faas::protocol::{ToWorker, WireTask, decode, encode};
use faas::task::{FunctionId, TaskId};
use std::hint::black_box;

fn task(params: &str) -> WireTask {
    WireTask {
        task_id: TaskId::new_random(),
        function_id: FunctionId::new_random(),
        function: None,
        params: params.to_owned(),
        timeout_ms: Some(300_000),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("worker_protocol");
    for (name, size) in [("noop", 64usize), ("1MB", 1 << 20)] {
        let message = ToWorker::Tasks {
            tasks: vec![task(&"A".repeat(size))],
            acked: Vec::new(),
        };
        let frame = encode(&message);
        group.bench_with_input(BenchmarkId::new("encode", name), &message, |b, m| {
            b.iter(|| encode(black_box(m)));
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &frame, |b, f| {
            b.iter(|| decode::<ToWorker>(black_box(f)).expect("valid"));
        });
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let function: Arc<str> = "B".repeat(200).into();
    c.bench_function("executor_frame_round_trip_noop", |b| {
        b.to_async(&runtime).iter(|| {
            let function = function.clone();
            async move {
                let (mut a, mut z) = tokio::io::duplex(1 << 16);
                let request = RunRequest {
                    task_id: TaskId::new_random(),
                    function_id: FunctionId::new_random(),
                    function: Some(&function),
                    params: "gASVBgAAAAAAAAApfZSGlC4=",
                };
                write_message(&mut a, &request).await.expect("write");
                let back: serde_json::Value = read_message(&mut z).await.expect("read");
                black_box(back);
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
