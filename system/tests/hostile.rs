//! Hostile functions: each attack runs on a one-executor cluster in every mode, and what it
//! tries must get it nothing: the ordinary tasks after it get exactly their own results, the
//! process that ran it keeps running, and the control plane's secrets and state stay its own.

mod common;

use std::time::Duration;

use common::{TestSystem, describe};
use faas::cluster::{ClusterSpec, MemberId};
use rstest::rstest;

const FINAL: Duration = Duration::from_secs(60);

const IDENT: &str = "def ident(x):\n    return x\n";

/// Runs `ident(2..=6)` one after the other (on the one executor the attack ran on) and
/// checks each gets its own value back.
async fn ordinary_tasks_get_their_own_results(system: &TestSystem) {
    let ident = system.register(IDENT, "ident").await;
    let mut got = Vec::new();
    for i in 2..=6 {
        let task = system.execute(&ident, &format!("(({i},), {{}})")).await;
        let (status, result) = system.wait_final(&task, FINAL).await;
        got.push((status, describe(&result).1));
    }
    let want: Vec<(String, String)> = (2..=6)
        .map(|i| ("COMPLETED".to_owned(), i.to_string()))
        .collect();
    assert_eq!(got, want, "results after the attack");
}

/// Registers the function `name` defined by `src`, runs it on `params` (a Python
/// expression) and waits for its end: its status and its result's `str()`.
async fn run(system: &TestSystem, src: &str, name: &str, params: &str) -> (String, String) {
    let f = system.register(src, name).await;
    let task = system.execute(&f, params).await;
    let (status, result) = system.wait_final(&task, FINAL).await;
    (status, describe(&result).1)
}

/// Live (not zombie) processes whose command line holds `marker`.
fn processes_marked(marker: &str) -> Vec<i32> {
    common::processes(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
    })
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_forked_child_cannot_answer_for_other_tasks(
    #[values("local", "pull", "push")] mode: &str,
) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let src = "def forks(x):\n    import os\n    os.fork()\n    return x\n";
    let (status, result) = run(&system, src, "forks", "((1,), {})").await;
    assert_eq!((status.as_str(), result.as_str()), ("COMPLETED", "1"));
    ordinary_tasks_get_their_own_results(&system).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn what_a_function_leaves_running_dies_with_its_task(
    #[values("local", "pull", "push")] mode: &str,
) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let marker = format!("faas-leftover-{}", uuid::Uuid::new_v4().simple());
    // A plain child, and a daemon that double-forks into a session of its own.
    let src = "def leave(marker):\n    import os, subprocess, sys\n    sleeper = [sys.executable, '-c', 'import time; time.sleep(300)', marker]\n    subprocess.Popen(sleeper)\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            os.execv(sys.executable, sleeper)\n        os._exit(0)\n    return 'left'\n";
    let (status, result) = run(&system, src, "leave", &format!("(('{marker}',), {{}})")).await;
    assert_eq!((status.as_str(), result.as_str()), ("COMPLETED", "left"));
    assert_eq!(
        processes_marked(&marker),
        Vec::<i32>::new(),
        "left running after its task"
    );
    ordinary_tasks_get_their_own_results(&system).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_600_mb_result_fails_only_its_own_task(#[values("local", "pull", "push")] mode: &str) {
    // Each case needs a few GiB while the result is built: one case at a time.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let huge = system
        .register(
            "def huge():\n    return b'x' * (600 * 1024 * 1024)\n",
            "huge",
        )
        .await;
    let task = system.execute(&huge, "((), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(120)).await;
    let described = common::describe_full(&result);
    assert_eq!(
        (status.as_str(), described.kind.as_str()),
        ("FAILED", "WorkerFailure"),
        "{}",
        described.text
    );
    assert!(described.text.contains("byte limit"), "{}", described.text);
    ordinary_tasks_get_their_own_results(&system).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_function_cannot_kill_or_stop_the_process_that_runs_it(
    #[values("local", "pull", "push")] mode: &str,
) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let host = if mode == "local" {
        MemberId::Dispatcher(0)
    } else {
        MemberId::Worker(0)
    };
    for (name, signal) in [("stop", "SIGSTOP"), ("kill", "SIGKILL")] {
        let src = format!(
            "def {name}():\n    import os, signal\n    os.kill(os.getppid(), signal.{signal})\n    return 'sent'\n"
        );
        // Whatever the task got, the process that ran it still runs, and serves.
        run(&system, &src, name, "((), {})").await;
        let member = system
            .cluster
            .member(host)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(member.exited(), None, "{signal} to the parent ended {host}");
        ordinary_tasks_get_their_own_results(&system).await;
    }
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_function_cannot_read_the_control_planes_secrets(
    #[values("local", "pull", "push")] mode: &str,
) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    // Every process it can see: environment and command line; and the cluster's files.
    let src = "def snoop():\n    import glob, os\n    found = []\n    paths = glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline')\n    paths += glob.glob('/tmp/faas-*/**', recursive=True)\n    for path in paths:\n        try:\n            with open(path, 'rb') as f:\n                found.append(f.read().decode('utf-8', 'replace'))\n        except OSError:\n            pass\n    return '\\n'.join(found)\n";
    let (status, seen) = run(&system, src, "snoop", "((), {})").await;
    assert_eq!(status, "COMPLETED");
    let password = redis_password(&system);
    assert!(
        !seen.contains(&password),
        "a function read the Redis password"
    );
    for secret in [
        "FAAS_REDIS_URL",
        "FAAS_CURVE_SECRET_KEY",
        "FAAS_WORKER_KEYS",
    ] {
        assert!(
            !seen.contains(secret),
            "a function read {secret} in the control plane's environment"
        );
    }
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_function_cannot_write_to_redis(#[values("local", "pull", "push")] mode: &str) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let ident = system.register(IDENT, "ident").await;
    let victim = system.execute(&ident, "((7,), {})").await;
    let (status, before) = system.wait_final(&victim, FINAL).await;
    assert_eq!(status, "COMPLETED");
    // The port is no secret: any listening port can be found and tried.
    let port = redis_port(&system);
    let src = "def attack(port, key):\n    import socket\n    replies = []\n    for command in ['HSET %s result x status COMPLETED' % key, 'SET faas:pwned 1']:\n        try:\n            s = socket.create_connection(('127.0.0.1', port), timeout=5)\n            s.sendall(command.encode() + b'\\r\\n')\n            replies.append(s.recv(200).decode())\n            s.close()\n        except OSError as e:\n            replies.append(repr(e))\n    return replies\n";
    let params = format!("(({port}, 'faas:task:{victim}'), {{}})");
    let (status, replies) = run(&system, src, "attack", &params).await;
    assert_eq!(status, "COMPLETED", "{replies}");
    let (_, after) = system.wait_final(&victim, FINAL).await;
    assert_eq!(after, before, "the victim's result changed");
    let mut conn = system.redis().await;
    let pwned: Option<String> = redis::cmd("GET")
        .arg("faas:pwned")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(pwned, None, "a function wrote to Redis: {replies}");
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_is_bounded(#[values("local", "pull", "push")] mode: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the process limit applies to executors started as root");
        return;
    }
    let limit = vec!["--max-processes".to_owned(), "64".to_owned()];
    let system = TestSystem::from_spec(ClusterSpec {
        dispatcher_args: limit.clone(),
        worker_args: limit,
        ..common::spec(common::mode(mode), &[1])
    })
    .await;
    // Bounded itself (so that it cannot take this machine down where nothing stops it): it
    // tries for 500 processes and says how many it got.
    let src = "def bomb():\n    import os, time\n    made = 0\n    try:\n        for _ in range(500):\n            if os.fork() == 0:\n                time.sleep(60)\n                os._exit(0)\n            made += 1\n    except OSError:\n        pass\n    return made\n";
    let (status, made) = run(&system, src, "bomb", "((), {})").await;
    assert_eq!(status, "COMPLETED");
    let made: u32 = made.parse().expect("a count");
    assert!(
        made < 64,
        "a function made {made} processes under a limit of 64"
    );
    ordinary_tasks_get_their_own_results(&system).await;
}

/// The password in the cluster's Redis URL (`redis://:PASSWORD@host:port`).
fn redis_password(system: &TestSystem) -> String {
    let url = system.cluster.redis_url();
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo)
        .expect("a private Redis has a password");
    userinfo.trim_start_matches(':').to_owned()
}

fn redis_port(system: &TestSystem) -> u16 {
    let url = system.cluster.redis_url();
    url.rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .expect("a port in the Redis URL")
}

#[tokio::test(flavor = "multi_thread")]
async fn without_network_a_function_reaches_nothing() {
    let system = TestSystem::with_mode("local", &[1], &["--no-network"]).await;
    let port = redis_port(&system);
    let src = "def reach(port):\n    import socket\n    try:\n        socket.create_connection(('127.0.0.1', port), timeout=5).close()\n        return 'connected'\n    except OSError as e:\n        return 'refused: %s' % e\n";
    let (status, said) = run(&system, src, "reach", &format!("(({port},), {{}})")).await;
    assert_eq!(status, "COMPLETED");
    assert!(said.starts_with("refused"), "{said}");
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_leaves_a_thread_retires_its_executor(
    #[values("local", "pull", "push")] mode: &str,
) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let src = "def linger():\n    import os, threading, time\n    os.faas_tainted = True\n    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n    return 'left a thread'\n";
    assert_eq!(run(&system, src, "linger", "((), {})").await.0, "COMPLETED");
    let check = "def check():\n    import os\n    return hasattr(os, 'faas_tainted')\n";
    let (status, result) = run(&system, check, "check", "((), {})").await;
    assert_eq!(
        (status.as_str(), result.as_str()),
        ("COMPLETED", "False"),
        "the next task ran in the executor the thread was left in"
    );
}
