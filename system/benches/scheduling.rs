//! The dispatcher's scheduling decisions: choosing the push target among registered workers,
//! and assigning a task (which also decides whether its function body must travel).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use faas::dispatcher::registry::{Deadline, WorkerRegistry};
use faas::task::{FunctionId, TaskId};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_pick_and_assign");
    for workers in [1usize, 8, 64] {
        let now = Instant::now();
        let far = Deadline {
            at: now + Duration::from_secs(3600),
            run: Duration::from_secs(3600),
        };
        let function = FunctionId::new_random();
        group.bench_with_input(BenchmarkId::from_parameter(workers), &workers, |b, &n| {
            let mut registry = WorkerRegistry::new(Duration::from_secs(3));
            for i in 0..n {
                registry.register(&format!("w{i}"), 4, vec![], None, now);
            }
            b.iter(|| {
                let name = registry.pick(1).expect("a worker with room").to_owned();
                let task = TaskId::new_random();
                black_box(registry.assign(&name, task, function, far));
                registry.complete(task);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
