//! `TestSystem`: a whole cluster started by the one supervisor ([`faas::cluster`]) from the
//! real binaries, with a private redis-server on a free port, typed helpers to drive it
//! through its REST API, and every process killed when it is dropped, even when the test
//! failed halfway. Tests wait on events, never on time: readiness notifications and exits
//! from the supervisor, long polls and the results stream, Redis keyspace notifications for
//! a task's status, and a [`Fifo`] the functions under test write to as they run.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset of the helpers

mod fifo;
mod netns;
mod proxy;
mod python;
mod sentinel;

pub use fifo::{Fifo, NAP, SIGNAL, nap_args, root as fifo_root, signalling};
pub use netns::NetNs;
pub use proxy::{Proxy, Toxics};
pub use python::{
    Described, describe, describe_full, describe_many, python, serialize_function,
    serialize_params, serialize_params_many,
};
pub use sentinel::SentinelSet;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faas::client::Client;
use faas::cluster::{
    Binaries, Cluster, ClusterSpec, MemberId, Output, Persistence, RedisSpec, WorkerPlace, output,
};
use faas::dispatcher::Mode;
use faas::task::{FunctionId, TaskId};
use futures_util::StreamExt;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("system/ has a parent")
        .to_path_buf()
}

/// The pids of this host's processes that `matching` accepts (given a pid, it may read
/// `/proc/{pid}/...`): how tests find sandboxed executors, whose own pids are those of their
/// namespace.
pub fn processes(matching: impl Fn(i32) -> bool) -> Vec<i32> {
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matching(pid))
        .collect()
}

/// A free TCP port on loopback (bound, then released for a child to take).
pub fn free_port() -> u16 {
    faas::cluster::ports::free_port().expect("a free port on loopback")
}

/// The dispatch mode named `mode` (`local`, `pull` or `push`).
pub fn mode(mode: &str) -> Mode {
    match mode {
        "local" => Mode::Local,
        "pull" => Mode::Pull,
        "push" => Mode::Push,
        other => panic!("no {other} mode"),
    }
}

/// The cluster the tests run: the binaries cargo built for this test, a private Redis with
/// every write fsynced (so it can be restarted with its data), executor hosts started from
/// the repository root (as the README starts them: executors can import the conformance
/// suite's modules, as dill's by-reference functions need), output captured per test.
pub fn spec(mode: Mode, executors: &[u32]) -> ClusterSpec {
    spec_with_python(mode, executors, python())
}

/// [`spec`] whose executors run `python`, which is neither looked at nor created here.
pub fn spec_with_python(mode: Mode, executors: &[u32], python: PathBuf) -> ClusterSpec {
    let gateway = Path::new(env!("CARGO_BIN_EXE_faas-gateway"));
    let binaries = Binaries::in_dir(gateway.parent().expect("a bin dir").to_path_buf());
    ClusterSpec {
        redis: RedisSpec::Private(Persistence::AppendOnlyAlways),
        executors: executors.to_vec(),
        workdir: Some(repo_root()),
        share_dirs: vec![fifo::root()],
        rust_log: output::child_filter(std::env::var("RUST_LOG").ok().as_deref()),
        output: Output::Captured,
        ..ClusterSpec::new(binaries, mode, python)
    }
}

/// How long a test waits for an executor host to become ready.
pub const READY: Duration = Duration::from_secs(120);

/// A cluster and an HTTP client for its gateway.
pub struct TestSystem {
    pub cluster: Cluster,
    /// The gateway's base URL.
    pub url: String,
    /// The typed client of the gateway (`faas::client`), for the contract's happy paths.
    pub client: Client,
    /// Plain HTTP, for what the typed client cannot send: malformed requests, raw bodies.
    pub http: reqwest::Client,
}

impl TestSystem {
    /// Redis and the gateway (with `gateway_args` added) of a local-mode cluster, no
    /// dispatcher.
    pub async fn without_dispatcher(gateway_args: &[&str]) -> Self {
        let spec = ClusterSpec {
            gateway_args: gateway_args.iter().map(|a| (*a).to_owned()).collect(),
            ..spec(Mode::Local, &[1])
        };
        Self::control_plane_only(spec).await
    }

    /// Redis and a gateway that requires `token`, no dispatcher.
    pub async fn without_dispatcher_authenticated(token: &str) -> Self {
        let spec = ClusterSpec {
            token: Some(token.to_owned()),
            ..spec(Mode::Local, &[1])
        };
        Self::control_plane_only(spec).await
    }

    /// Redis and the gateway of `spec`, nothing else yet.
    pub async fn control_plane_only(spec: ClusterSpec) -> Self {
        let mut cluster = Cluster::new(spec).unwrap_or_else(|e| panic!("{e}"));
        cluster
            .start_redis()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        cluster
            .start_gateway()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self::around(cluster)
    }

    /// All of `spec`, started.
    pub async fn from_spec(spec: ClusterSpec) -> Self {
        let cluster = Cluster::start(spec).await.unwrap_or_else(|e| panic!("{e}"));
        Self::around(cluster)
    }

    /// Redis, the gateway, a `mode` dispatcher with `dispatcher_args` and, for pull and push,
    /// one worker per entry of `executors` with that many executors (local mode: one pool of
    /// their sum).
    pub async fn with_mode(mode_name: &str, executors: &[u32], dispatcher_args: &[&str]) -> Self {
        Self::from_spec(ClusterSpec {
            dispatcher_args: dispatcher_args.iter().map(|a| (*a).to_owned()).collect(),
            ..spec(mode(mode_name), executors)
        })
        .await
    }

    fn around(cluster: Cluster) -> Self {
        let url = cluster.gateway_url();
        let client = Client::new(&url, cluster.spec().token.as_deref())
            .unwrap_or_else(|e| panic!("a client of {url}: {e}"));
        Self {
            url,
            client,
            http: reqwest::Client::new(),
            cluster,
        }
    }

    /// Another worker with `executors` executors (and extra environment), once it has
    /// registered; its index.
    pub async fn add_worker(&mut self, executors: u32, env: &[(&str, &str)]) -> usize {
        self.cluster
            .start_worker_with(executors, &[], env)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts another worker without waiting for it (one expected never to register); its
    /// index.
    pub fn spawn_worker(&mut self, executors: u32, env: &[(&str, &str)]) -> usize {
        self.cluster
            .spawn_worker_with(executors, &[], env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Another dispatcher with the spec's flags and `env`, once it reads the queue; its index.
    pub async fn add_dispatcher(&mut self, args: &[&str], env: &[(&str, &str)]) -> usize {
        self.cluster
            .start_dispatcher_with(args, env)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGKILL to a member, and its exit reaped.
    pub async fn kill(&self, id: MemberId) {
        self.cluster
            .kill(id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a killed member again from the same command, once it is ready.
    pub async fn restart(&mut self, id: MemberId) {
        self.cluster
            .restart(id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGTERM to a member; its exit status if it exits by itself within `timeout`.
    pub async fn terminate(
        &self,
        id: MemberId,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        self.cluster
            .terminate(id, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the gateway's health check passes (after Redis came back), for up to
    /// `timeout`; every other answer must be 503 ("try again shortly"). The health check is
    /// the event: it is probed with a backoff from 10 ms to 200 ms.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        let mut answers = Vec::new();
        loop {
            let (code, body) = self.get("/health").await;
            if code == 200 {
                return;
            }
            answers.push(code);
            assert_eq!(code, 503, "{answers:?}: {body}");
            assert!(
                Instant::now() < deadline,
                "the gateway was not healthy within {timeout:?}: {answers:?}"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A client of the cluster's Redis: its primary of the moment, for a Sentinel address.
    pub async fn redis_client(&self) -> redis::Client {
        let url = faas::store::RedisAddress::parse(self.cluster.redis_url())
            .expect("a Redis address")
            .current()
            .await
            .expect("the Redis primary");
        redis::Client::open(url).expect("redis url")
    }

    /// A connection to the cluster's Redis (see [`Self::redis_client`]).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        self.redis_client()
            .await
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Liveness markers of dispatchers currently in Redis.
    pub async fn live_dispatchers(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        redis::cmd("KEYS")
            .arg("faas:dispatcher:*")
            .query_async(&mut conn)
            .await
            .expect("KEYS")
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Registers the function `name` defined by Python `src`; its id.
    pub async fn register(&self, src: &str, name: &str) -> String {
        let payload = serialize_function(src, name);
        let registered = self.client.register(name, &payload).await;
        registered
            .unwrap_or_else(|e| panic!("register {name}: {e}"))
            .function_id
            .to_string()
    }

    /// Executes `function_id` with the Python params expression `params`; the task id.
    pub async fn execute(&self, function_id: &str, params: &str) -> String {
        self.execute_serialized(function_id, &serialize_params(params))
            .await
    }

    pub async fn execute_serialized(&self, function_id: &str, payload: &str) -> String {
        let id: FunctionId = function_id.parse().expect("a function id");
        let executed = self.client.execute(id, payload).await;
        executed
            .unwrap_or_else(|e| panic!("execute {function_id}: {e}"))
            .task_id
            .to_string()
    }

    /// Registers [`NAP`] and submits `n` naps of `seconds`, tagged with their index, that
    /// signal on `fifo` as they start; the task ids.
    pub async fn submit_naps(&self, fifo: &Fifo, n: usize, seconds: f64) -> Vec<String> {
        let f = self.register(&signalling(NAP), "nap").await;
        let exprs: Vec<String> = (0..n)
            .map(|i| nap_args(fifo, &i.to_string(), seconds))
            .collect();
        let mut tasks = Vec::with_capacity(n);
        for params in serialize_params_many(&exprs) {
            tasks.push(self.execute_serialized(&f, &params).await);
        }
        tasks
    }

    /// Waits (long polling `GET /result/{id}?wait=`) until the task is final; its status and
    /// result.
    pub async fn wait_final(&self, task_id: &str, timeout: Duration) -> (String, String) {
        let id: TaskId = task_id.parse().expect("a task id");
        let answer = self
            .client
            .wait_final(id, timeout)
            .await
            .unwrap_or_else(|e| panic!("result of {task_id}: {e}"));
        assert!(
            answer.status.is_final(),
            "task {task_id} still {} after {timeout:?}",
            answer.status
        );
        (answer.status.to_string(), answer.result.unwrap_or_default())
    }

    /// Waits until the task has the status `want`, woken by Redis's keyspace notifications
    /// on the task's hash (turned on here), never by a timer.
    pub async fn wait_status(&self, task_id: &str, want: &str, timeout: Duration) {
        let mut changes = self
            .keyspace_events("Kh", &format!("faas:task:{task_id}"))
            .await;
        // Subscribed before the first read: a change after any read is heard, never missed.
        let seen = tokio::time::timeout(timeout, async {
            while self.task_field(task_id, "status").await.as_deref() != Some(want) {
                changes.next().await.expect("the subscription stays open");
            }
        })
        .await;
        assert!(
            seen.is_ok(),
            "task {task_id} never {want} within {timeout:?}: {:?}",
            self.task_field(task_id, "status").await
        );
    }

    /// `POST /results` for `task_ids`, waiting up to `wait` seconds: one line per task, each
    /// sent the moment the task is final; unknown ids, and tasks still not final when the
    /// wait runs out, are answered too.
    pub async fn results(&self, task_ids: &[String], wait: f64) -> Vec<serde_json::Value> {
        let ids: Vec<TaskId> = task_ids
            .iter()
            .map(|id| id.parse().expect("a task id"))
            .collect();
        let wait = Duration::from_secs_f64(wait);
        let lines = match self.client.results(&ids, Some(wait)).await {
            Ok(stream) => stream.collect().await,
            Err(e) => Err(e),
        };
        lines
            .unwrap_or_else(|e| panic!("POST /results: {e}"))
            .iter()
            .map(|line| serde_json::to_value(line).expect("a line serializes"))
            .collect()
    }

    /// A metrics page (`url` is the gateway's or a dispatcher's `/metrics`); panics unless it
    /// is served as Prometheus text.
    pub async fn scrape(&self, url: &str) -> String {
        let response = self.http.get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("a text header")
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        response.text().await.expect("body")
    }

    /// Scrapes `url` until `series` has `want`; the page that had it. A sample has no event
    /// of its own to wait on, so this reads it again every 20 ms, for up to 10 s.
    pub async fn wait_sample(&self, url: &str, series: &str, want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.scrape(url).await;
            if sample(&page, series) == Some(want) {
                return page;
            }
            assert!(Instant::now() < deadline, "{series} never {want}:\n{page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs one Redis admin command (`CONFIG SET ...`, `ACL SETUSER ...`) on the test's Redis.
    pub async fn admin(&self, args: &[&str]) {
        let () = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut self.redis().await)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }

    /// Puts Redis at `maxmemory` with no eviction, so that it refuses every write (OOM), or
    /// (`full == false`) lifts the limit again.
    pub async fn redis_full(&self, full: bool) {
        let limit = if full { "1" } else { "0" };
        self.admin(&[
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "noeviction",
            "maxmemory",
            limit,
        ])
        .await;
    }

    /// Keyspace notifications of the `events` classes (as `notify-keyspace-events` takes them,
    /// turned on here) for the keys matching `pattern`, from now on.
    pub async fn keyspace_events(&self, events: &str, pattern: &str) -> redis::aio::PubSubStream {
        self.admin(&["CONFIG", "SET", "notify-keyspace-events", events])
            .await;
        let mut pubsub = self
            .redis_client()
            .await
            .get_async_pubsub()
            .await
            .expect("a pub/sub connection");
        pubsub
            .psubscribe(format!("__keyspace@0__:{pattern}"))
            .await
            .expect("subscribe to keyspace notifications");
        pubsub.into_on_message()
    }

    /// A worker of `executors` at `place`; its id, once it has registered.
    pub async fn add_worker_at(&mut self, place: &WorkerPlace, executors: u32) -> MemberId {
        let i = self
            .cluster
            .spawn_worker_at(place, executors, &[], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let id = MemberId::Worker(i);
        self.cluster
            .wait_ready(id, 1, READY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        id
    }

    /// Follows `tasks` on the results stream (for up to `wait` seconds) and checks that each
    /// is answered once, COMPLETED with the value `want(i)` for the `i`th (as `str()` shows
    /// it), and ran once unless `reruns` are allowed (then at most 1 + `reruns` attempts).
    pub async fn each_completes(
        &self,
        tasks: &[String],
        wait: f64,
        reruns: u32,
        want: impl Fn(usize) -> String,
    ) {
        let mut seen = std::collections::HashSet::new();
        for line in self.results(tasks, wait).await {
            let task = line["task_id"].as_str().expect("a task id").to_owned();
            let i = tasks.iter().position(|t| *t == task).expect("one of ours");
            assert_eq!(line["status"], "COMPLETED", "{line}");
            let result = line["result"].as_str().expect("a result");
            assert_eq!(describe(result).1, want(i), "task {i} ({task})");
            assert!(seen.insert(task), "answered twice: {line}");
        }
        assert_eq!(seen.len(), tasks.len(), "every task answered");
        for task in tasks {
            let attempts: u32 = self
                .task_field(task, "attempts")
                .await
                .and_then(|a| a.parse().ok())
                .unwrap_or_default();
            assert!(
                (1..=1 + reruns).contains(&attempts),
                "task {task} ran {attempts} times"
            );
        }
    }

    /// A field of the task's Redis hash.
    pub async fn task_field(&self, task_id: &str, field: &str) -> Option<String> {
        let mut conn = self.redis().await;
        redis::cmd("HGET")
            .arg(format!("faas:task:{task_id}"))
            .arg(field)
            .query_async(&mut conn)
            .await
            .expect("HGET")
    }
}

/// The endpoints of dispatchers at `host` on `ports`, comma-separated as workers take them,
/// starting with the `first`th: workers told different firsts spread over the dispatchers.
pub fn endpoints(host: &str, ports: &[u16], first: usize) -> String {
    (0..ports.len())
        .map(|k| format!("tcp://{host}:{}", ports[(first + k) % ports.len()]))
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of the sample `series` (name with labels, exactly as exposed) on a metrics page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
