//! `faas up` end to end: the real binary brings a cluster up, runs a task through the REST
//! API, and takes everything down again on SIGINT/SIGTERM, leaving no process behind.

mod common;

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use faas::cluster::output::Sink;
use faas::cluster::{Exit, Member, Recipe};
use tokio::sync::mpsc;

use common::{describe, free_port, serialize_function, serialize_params};

/// A first run may have to create the executors' Python environment.
const STARTUP: Duration = Duration::from_secs(300);

/// A process, told apart from a later one reusing its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pid {
    pid: i32,
    start: u64,
}

impl Pid {
    fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command (which may hold spaces), from field 3 (state) on.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None; // a zombie has exited
        }
        let start = fields.get(19)?.parse().ok()?; // field 22: starttime
        Some(Self { pid, start })
    }

    fn alive(self) -> bool {
        Self::of(self.pid) == Some(self)
    }

    fn kill(self) {
        if self.alive() {
            // SAFETY: signalling a process this test started (through faas up).
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }
}

/// Every live descendant of `pid`, children before grandchildren.
fn descendants(pid: i32) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if let Some(p) = Pid::of(child) {
                    found.push(p);
                    queue.push(child);
                }
            }
        }
    }
    found
}

/// What a child printed on one stream, as it arrives: waited on line by line, never
/// re-read from a file.
struct Transcript {
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    closed: bool,
}

impl Transcript {
    fn new(lines: mpsc::UnboundedReceiver<String>) -> tokio::sync::Mutex<Self> {
        tokio::sync::Mutex::new(Self {
            lines,
            seen: Vec::new(),
            closed: false,
        })
    }

    /// Waits up to 5 s for a line `wanted` accepts (or that was seen already); its index.
    async fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> usize {
        if let Some(i) = self.seen.iter().position(|l| wanted(l)) {
            return i;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    let found = wanted(&line);
                    self.seen.push(line);
                    if found {
                        return self.seen.len() - 1;
                    }
                }
                Ok(None) => panic!("the output ended without that line: {:?}", self.seen),
                Err(_) => panic!("not in the output within 5 s: {:?}", self.seen),
            }
        }
    }

    /// Everything printed, once the stream has closed (the child exited).
    async fn all(&mut self) -> &[String] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.closed {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => self.closed = true,
                Err(_) => panic!("the output did not close: {:?}", self.seen),
            }
        }
        &self.seen
    }

    /// Everything printed so far.
    fn so_far(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}

/// A running `faas up`, supervised as a cluster member would be: ready when it notifies
/// (`READY=1`, once the whole cluster is up), its stdout (the summary) and stderr (the
/// children's and its own logs) read apart. Dropping it kills it and everything it
/// started, even when the test failed halfway.
struct Up {
    member: Member,
    stdout: tokio::sync::Mutex<Transcript>,
    stderr: tokio::sync::Mutex<Transcript>,
    dir: std::path::PathBuf,
    _exits: mpsc::UnboundedReceiver<Exit>,
}

impl Up {
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("faas-up-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut recipe = Recipe::new(env!("CARGO_BIN_EXE_faas"))
            .arg("up")
            .args(args)
            .env("FAAS_PYTHON", common::python())
            .env_remove("FAAS_REDIS_URL")
            .env_remove("FAAS_AUTH_TOKEN");
        recipe.cwd = Some(common::repo_root());
        let recipe = env.iter().fold(recipe, |r, (k, v)| r.env(k, v));
        let (out_sink, stdout) = Sink::lines();
        let (err_sink, stderr) = Sink::lines();
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let member = Member::spawn_split(
            "faas-up",
            recipe,
            [out_sink, err_sink],
            &dir.join("notify.sock"),
            &exits_tx,
        )
        .expect("start faas up");
        Self {
            member,
            stdout: Transcript::new(stdout),
            stderr: Transcript::new(stderr),
            dir,
            _exits: exits,
        }
    }

    fn pid(&self) -> i32 {
        self.member.pid()
    }

    /// Waits until faas up says the cluster is ready; the summary it printed on stdout.
    async fn wait_until_up(&self) -> String {
        self.member
            .wait_ready(1, STARTUP)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The summary is printed before the notification is sent, but relayed by another
        // task: wait for its last line.
        let mut stdout = self.stdout.lock().await;
        let start = stdout.wait_for(|l| l.contains("faas is up")).await;
        let end = stdout.wait_for(|l| l.starts_with("Press Ctrl-C")).await;
        stdout.seen[start..=end].join("\n")
    }

    /// Waits for a line of faas up's stderr (its logs and its children's).
    async fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) {
        self.stderr.lock().await.wait_for(wanted).await;
    }

    fn signal(&self, signal: i32) {
        self.member.signal(signal);
    }

    async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.member.wait()).await.ok()
    }

    /// The cluster directories (private Redis included) of this faas up still on disk.
    fn cluster_dirs(&self) -> Vec<std::path::PathBuf> {
        let prefix = format!("faas-{}-", self.pid());
        std::fs::read_dir(std::env::temp_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.member.exited().is_none() {
            let family = descendants(self.pid());
            self.member.signal(libc::SIGKILL);
            for p in family {
                p.kill();
            }
            for dir in self.cluster_dirs() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn post(url: &str, body: serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("JSON answer");
    assert!(status.is_success(), "POST {url}: {status} {body}");
    body
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Registers `add`, runs it on (40, 2) and checks the answer; the task's id.
async fn run_a_task(base: &str) -> String {
    let (status, health) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "health: {health}");
    let payload = serialize_function("def add(a, b):\n    return a + b\n", "add");
    let registered = post(
        &format!("{base}/register_function"),
        serde_json::json!({"name": "add", "payload": payload}),
    )
    .await;
    let function_id = registered["function_id"].as_str().expect("function_id");
    let executed = post(
        &format!("{base}/execute_function"),
        serde_json::json!({"function_id": function_id, "payload": serialize_params("((40, 2), {})")}),
    )
    .await;
    let task_id = executed["task_id"].as_str().expect("task_id").to_owned();
    let (status, body) = get(&format!("{base}/result/{task_id}?wait=30")).await;
    assert_eq!(status, 200, "result: {body}");
    assert_eq!(body["status"], "COMPLETED", "result: {body}");
    let result = body["result"].as_str().expect("a result");
    assert_eq!(describe(result), ("int".to_owned(), "42".to_owned()));
    task_id
}

/// Signals faas up and checks it stops everything it started and exits 0.
async fn stop_cleanly(up: Up, signal: i32, port: u16) {
    let family = descendants(up.pid());
    assert!(
        family.len() >= 4,
        "expected redis, the gateway, the dispatcher and more under faas up: {family:?}"
    );
    up.signal(signal);
    let status = up
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("faas up exits within 20 s of the signal");
    assert!(status.success(), "faas up exited with {status}");
    let alive: Vec<Pid> = family.iter().copied().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "still running after faas up: {alive:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the gateway port is still open"
    );
    assert!(
        up.cluster_dirs().is_empty(),
        "the cluster's directory is left: {:?}",
        up.cluster_dirs()
    );
    up.wait_for_log(|l| l.contains("all stopped")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_mode_with_two_workers_runs_a_task_and_stops_on_sigint() {
    let port = free_port();
    let port_arg = port.to_string();
    let up = Up::start(&[
        "--mode",
        "push",
        "--workers",
        "2",
        "--procs",
        "2",
        "--port",
        &port_arg,
    ]);
    let summary = up.wait_until_up().await;
    let base = format!("http://127.0.0.1:{port}");
    assert!(summary.contains(&base), "{summary}");
    assert!(
        summary.contains("push: 2 workers × 2 executors"),
        "{summary}"
    );
    // The private Redis has a password, never shown.
    assert!(summary.contains("redis://:***@127.0.0.1:"), "{summary}");
    assert!(
        summary.contains(&format!("curl {base}/health")),
        "{summary}"
    );
    let stderr = up.stderr.lock().await.so_far().to_vec();
    for prefix in [
        "redis     | ",
        "gateway   | ",
        "dispatcher| ",
        "worker-1  | ",
        "worker-2  | ",
    ] {
        assert!(
            stderr.iter().any(|l| l.starts_with(prefix)),
            "no line from {prefix:?}"
        );
    }

    let task_id = run_a_task(&base).await;
    let (status, timeline) = get(&format!("{base}/task/{task_id}")).await;
    assert_eq!(status, 200, "timeline: {timeline}");
    let executor = timeline["executor"].as_str().unwrap_or_default();
    assert!(
        executor.starts_with("worker-1/") || executor.starts_with("worker-2/"),
        "the task names no worker: {timeline}"
    );

    stop_cleanly(up, libc::SIGINT, port).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_with_one_executor_runs_a_task_and_stops_on_sigterm() {
    let port = free_port();
    let up = Up::start(&[
        "--mode",
        "local",
        "--procs",
        "1",
        "--port",
        &port.to_string(),
    ]);
    let summary = up.wait_until_up().await;
    assert!(
        summary.contains("local: the dispatcher runs 1 executor"),
        "{summary}"
    );
    run_a_task(&format!("http://127.0.0.1:{port}")).await;
    stop_cleanly(up, libc::SIGTERM, port).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_server_it_says_in_one_line_how_to_install_it() {
    let empty =
        std::env::temp_dir().join(format!("faas-up-test-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("empty dir");
    let up = Up::start_with(
        &["--port", &free_port().to_string()],
        &[("PATH", empty.to_str().expect("utf-8 path"))],
    );
    let status = up
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("faas up gives up at once");
    let _ = std::fs::remove_dir(&empty);
    assert!(!status.success());
    let stderr = up.stderr.lock().await.all().await.to_vec();
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    let stdout = up.stdout.lock().await.all().await.to_vec();
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(
        stderr[0].contains("apt-get install redis-server"),
        "{stderr:?}"
    );
}

#[test]
fn help_lists_the_subcommand_and_its_options() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_faas"))
            .args(args)
            .output()
            .expect("run faas");
        assert!(out.status.success(), "{args:?}: {}", out.status);
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let top = help(&["--help"]);
    assert!(top.contains("up "), "{top}");
    let up = help(&["up", "--help"]);
    for option in [
        "--mode",
        "--workers",
        "--procs",
        "--port",
        "--redis-url",
        "--worker-port",
        "--auth-token",
        "--python",
    ] {
        assert!(up.contains(option), "no {option} in:\n{up}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_that_dies_is_reported_and_the_rest_are_stopped() {
    let port = free_port();
    let up = Up::start(&[
        "--mode",
        "pull",
        "--workers",
        "1",
        "--procs",
        "1",
        "--port",
        &port.to_string(),
    ]);
    up.wait_until_up().await;
    let family = descendants(up.pid());
    let worker = family
        .iter()
        .copied()
        .find(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("pull_worker"))
        })
        .expect("a pull_worker under faas up");
    worker.kill();
    let status = up
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("faas up exits after a child died");
    assert_eq!(status.code(), Some(1), "faas up exited with {status}");
    up.wait_for_log(|l| l.contains("worker-1 exited unexpectedly (signal: 9"))
        .await;
    let alive: Vec<Pid> = family.iter().copied().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "still running after faas up: {alive:?}");
    assert!(
        up.cluster_dirs().is_empty(),
        "the cluster's directory is left"
    );
}
