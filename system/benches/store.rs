//! The Redis store's share of every task's overhead, against a real redis-server the bench
//! starts on a free port (never the machine's own Redis): submitting one task (one Lua call)
//! and a batch of 100 (one pipelined round trip), reading one result and 100 results (one
//! pipeline), and a task's whole path through the store — submitted, received from the queue,
//! started, finished. Every task pays these round trips whatever the dispatch mode, so they
//! bound the tasks per second one Redis can carry. Only the store calls are timed: task ids
//! are made beforehand, and the data is flushed every few thousand tasks (untimed) so memory
//! stays bounded however many iterations criterion asks for.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use faas::cluster::{Output, Persistence, RedisServer};
use faas::store::{FinalOutcome, FinishOutcome, QueueReader, StartOutcome, Store};
use faas::task::{FunctionId, TaskId, TaskStatus, now_micros};

/// `((), {})` as dill writes it.
const PARAMS: &str = "gASVBgAAAAAAAAApfZSGlC4=";
/// `None` as dill writes it.
const RESULT: &str = "gAROLg==";
/// The dispatcher name the queue is read as.
const CONSUMER: &str = "bench";
/// Tasks created before the data is flushed.
const FLUSH_EVERY: usize = 20_000;

/// The store under test, plus a plain connection for flushing it.
struct Bench {
    store: Store,
    admin: redis::aio::MultiplexedConnection,
    function_id: FunctionId,
    /// Tasks created since the last flush.
    created: usize,
}

impl Bench {
    /// Empties Redis and sets it up as the platform finds it: the queue group exists and one
    /// function is registered.
    async fn reset(&mut self) {
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut self.admin)
            .await
            .expect("FLUSHALL");
        self.store.ensure_queue_group().await.expect("queue group");
        self.store
            .register_function(self.function_id, "noop", "Zm4=")
            .await
            .expect("register function");
        self.created = 0;
    }

    /// Runs `op` `iters` times on inputs from `prepare`, timing only `op`: making the inputs
    /// and flushing Redis every [`FLUSH_EVERY`] tasks are left out.
    async fn measure<I>(
        &mut self,
        iters: u64,
        mut prepare: impl FnMut() -> I,
        mut op: impl AsyncFnMut(&mut Self, I),
    ) -> Duration {
        let mut elapsed = Duration::ZERO;
        for _ in 0..iters {
            if self.created >= FLUSH_EVERY {
                self.reset().await;
            }
            let input = prepare();
            let start = Instant::now();
            op(self, input).await;
            elapsed += start.elapsed();
        }
        elapsed
    }

    async fn submit(&mut self, task_id: TaskId) {
        let queued = self
            .store
            .submit_task(task_id, self.function_id, PARAMS)
            .await
            .expect("submit_task");
        assert!(queued, "function is registered");
        self.created += 1;
    }

    async fn submit_batch(&mut self, tasks: &[(TaskId, String)]) {
        let queued = self
            .store
            .submit_tasks(self.function_id, tasks)
            .await
            .expect("submit_tasks");
        assert!(queued, "function is registered");
        self.created += tasks.len();
    }

    /// One task through the whole store path: submitted, received from the queue, started
    /// and finished.
    async fn lifecycle(&mut self, reader: &mut QueueReader, task_id: TaskId) {
        self.submit(task_id).await;
        let entries = Store::read_queue(reader, CONSUMER, 1, Duration::from_secs(5))
            .await
            .expect("read_queue");
        assert_eq!(entries.len(), 1, "the submitted task is on the queue");
        assert_eq!(entries[0].task_id, task_id);
        let started = self
            .store
            .start_tasks(&entries, CONSUMER)
            .await
            .expect("start_tasks");
        assert!(
            matches!(started[..], [StartOutcome::Started { .. }]),
            "{started:?}"
        );
        let recorded = self
            .store
            .finish_tasks(&[FinalOutcome {
                task_id,
                status: TaskStatus::Completed,
                result: RESULT.to_owned(),
                started_at: Some(now_micros()),
                finished_at: now_micros(),
                executor: Some("bench/0".to_owned()),
                claim: None,
            }])
            .await
            .expect("finish_tasks");
        assert_eq!(recorded, [FinishOutcome::Recorded]);
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Started from this thread (block_on runs here), which outlives the benchmark.
    let redis = runtime
        .block_on(RedisServer::start(Persistence::None, &Output::Discard))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = redis.url();
    let (mut bench, mut reader) = runtime.block_on(async {
        let store = Store::connect(&url).await.expect("connect store");
        let admin = redis::Client::open(url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect admin");
        let reader = QueueReader::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect queue reader");
        let bench = Bench {
            store,
            admin,
            function_id: FunctionId::new_random(),
            created: 0,
        };
        (bench, reader)
    });

    let mut group = c.benchmark_group("store");

    runtime.block_on(bench.reset());
    group.bench_function("submit_task", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(bench.measure(iters, TaskId::new_random, async |bench, id| {
                bench.submit(id).await;
            }))
        });
    });

    runtime.block_on(bench.reset());
    group.bench_function("submit_tasks_100", |b| {
        b.iter_custom(|iters| {
            let batch = || -> Vec<(TaskId, String)> {
                (0..100)
                    .map(|_| (TaskId::new_random(), PARAMS.to_owned()))
                    .collect()
            };
            runtime.block_on(bench.measure(iters, batch, async |bench, tasks| {
                bench.submit_batch(&tasks).await;
            }))
        });
    });

    // Results are read for finished tasks, as clients poll for them.
    runtime.block_on(bench.reset());
    let finished: Vec<TaskId> = runtime.block_on(async {
        let mut ids = Vec::with_capacity(100);
        for _ in 0..100 {
            let id = TaskId::new_random();
            bench.lifecycle(&mut reader, id).await;
            ids.push(id);
        }
        ids
    });
    group.bench_function("task_result", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(bench.measure(
                iters,
                || finished[0],
                async |bench, id| {
                    let result = bench.store.task_result(id).await.expect("task_result");
                    assert!(matches!(
                        result,
                        Some(faas::store::TaskResult {
                            status: TaskStatus::Completed,
                            result: Some(_),
                        })
                    ));
                },
            ))
        });
    });
    group.bench_function("task_results_100", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(bench.measure(
                iters,
                || (),
                async |bench, ()| {
                    let results = bench
                        .store
                        .task_results(&finished)
                        .await
                        .expect("task_results");
                    assert_eq!(results.len(), 100);
                    assert!(results.iter().all(Option::is_some));
                },
            ))
        });
    });

    runtime.block_on(bench.reset());
    group.bench_function("task_lifecycle", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(bench.measure(iters, TaskId::new_random, async |bench, id| {
                bench.lifecycle(&mut reader, id).await;
            }))
        });
    });

    group.finish();
    // The connections close before the server they talk to goes.
    drop(reader);
    drop(bench);
    drop(runtime);
    drop(redis);
}

criterion_group!(benches, bench);
criterion_main!(benches);
