//! `faas up` end to end: the real binary brings a cluster up, runs a task through the REST
//! API, and takes everything down again on SIGINT/SIGTERM, leaving no process behind.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A running `faas up`. Dropping it kills it and everything it started, even when the test
/// failed halfway.
struct Up {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_faas"))
            .arg("up")
            .args(args)
            .current_dir(common::repo_root())
            .env("FAAS_PYTHON", common::python())
            .env_remove("FAAS_REDIS_URL")
            .env_remove("FAAS_AUTH_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start faas up");
        let collect = |reader: Box<dyn std::io::Read + Send>, echo: bool| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("[faas up] {line}");
                    }
                    sink.lock().expect("lines").push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout")), false);
        let stderr = collect(Box::new(child.stderr.take().expect("stderr")), true);
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits")
    }

    /// Waits for the summary on stdout (printed once everything is ready); its text.
    fn wait_until_up(&mut self) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            {
                let out = self.stdout.lock().expect("lines");
                if let Some(end) = out.iter().position(|l| l.starts_with("Press Ctrl-C")) {
                    return out[..=end].join("\n");
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("faas up exited ({status}) before it was up");
            }
            assert!(
                Instant::now() < deadline,
                "faas up not up within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lines").clone()
    }

    /// The private Redis directories of this faas up still on disk.
    fn redis_dirs(&self) -> Vec<std::path::PathBuf> {
        let prefix = format!("faas-up-{}-", self.pid());
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
        if let Ok(None) = self.child.try_wait() {
            let family = descendants(self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
            for p in family {
                p.kill();
            }
            for dir in self.redis_dirs() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
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
fn stop_cleanly(mut up: Up, signal: i32, port: u16) {
    let family = descendants(up.pid());
    assert!(
        family.len() >= 4,
        "expected redis, the gateway, the dispatcher and more under faas up: {family:?}"
    );
    up.signal(signal);
    let status = up
        .wait_exit(Duration::from_secs(20))
        .expect("faas up exits within 20 s of the signal");
    assert!(status.success(), "faas up exited with {status}");
    let alive: Vec<Pid> = family.iter().copied().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "still running after faas up: {alive:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the gateway port is still open"
    );
    assert!(
        up.redis_dirs().is_empty(),
        "the private Redis directory is left: {:?}",
        up.redis_dirs()
    );
    let stderr = up.stderr_lines();
    assert!(
        stderr.iter().any(|l| l.contains("all stopped")),
        "no 'all stopped' in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_mode_with_two_workers_runs_a_task_and_stops_on_sigint() {
    let port = free_port();
    let port_arg = port.to_string();
    let mut up = Up::start(&[
        "--mode",
        "push",
        "--workers",
        "2",
        "--procs",
        "2",
        "--port",
        &port_arg,
    ]);
    let summary = up.wait_until_up();
    let base = format!("http://127.0.0.1:{port}");
    assert!(summary.contains(&base), "{summary}");
    assert!(
        summary.contains("push: 2 workers × 2 executors"),
        "{summary}"
    );
    assert!(summary.contains("redis://127.0.0.1:"), "{summary}");
    assert!(
        summary.contains(&format!("curl {base}/health")),
        "{summary}"
    );
    let stderr = up.stderr_lines();
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

    stop_cleanly(up, libc::SIGINT, port);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_with_one_executor_runs_a_task_and_stops_on_sigterm() {
    let port = free_port();
    let mut up = Up::start(&[
        "--mode",
        "local",
        "--procs",
        "1",
        "--port",
        &port.to_string(),
    ]);
    let summary = up.wait_until_up();
    assert!(
        summary.contains("local: the dispatcher runs 1 executor"),
        "{summary}"
    );
    run_a_task(&format!("http://127.0.0.1:{port}")).await;
    stop_cleanly(up, libc::SIGTERM, port);
}

#[test]
fn without_redis_server_it_says_in_one_line_how_to_install_it() {
    let empty =
        std::env::temp_dir().join(format!("faas-up-test-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("empty dir");
    let mut up = Up::start_with(
        &["--port", &free_port().to_string()],
        &[("PATH", empty.to_str().expect("utf-8 path"))],
    );
    let status = up
        .wait_exit(Duration::from_secs(20))
        .expect("faas up gives up at once");
    let _ = std::fs::remove_dir(&empty);
    assert!(!status.success());
    // The reader thread may still be taking the last line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.stderr_lines().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let stderr = up.stderr_lines();
    assert_eq!(stderr.len(), 1, "{stderr:?}");
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

#[test]
fn a_child_that_dies_is_reported_and_the_rest_are_stopped() {
    let port = free_port();
    let mut up = Up::start(&[
        "--mode",
        "pull",
        "--workers",
        "1",
        "--procs",
        "1",
        "--port",
        &port.to_string(),
    ]);
    up.wait_until_up();
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
        .expect("faas up exits after a child died");
    assert_eq!(status.code(), Some(1), "faas up exited with {status}");
    let stderr = up.stderr_lines();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("worker-1 exited unexpectedly (signal: 9")),
        "the dead worker is not named"
    );
    let alive: Vec<Pid> = family.iter().copied().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "still running after faas up: {alive:?}");
    assert!(
        up.redis_dirs().is_empty(),
        "the private Redis directory is left"
    );
}
