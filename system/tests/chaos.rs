//! Chaos: a mixed workload of 2,000 tasks through pull and push mode, with two dispatchers
//! sharing one Redis (a primary, two replicas and three Sentinels; submissions acknowledged
//! once a replica has them) and every fault of the platform's world on the workload's own
//! clock: workers killed at random and replaced, a worker paused past the heartbeat window,
//! every worker killed at once, a dispatcher killed and restarted, the other paused past its
//! liveness, the Redis primary killed (a Sentinel failover) and restarted (it rejoins as a
//! replica), Redis at `maxmemory` for two seconds, and a worker in a network namespace of its
//! own behind 5% packet loss, partitioned for longer than the heartbeat window and healed.
//!
//! Every task function appends its index to a side-effect log outside the system, so the test
//! counts executions. At the end every task is accounted for: COMPLETED with the right value,
//! or FAILED with its own exception or a `WorkerFailure`; none lost, stuck or wrong, no status
//! moved backwards, and every execution beyond the first is explained by a declared attempt
//! (executions ≤ attempts ≤ 1 + `--max-retries`). Submissions refused with 503 (Redis away or
//! full) are retried, as a client would. The tasks are accounted for on the results stream.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{NetNs, SentinelSet, TestSystem, describe_many, free_port, serialize_function};
use faas::cluster::{ClusterSpec, MemberId, RedisSpec, WorkerPlace};
use rstest::rstest;
use tokio::time::MissedTickBehavior;

const TASKS: usize = 2000;
const WORKERS: usize = 3;
const EXECUTORS: u32 = 2;
const MAX_RETRIES: u32 = 3;
/// Submission pace: the whole workload is spread over about this long, so faults hit it.
const SUBMIT_OVER: Duration = Duration::from_secs(20);

/// Each function first appends its index to the side-effect log: one line per execution.
const FUNCTIONS: &str = r#"
def noop(i, log):
    with open(log, 'a') as f:
        f.write('%d\n' % i)
    return i

def nap(i, log):
    import time
    with open(log, 'a') as f:
        f.write('%d\n' % i)
    time.sleep(0.02 + (i % 7) * 0.02)
    return i

def crunch(i, log):
    with open(log, 'a') as f:
        f.write('%d\n' % i)
    return sum(range(20000 + i))

def fail(i, log):
    with open(log, 'a') as f:
        f.write('%d\n' % i)
    raise ValueError("bad %d" % i)
"#;

const NAMES: [&str; 4] = ["noop", "nap", "crunch", "fail"];

/// Seconds from the previous scheduled step (the first: from the start) to each: partition the
/// namespaced worker; kill the Redis primary; heal the partition; fill Redis; free it; pause a
/// worker; restart the old primary; resume the worker; kill and restart dispatcher 0; pause
/// dispatcher 1; resume it; kill every worker. Counted from when the previous step was done,
/// so that a fault lasts as long as planned even when a step before it took long.
const SCHEDULE: [f64; 12] = [4.0, 0.5, 2.0, 0.5, 2.0, 0.5, 1.5, 0.3, 0.2, 1.0, 2.0, 0.5];

/// What a correct run of task `i` ends as: (status, type name, str of the value).
fn expected(i: usize) -> (&'static str, &'static str, String) {
    match i % 4 {
        0 | 1 => ("COMPLETED", "int", i.to_string()),
        2 => {
            let n = 20000 + i as u64;
            ("COMPLETED", "int", (n * (n - 1) / 2).to_string())
        }
        _ => ("FAILED", "ValueError", format!("bad {i}")),
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

/// The faults injected, by kind.
#[derive(Debug, Default)]
struct Faults {
    worker_kills: usize,
    worker_pauses: usize,
    mass_kills: usize,
    dispatcher_kills: usize,
    dispatcher_pauses: usize,
    failovers: usize,
    redis_restarts: usize,
    redis_full: usize,
    partitions: usize,
    lossy_links: usize,
}

/// The side-effect log: a file functions (sandboxed, maybe as `nobody`) may append to.
struct SideEffects(PathBuf);

impl SideEffects {
    fn new(mode: &str) -> Self {
        let path = common::fifo_root().join(format!("chaos-{mode}.log"));
        std::fs::write(&path, "").expect("create the side-effect log");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .expect("open the log to functions");
        Self(path)
    }

    /// Executions per task index.
    fn executions(&self) -> HashMap<usize, u32> {
        let mut counts = HashMap::new();
        let log = std::fs::read_to_string(&self.0).expect("read the side-effect log");
        for line in log.lines() {
            let i = line.parse().expect("an index per line");
            *counts.entry(i).or_default() += 1;
        }
        counts
    }
}

impl Drop for SideEffects {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where worker number `n` runs: beside the dispatchers (`host` 127.0.0.1) or across `net`'s
/// link, knowing every dispatcher, starting with a different one per worker.
fn place(ports: &[u16], n: usize, host: &str, net: Option<&NetNs>) -> WorkerPlace {
    WorkerPlace {
        wrapper: net.map(|n| n.place(0).wrapper).unwrap_or_default(),
        endpoint: Some(common::endpoints(host, ports, n)),
    }
}

#[rstest]
#[case::push("push")]
#[case::pull("pull")]
#[tokio::test(flavor = "multi_thread")]
async fn chaos(#[case] mode: &str) {
    let net = NetNs::require();
    let mut sentinels = SentinelSet::start().await;
    let mut system = TestSystem::control_plane_only(ClusterSpec {
        redis: RedisSpec::External(sentinels.url()),
        gateway_args: vec!["--replicas".to_owned(), "1".to_owned()],
        ..common::spec(common::mode(mode), &[])
    })
    .await;
    let mut old_primary = None;
    // Two dispatchers, each on a port of its own.
    let ports = [system.cluster.worker_port(), free_port()];
    let max_retries = MAX_RETRIES.to_string();
    for &port in &ports {
        let http = format!("127.0.0.1:{}", free_port());
        let args = [
            "--bind",
            "0.0.0.0",
            "--heartbeat",
            "0.5",
            "--max-retries",
            &max_retries,
            "--task-timeout",
            "20",
            "--liveness-ttl",
            "1",
            // Starts confirmed by a replica: the failover below cannot lose the attempt of
            // a task that runs (it would run again under the same attempt).
            "--replicas",
            "1",
            "--http",
            &http,
        ];
        system
            .cluster
            .start_dispatcher_on(port, &args, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut faults = Faults::default();

    let mut live = Vec::new();
    let mut spawned = 0;
    for _ in 0..WORKERS {
        let at = place(&ports, spawned, "127.0.0.1", None);
        live.push(system.add_worker_at(&at, EXECUTORS).await);
        spawned += 1;
    }
    if let Some(net) = &net {
        let across = place(&ports, spawned, &net.host_ip, Some(net));
        system.add_worker_at(&across, EXECUTORS).await;
        net.add_rule("numgen random mod 100 < 5 drop");
        faults.lossy_links += 1;
    }

    let effects = SideEffects::new(mode);
    let mut function_ids = HashMap::new();
    for name in NAMES {
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
    let log = effects.0.display().to_string();
    let exprs: Vec<String> = (0..TASKS)
        .map(|i| format!("(({i}, {log:?}), {{}})"))
        .collect();
    let params = common::serialize_params_many(&exprs);

    let started = Instant::now();
    let mut tasks: Vec<String> = Vec::with_capacity(TASKS);
    let mut refused = 0;
    let mut seen_rank: HashMap<String, u8> = HashMap::new();
    let mut next_worker_kill = Duration::from_secs(3);
    let mut backwards = 0;
    let mut step = 0;
    let mut paused = None;
    let mut last_step = Duration::ZERO;
    // The workload's own clock: submissions, faults and status samples every 100 ms.
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);

    while tasks.len() < TASKS
        || step < SCHEDULE.len()
        || started.elapsed() < Duration::from_secs(18)
    {
        // Refusals are retried, but not forever: a store that stays unable to take writes
        // (no replica confirms them) fails the run instead of hanging it.
        assert!(
            started.elapsed() < SUBMIT_OVER * 6,
            "only {} of {TASKS} tasks accepted after {:?} ({refused} refusals)",
            tasks.len(),
            started.elapsed()
        );
        ticks.tick().await;
        // Submit on schedule; a refusal (Redis away or full) is retried on the next tick.
        let due =
            ((started.elapsed().as_secs_f64() / SUBMIT_OVER.as_secs_f64()) * TASKS as f64) as usize;
        while tasks.len() < due.min(TASKS) {
            let i = tasks.len();
            let body = serde_json::json!({"function_id": function_ids[NAMES[i % 4]], "payload": params[i]});
            let (status, answer) = system.post("/execute_function", body).await;
            if status != 201 {
                assert_eq!(status, 503, "task {i}: {answer}");
                refused += 1;
                break;
            }
            tasks.push(answer["task_id"].as_str().expect("a task id").to_owned());
        }
        // Faults on schedule, each once, in this order.
        let now = started.elapsed();
        if now >= next_worker_kill && !live.is_empty() {
            let victim = live.remove(rng.below(live.len()));
            system.kill(victim).await;
            faults.worker_kills += 1;
            let at = place(&ports, spawned, "127.0.0.1", None);
            spawned += 1;
            live.push(system.add_worker_at(&at, EXECUTORS).await);
            next_worker_kill = now + Duration::from_secs(3);
        }
        if step < SCHEDULE.len() && now >= last_step + Duration::from_secs_f64(SCHEDULE[step]) {
            match step {
                0 => {
                    if let Some(net) = &net {
                        net.add_rule("drop");
                        faults.partitions += 1;
                    }
                }
                1 => {
                    old_primary = Some(sentinels.kill_primary());
                    faults.failovers += 1;
                }
                2 => {
                    if let Some(net) = &net {
                        net.heal();
                        net.add_rule("numgen random mod 100 < 5 drop");
                    }
                }
                3 => {
                    system.redis_full(true).await;
                    faults.redis_full += 1;
                }
                4 => system.redis_full(false).await,
                5 => {
                    // Out of the kill rotation while stopped.
                    let worker = live.remove(rng.below(live.len()));
                    system
                        .cluster
                        .pause(worker)
                        .unwrap_or_else(|e| panic!("{e}"));
                    paused = Some(worker);
                    faults.worker_pauses += 1;
                }
                6 => {
                    sentinels.restart_old_primary(old_primary.take().expect("killed"));
                    faults.redis_restarts += 1;
                }
                7 => {
                    let worker = paused.take().expect("a paused worker");
                    system
                        .cluster
                        .resume(worker)
                        .unwrap_or_else(|e| panic!("{e}"));
                    live.push(worker);
                }
                8 => {
                    system.kill(MemberId::Dispatcher(0)).await;
                    faults.dispatcher_kills += 1;
                    system.restart(MemberId::Dispatcher(0)).await;
                }
                9 => {
                    system
                        .cluster
                        .pause(MemberId::Dispatcher(1))
                        .unwrap_or_else(|e| panic!("{e}"));
                    faults.dispatcher_pauses += 1;
                }
                10 => system
                    .cluster
                    .resume(MemberId::Dispatcher(1))
                    .unwrap_or_else(|e| panic!("{e}")),
                _ => {
                    for &worker in &live {
                        system.kill(worker).await;
                    }
                    faults.mass_kills += 1;
                    faults.worker_kills += live.len();
                    live.clear();
                    for _ in 0..WORKERS {
                        let at = place(&ports, spawned, "127.0.0.1", None);
                        spawned += 1;
                        live.push(system.add_worker_at(&at, EXECUTORS).await);
                    }
                }
            }
            step += 1;
            last_step = started.elapsed();
        }
        // Statuses never move backwards (answers while Redis is away say nothing).
        for _ in 0..20.min(tasks.len()) {
            let task = &tasks[rng.below(tasks.len())];
            let (code, body) = system.get(&format!("/status/{task}")).await;
            if code != 200 {
                continue;
            }
            let r = rank(body["status"].as_str().unwrap_or("?"));
            let previous = seen_rank.insert(task.clone(), r).unwrap_or(0);
            if r < previous {
                backwards += 1;
            }
        }
    }
    let run = started.elapsed();
    assert_eq!(step, SCHEDULE.len(), "every scheduled fault ran");

    // Account for every task, each answered on the results stream the moment it is final.
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<String> = tasks.clone();
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

    // Executions, against the attempts each task was given.
    let executions = effects.executions();
    let mut attempts_of = redis::pipe();
    for task in &tasks {
        attempts_of.hget(format!("faas:task:{task}"), "attempts");
    }
    let attempts: Vec<Option<u32>> = attempts_of
        .query_async(&mut system.redis().await)
        .await
        .expect("attempts");
    let results: Vec<String> = finals.iter().map(|(_, _, r)| r.clone()).collect();
    let described = describe_many(&results);
    let (mut completed, mut raised, mut worker_failures, mut wrong) = (0, 0, 0, Vec::new());
    for ((i, status, _), (kind, text)) in finals.iter().zip(&described) {
        let (want_status, want_kind, want_text) = expected(*i);
        let ran = executions.get(i).copied().unwrap_or(0);
        if status == "FAILED" && kind == "WorkerFailure" {
            worker_failures += 1;
        } else if status == want_status && kind == want_kind && *text == want_text && ran > 0 {
            if status == "COMPLETED" {
                completed += 1;
            } else {
                raised += 1;
            }
        } else {
            wrong.push(format!(
                "task {i}: {status} {kind} {text:?} after {ran} executions"
            ));
        }
    }
    let mut extra = 0;
    let mut unexplained = Vec::new();
    for (i, given) in attempts.iter().enumerate() {
        let given = given.unwrap_or(0);
        let ran = executions.get(&i).copied().unwrap_or(0);
        extra += ran.saturating_sub(1);
        if ran > given || given > MAX_RETRIES + 1 {
            unexplained.push(format!("task {i}: {ran} executions, {given} attempts"));
        }
    }
    let summary = format!(
        "chaos {mode}, seed {seed}: {} tasks in {:.1}s ({refused} submissions refused with 503 and retried); \
         faults: {faults:?}; completed {completed}, raised as expected {raised}, WorkerFailure {worker_failures}; \
         lost {lost}, stuck {stuck}, wrong {}, status regressions {backwards}; \
         executions {} ({extra} beyond the first, {} unexplained by an attempt)",
        tasks.len(),
        run.as_secs_f64(),
        wrong.len(),
        executions.values().sum::<u32>(),
        unexplained.len(),
    );
    eprintln!("{summary}");
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
    assert!(
        unexplained.is_empty(),
        "executions beyond the attempts: {summary}\n{}",
        unexplained.join("\n")
    );
    assert_eq!(completed + raised + worker_failures, TASKS, "{summary}");
    assert!(
        faults.worker_kills >= 6
            && faults.dispatcher_kills == 1
            && faults.dispatcher_pauses == 1
            && faults.worker_pauses == 1
            && faults.redis_restarts == 1
            && faults.failovers == 1
            && faults.redis_full == 1,
        "{summary}"
    );
}
