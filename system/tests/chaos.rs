//! Chaos: a mixed workload of 2,000+ tasks through pull and push mode while workers are killed
//! at random and restarted, the dispatcher is killed and restarted once, and every worker is
//! killed at once once. At the end every task is accounted for: COMPLETED with the right
//! value, or FAILED with its own exception or a WorkerFailure. None lost, stuck or wrong, and
//! no status ever moved backwards.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestSystem, describe_many, serialize_function, serialize_params_many};

const TASKS: usize = 2000;
const WORKERS: usize = 3;
const EXECUTORS: usize = 2;
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

async fn chaos(mode: &str) {
    let dispatcher_args = [
        "--heartbeat",
        "0.5",
        "--max-retries",
        "3",
        "--task-timeout",
        "20",
    ];
    let mut system = TestSystem::with_mode(mode, &[EXECUTORS; WORKERS], &dispatcher_args).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("chaos {mode}: seed {seed}");
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
    let port = system.port;
    let mut live: Vec<usize> = (0..WORKERS).collect();
    let mut backwards = 0;

    while tasks.len() < TASKS || started.elapsed() < Duration::from_secs(16) {
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
            system.workers[victim].signal(libc::SIGKILL);
            worker_kills += 1;
            let fresh = system.spawn_worker(mode, EXECUTORS, port).await;
            live.push(fresh);
            next_worker_kill = now + Duration::from_secs(3);
        }
        if dispatcher_kills == 0 && now >= Duration::from_secs(7) {
            system.dispatchers.last().unwrap().signal(libc::SIGKILL);
            dispatcher_kills += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let args = ["-m", mode, "-p", &port.to_string()].map(str::to_owned);
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend(dispatcher_args);
            system.spawn_dispatcher(&all).await;
        }
        if mass_kills == 0 && now >= Duration::from_secs(13) {
            for &w in &live {
                system.workers[w].signal(libc::SIGKILL);
            }
            mass_kills += 1;
            worker_kills += live.len();
            live.clear();
            tokio::time::sleep(Duration::from_secs(2)).await;
            for _ in 0..WORKERS {
                let fresh = system.spawn_worker(mode, EXECUTORS, port).await;
                live.push(fresh);
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Account for every task.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut finals: Vec<(usize, String, String)> = Vec::with_capacity(TASKS);
    let (mut lost, mut stuck) = (0, 0);
    for (i, task) in &tasks {
        loop {
            let (code, body) = system.get(&format!("/result/{task}")).await;
            if code == 404 {
                lost += 1;
                break;
            }
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            if status == "COMPLETED" || status == "FAILED" {
                finals.push((
                    *i,
                    status,
                    body["result"].as_str().unwrap_or_default().to_owned(),
                ));
                break;
            }
            if Instant::now() > deadline {
                stuck += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
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
    eprintln!(
        "chaos {mode}: {} tasks in {:.1}s; faults: {worker_kills} worker kills ({mass_kills} of all workers at once), {dispatcher_kills} dispatcher kill; \
         completed {completed}, raised as expected {raised}, WorkerFailure {worker_failures}; lost {lost}, stuck {stuck}, wrong {}, status regressions {backwards}",
        tasks.len(),
        started.elapsed().as_secs_f64(),
        wrong.len()
    );
    assert_eq!(
        (lost, stuck, backwards),
        (0, 0, 0),
        "lost, stuck, status regressions"
    );
    assert!(wrong.is_empty(), "wrong results:\n{}", wrong.join("\n"));
    assert_eq!(completed + raised + worker_failures, TASKS);
    assert!(worker_kills >= 6 && dispatcher_kills == 1 && mass_kills == 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_in_push_mode() {
    chaos("push").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_in_pull_mode() {
    chaos("pull").await;
}
