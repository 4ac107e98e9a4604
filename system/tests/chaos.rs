//! Chaos: a mixed workload of 2,000+ tasks through pull and push mode while workers are killed
//! at random and restarted, the dispatcher is killed and restarted once, and every worker is
//! killed at once once. At the end every task is accounted for: COMPLETED with the right
//! value, or FAILED with its own exception or a WorkerFailure. None lost, stuck or wrong, and
//! no status ever moved backwards. The faults wait on events, not time: after the dispatcher
//! restart, every live worker's new registration; after the mass kill, the dispatcher's
//! workers-alive gauge at 0. The tasks are accounted for on the results stream.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestSystem, describe_many, free_port, serialize_function, serialize_params_many};
use faas::cluster::MemberId;
use rstest::rstest;
use tokio::time::MissedTickBehavior;

const TASKS: usize = 2000;
const WORKERS: usize = 3;
const EXECUTORS: u32 = 2;
/// Submission pace: the whole workload is spread over about this long, so faults hit it.
const SUBMIT_OVER: Duration = Duration::from_secs(20);

const FUNCTIONS: &str = r#"
def noop(i):
    return i

def nap(i):
    import time
    time.sleep(0.02 + (i % 7) * 0.02)
    return i

def crunch(i):
    return sum(range(20000 + i))

def fail(i):
    raise ValueError("bad %d" % i)
"#;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Noop,
    Nap,
    Crunch,
    Fail,
}

impl Kind {
    fn of(i: usize) -> Self {
        [Self::Noop, Self::Nap, Self::Crunch, Self::Fail][i % 4]
    }

    /// What a correct run of task `i` returns: (status, type name, str of the value).
    fn expected(self, i: usize) -> (&'static str, &'static str, String) {
        match self {
            Self::Noop | Self::Nap => ("COMPLETED", "int", i.to_string()),
            Self::Crunch => {
                let n = 20000 + i as u64;
                ("COMPLETED", "int", (n * (n - 1) / 2).to_string())
            }
            Self::Fail => ("FAILED", "ValueError", format!("bad {i}")),
        }
    }
}

/// A tiny deterministic generator, seeded per run and printed, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "QUEUED" => 0,
        "RUNNING" => 1,
        _ => 2,
    }
}

#[rstest]
#[case::push("push")]
#[case::pull("pull")]
#[tokio::test(flavor = "multi_thread")]
async fn chaos(#[case] mode: &str) {
    let http = format!("127.0.0.1:{}", free_port());
    let dispatcher_args = [
        "--heartbeat",
        "0.5",
        "--max-retries",
        "3",
        "--task-timeout",
        "20",
        "--http",
        &http,
    ];
    let mut system = TestSystem::with_mode(mode, &[EXECUTORS; WORKERS], &dispatcher_args).await;
    let dispatcher_metrics = format!("http://{http}/metrics");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);

    let mut function_ids = HashMap::new();
    for name in ["noop", "nap", "crunch", "fail"] {
        let payload = serialize_function(FUNCTIONS, name);
        let (status, body) = system
            .post(
                "/register_function",
                serde_json::json!({"name": name, "payload": payload}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        function_ids.insert(name, body["function_id"].as_str().unwrap().to_owned());
    }
    let exprs: Vec<String> = (0..TASKS).map(|i| format!("(({i},), {{}})")).collect();
    let params = serialize_params_many(&exprs);

    let started = Instant::now();
    let mut tasks: Vec<(usize, String)> = Vec::with_capacity(TASKS);
    let mut seen_rank: HashMap<String, u8> = HashMap::new();
    let (mut worker_kills, mut dispatcher_kills, mut mass_kills) = (0, 0, 0);
    let mut next_worker_kill = Duration::from_secs(3);
    let mut live: Vec<MemberId> = (0..WORKERS).map(MemberId::Worker).collect();
    let mut backwards = 0;
    // The workload's own clock: submissions, faults and status samples every 100 ms.
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);

    while tasks.len() < TASKS || started.elapsed() < Duration::from_secs(16) {
        ticks.tick().await;
        // Submit on schedule.
        let due =
            ((started.elapsed().as_secs_f64() / SUBMIT_OVER.as_secs_f64()) * TASKS as f64) as usize;
        while tasks.len() < due.min(TASKS) {
            let i = tasks.len();
            let name = ["noop", "nap", "crunch", "fail"][i % 4];
            let task = system
                .execute_serialized(&function_ids[name], &params[i])
                .await;
            tasks.push((i, task));
        }
        // Faults on schedule.
        let now = started.elapsed();
        if now >= next_worker_kill && !live.is_empty() {
            let victim = live.remove(rng.below(live.len()));
            system.kill(victim).await;
            worker_kills += 1;
            live.push(MemberId::Worker(system.add_worker(EXECUTORS, &[]).await));
            next_worker_kill = now + Duration::from_secs(3);
        }
        if dispatcher_kills == 0 && now >= Duration::from_secs(7) {
            let registrations: Vec<u32> = live
                .iter()
                .map(|&w| system.cluster.member(w).map_or(0, |m| m.ready_count()))
                .collect();
            system.kill(MemberId::Dispatcher(0)).await;
            dispatcher_kills += 1;
            system.restart(MemberId::Dispatcher(0)).await;
            // Every live worker finds the new dispatcher and registers again by itself.
            for (&worker, n) in live.iter().zip(registrations) {
                system
                    .cluster
                    .wait_ready(worker, n + 1, Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
        }
        if mass_kills == 0 && now >= Duration::from_secs(13) {
            for &worker in &live {
                system.kill(worker).await;
            }
            mass_kills += 1;
            worker_kills += live.len();
            live.clear();
            // New workers only once the dispatcher has declared every old one dead.
            system
                .wait_sample(&dispatcher_metrics, "faas_dispatcher_workers_alive", 0.0)
                .await;
            for _ in 0..WORKERS {
                live.push(MemberId::Worker(system.add_worker(EXECUTORS, &[]).await));
            }
        }
        // Statuses never move backwards.
        for _ in 0..20.min(tasks.len()) {
            let (_, task) = &tasks[rng.below(tasks.len())];
            let (_, body) = system.get(&format!("/status/{task}")).await;
            let r = rank(body["status"].as_str().unwrap_or("?"));
            let previous = seen_rank.insert(task.clone(), r).unwrap_or(0);
            if r < previous {
                backwards += 1;
            }
        }
    }
    let run = started.elapsed();

    // Account for every task, each answered on the results stream the moment it is final.
    let index: HashMap<&str, usize> = tasks.iter().map(|(i, t)| (t.as_str(), *i)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<String> = tasks.iter().map(|(_, t)| t.clone()).collect();
    let mut finals: Vec<(usize, String, String)> = Vec::with_capacity(TASKS);
    let mut lost = 0;
    while !pending.is_empty() && Instant::now() < deadline {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
            .min(60.0);
        let mut still = Vec::new();
        for line in system.results(&pending, wait).await {
            let task = line["task_id"].as_str().unwrap_or_default();
            let status = line["status"].as_str().unwrap_or_default();
            if line["error"].is_string() {
                lost += 1;
            } else if status == "COMPLETED" || status == "FAILED" {
                let result = line["result"].as_str().unwrap_or_default().to_owned();
                finals.push((index[task], status.to_owned(), result));
            } else {
                still.push(task.to_owned());
            }
        }
        pending = still;
    }
    let stuck = pending.len();
    let results: Vec<String> = finals.iter().map(|(_, _, r)| r.clone()).collect();
    let described = describe_many(&results);
    let (mut completed, mut raised, mut worker_failures, mut wrong) = (0, 0, 0, Vec::new());
    for ((i, status, _), (kind, text)) in finals.iter().zip(&described) {
        let (want_status, want_kind, want_text) = Kind::of(*i).expected(*i);
        if status == "FAILED" && kind == "WorkerFailure" {
            worker_failures += 1;
        } else if status == want_status && kind == want_kind && *text == want_text {
            if status == "COMPLETED" {
                completed += 1;
            } else {
                raised += 1;
            }
        } else {
            wrong.push(format!(
                "task {i} ({:?}): {status} {kind} {text:?}",
                Kind::of(*i)
            ));
        }
    }
    let summary = format!(
        "chaos {mode}, seed {seed}: {} tasks in {:.1}s; faults: {worker_kills} worker kills ({mass_kills} of all workers at once), {dispatcher_kills} dispatcher kill; \
         completed {completed}, raised as expected {raised}, WorkerFailure {worker_failures}; lost {lost}, stuck {stuck}, wrong {}, status regressions {backwards}",
        tasks.len(),
        run.as_secs_f64(),
        wrong.len()
    );
    assert_eq!(
        (lost, stuck, backwards),
        (0, 0, 0),
        "lost, stuck, status regressions: {summary}"
    );
    assert!(
        wrong.is_empty(),
        "wrong results: {summary}\n{}",
        wrong.join("\n")
    );
    assert_eq!(completed + raised + worker_failures, TASKS, "{summary}");
    assert!(
        worker_kills >= 6 && dispatcher_kills == 1 && mass_kills == 1,
        "{summary}"
    );
}
