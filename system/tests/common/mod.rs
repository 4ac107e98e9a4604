//! `TestSystem`: a private redis-server, the real gateway and dispatcher binaries on free
//! ports, typed helpers to drive them, and cleanup of every process on drop.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faas::executor::python_env;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("system/ has a parent")
        .to_path_buf()
}

/// A free TCP port on loopback (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A child process killed (SIGKILL) and reaped when dropped. Its stderr is copied to the
/// test's stderr and kept, so tests can wait for a log line.
pub struct Proc {
    pub name: String,
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sink, label) = (log.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                sink.lock().expect("log lock").push(line);
            }
        });
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Waits until the process has logged a line containing `needle` `count` times in all.
    pub async fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if seen >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} {count} time(s) within {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server on a free port, in its own temporary directory, with append-only
/// persistence (as the project's launcher runs it), so it can be restarted with its data.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    proc: Option<Proc>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("faas-test-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server = Self {
            port,
            dir,
            proc: None,
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`Self::stop`]) on the same port and data.
    pub fn restart(&mut self) {
        let proc = Proc::spawn(
            "redis-server",
            Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(&self.dir)
                .stdout(Stdio::null()),
        );
        self.proc = Some(proc);
        let port = self.port;
        wait_until(
            Duration::from_secs(10),
            "redis-server to accept connections",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
    }

    /// Stops the server cleanly (SIGTERM: it finishes writing its append-only file).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.signal(libc::SIGTERM);
            proc.wait_exit(Duration::from_secs(10))
                .expect("redis-server stops on SIGTERM");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        drop(self.proc.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `ready` every 20 ms until it holds, panicking after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python the executors use (created on first use), for serializing test payloads.
pub fn python() -> PathBuf {
    python_env::resolve(None)
        .unwrap_or_else(|e| panic!("{e}"))
        .python
}

fn py_request(request: serde_json::Value) -> String {
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/pyhelper.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pyhelper");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("pyhelper output");
    assert!(
        out.status.success(),
        "pyhelper failed on {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// `base64(dill.dumps(fn))` for the function `name` defined by `src`.
pub fn serialize_function(src: &str, name: &str) -> String {
    // The helper prints the codecs form's newlines escaped, to keep to one line.
    py_request(serde_json::json!({"op": "function", "src": src, "name": name})).replace("\\n", "\n")
}

/// `base64(dill.dumps(eval(expr)))`, e.g. `"((21,), {})"`.
pub fn serialize_params(expr: &str) -> String {
    py_request(serde_json::json!({"op": "params", "expr": expr})).replace("\\n", "\n")
}

/// [`serialize_params`] for many expressions, in one Python run.
pub fn serialize_params_many(exprs: &[String]) -> Vec<String> {
    serde_json::from_str(&py_request(
        serde_json::json!({"op": "params_many", "exprs": exprs}),
    ))
    .expect("params_many json")
}

/// A serialized result, loaded with plain dill.
pub struct Described {
    pub kind: String,
    /// `str()` of the value, cut at 2,000 characters.
    pub text: String,
    pub len: Option<usize>,
    /// An exception's `__notes__`, joined.
    pub notes: String,
}

/// Loads a serialized result with plain dill and describes it.
pub fn describe_full(result: &str) -> Described {
    let out: serde_json::Value = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe", "b64": result}),
    ))
    .expect("describe json");
    let text = |key: &str| out[key].as_str().unwrap_or_default().to_owned();
    Described {
        kind: text("type"),
        text: text("str"),
        len: out["len"].as_u64().map(|n| n as usize),
        notes: text("notes"),
    }
}

/// The type name and `str()` of a serialized result, loaded with plain dill.
pub fn describe(result: &str) -> (String, String) {
    let out: serde_json::Value = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe", "b64": result}),
    ))
    .expect("describe json");
    (
        out["type"].as_str().unwrap_or_default().to_owned(),
        out["str"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The type name and `str()` of many serialized results, in one Python run.
pub fn describe_many(results: &[String]) -> Vec<(String, String)> {
    let out: Vec<serde_json::Value> = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe_many", "b64s": results}),
    ))
    .expect("describe_many json");
    out.iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["str"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Redis, the gateway, dispatchers and workers. Fields drop in order: workers first, Redis
/// last.
pub struct TestSystem {
    pub workers: Vec<Proc>,
    pub dispatchers: Vec<Proc>,
    pub gateway: Proc,
    pub url: String,
    pub http: reqwest::Client,
    /// The port workers connect to (pull and push modes).
    pub port: u16,
    pub redis: RedisServer,
}

impl TestSystem {
    /// Redis and a gateway that requires `token`, no dispatcher.
    pub async fn without_dispatcher_authenticated(token: &str) -> Self {
        Self::start_gateway(&[], Some(token)).await
    }

    /// Redis and the gateway (with `gateway_args` added), no dispatcher yet.
    pub async fn without_dispatcher(gateway_args: &[&str]) -> Self {
        Self::start_gateway(gateway_args, None).await
    }

    async fn start_gateway(gateway_args: &[&str], token: Option<&str>) -> Self {
        let redis = RedisServer::start();
        let port = free_port();
        let gateway = Proc::spawn(
            "faas-gateway",
            Command::new(env!("CARGO_BIN_EXE_faas-gateway"))
                .args([
                    "--bind",
                    &format!("127.0.0.1:{port}"),
                    "--redis-url",
                    &redis.url(),
                ])
                .args(gateway_args)
                .envs(token.map(|t| ("FAAS_AUTH_TOKEN", t))),
        );
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = http
                .get(format!("{url}/health"))
                .bearer_auth(token.unwrap_or_default());
            if let Ok(r) = probe.send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "gateway did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            redis,
            url,
            http,
            gateway,
            dispatchers: Vec::new(),
            workers: Vec::new(),
            port: 0,
        }
    }

    /// Redis, the gateway and one dispatcher started with `dispatcher_args`.
    pub async fn start(dispatcher_args: &[&str]) -> Self {
        let mut system = Self::without_dispatcher(&[]).await;
        system.spawn_dispatcher(dispatcher_args).await;
        system
    }

    /// Starts a `pull_worker` or `push_worker` with `executors` executors connected to
    /// `port`, and waits until it has registered.
    pub async fn spawn_worker(&mut self, kind: &str, executors: usize, port: u16) -> usize {
        assert_eq!(
            port, self.port,
            "workers connect to this system's dispatcher port"
        );
        self.spawn_worker_with_env(kind, executors, &[]).await
    }

    /// [`Self::spawn_worker`] with extra environment variables for the worker.
    pub async fn spawn_worker_with_env(
        &mut self,
        kind: &str,
        executors: usize,
        env: &[(&str, &str)],
    ) -> usize {
        let proc = self.start_worker_process(kind, executors, env);
        proc.wait_for_log("registered with the dispatcher", 1, Duration::from_secs(60))
            .await;
        self.workers.push(proc);
        self.workers.len() - 1
    }

    /// Starts a worker named `w<next index>` for this system's port, without waiting.
    pub fn start_worker_process(&self, kind: &str, executors: usize, env: &[(&str, &str)]) -> Proc {
        let binary = match kind {
            "pull" => env!("CARGO_BIN_EXE_pull_worker"),
            "push" => env!("CARGO_BIN_EXE_push_worker"),
            other => panic!("no {other} worker"),
        };
        let index = self.workers.len();
        Proc::spawn(
            &format!("{kind}_worker#{index}"),
            Command::new(binary)
                .current_dir(repo_root())
                .args([
                    &executors.to_string(),
                    &format!("tcp://127.0.0.1:{}", self.port),
                ])
                .args(["--name", &format!("w{index}")])
                .env("FAAS_PYTHON", python())
                .envs(env.iter().copied()),
        )
    }

    /// Redis, the gateway, a `mode` dispatcher with `dispatcher_args` and, for pull and push,
    /// `workers.len()` workers with the given executor counts (local mode: one pool of
    /// `workers.iter().sum()` executors).
    pub async fn with_mode(mode: &str, workers: &[usize], dispatcher_args: &[&str]) -> Self {
        let mut system = Self::without_dispatcher(&[]).await;
        let port = free_port().to_string();
        let total = workers.iter().sum::<usize>().to_string();
        let mut args = vec!["-m", mode];
        if mode == "local" {
            args.extend(["-w", total.as_str()]);
        } else {
            args.extend(["-p", port.as_str()]);
        }
        args.extend(dispatcher_args);
        system.spawn_dispatcher(&args).await;
        if mode != "local" {
            system.port = port.parse().expect("port");
            for &n in workers {
                system.spawn_worker(mode, n, system.port).await;
            }
        }
        system
    }

    /// Starts a dispatcher and waits until it reads the queue (its liveness marker appears).
    pub async fn spawn_dispatcher(&mut self, args: &[&str]) -> usize {
        self.spawn_dispatcher_with_env(args, &[]).await
    }

    /// As [`Self::spawn_dispatcher`], with extra environment variables.
    pub async fn spawn_dispatcher_with_env(
        &mut self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let before = self.live_dispatchers().await;
        let proc = Proc::spawn(
            "task_dispatcher",
            Command::new(env!("CARGO_BIN_EXE_task_dispatcher"))
                // From the repository root, as the README starts it: executors can import
                // the conformance suite's modules, as dill's by-reference functions need.
                .current_dir(repo_root())
                .args(["--redis-url", &self.redis.url()])
                .args(args)
                .env("FAAS_PYTHON", python())
                .envs(env.iter().copied()),
        );
        self.dispatchers.push(proc);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.live_dispatchers().await.len() <= before.len() {
            assert!(Instant::now() < deadline, "dispatcher did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.dispatchers.len() - 1
    }

    /// Liveness markers of dispatchers currently in Redis.
    pub async fn live_dispatchers(&self) -> Vec<String> {
        let mut conn = self.redis.connection().await;
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
        let (status, body) = self
            .post(
                "/register_function",
                serde_json::json!({"name": name, "payload": payload}),
            )
            .await;
        assert!(status == 200 || status == 201, "register: {status} {body}");
        body["function_id"]
            .as_str()
            .expect("function_id")
            .to_owned()
    }

    /// Executes `function_id` with the Python params expression `params`; the task id.
    pub async fn execute(&self, function_id: &str, params: &str) -> String {
        self.execute_serialized(function_id, &serialize_params(params))
            .await
    }

    pub async fn execute_serialized(&self, function_id: &str, payload: &str) -> String {
        let (status, body) = self
            .post(
                "/execute_function",
                serde_json::json!({"function_id": function_id, "payload": payload}),
            )
            .await;
        assert!(status == 200 || status == 201, "execute: {status} {body}");
        body["task_id"].as_str().expect("task_id").to_owned()
    }

    /// Polls until the task is final; its status and result.
    pub async fn wait_final(&self, task_id: &str, timeout: Duration) -> (String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self.get(&format!("/result/{task_id}")).await;
            assert_eq!(code, 200, "result of {task_id}: {body}");
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            if status == "COMPLETED" || status == "FAILED" {
                return (
                    status,
                    body["result"].as_str().unwrap_or_default().to_owned(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} still {status} after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls until the task has the given status.
    pub async fn wait_status(&self, task_id: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self.get(&format!("/status/{task_id}")).await;
            if body["status"] == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} never {want}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A field of the task's Redis hash.
    pub async fn task_field(&self, task_id: &str, field: &str) -> Option<String> {
        let mut conn = self.redis.connection().await;
        redis::cmd("HGET")
            .arg(format!("faas:task:{task_id}"))
            .arg(field)
            .query_async(&mut conn)
            .await
            .expect("HGET")
    }
}
