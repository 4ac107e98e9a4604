//! A task's round trip through a real Python executor process over the framed pipe: the
//! executor's share of every task's overhead (no-op function, cached after the first call).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use faas::executor::process::{ExecutorProcess, ExecutorSpec};
use faas::executor::sandbox::SandboxSpec;
use faas::executor::{Job, python_env};
use faas::task::{FunctionId, TaskId, TaskOutcome};

/// `base64(dill.dumps(fn))` of a no-op, made by the executors' own Python.
fn noop_function(python: &std::path::Path) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", "import codecs, dill\ndef noop():\n    return None\nprint(codecs.encode(dill.dumps(noop), 'base64').decode().replace(chr(10), ''))"])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn bench(c: &mut Criterion) {
    let env = python_env::resolve(None).expect("executor python");
    let function: Arc<str> = noop_function(&env.python).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = ExecutorSpec {
        env,
        memory_limit: None,
        sandbox: SandboxSpec::default(),
    };
    let mut executor = runtime
        .block_on(ExecutorProcess::spawn(&spec, "bench/0".into()))
        .expect("executor starts");
    let function_id = FunctionId::new_random();
    // `((), {})` as dill writes it.
    let params = "gASVBgAAAAAAAAApfZSGlC4=".to_owned();
    c.bench_function("executor_round_trip_noop", |b| {
        b.iter(|| {
            let job = Job {
                task_id: TaskId::new_random(),
                function_id,
                function: function.clone(),
                params: params.clone(),
                timeout: Some(Duration::from_secs(30)),
            };
            let run = runtime.block_on(executor.run(&job, job.timeout));
            assert!(
                matches!(run.outcome, TaskOutcome::Completed(_)),
                "{:?}",
                run.outcome
            );
        });
    });
    runtime.block_on(executor.kill());
}

criterion_group!(benches, bench);
criterion_main!(benches);
