//! Hostile functions: each attack runs on a one-executor cluster in every mode, and the
//! ordinary tasks after it must get exactly their own results.

mod common;

use std::time::Duration;

use common::{TestSystem, describe};
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

/// Live (not zombie) processes whose command line holds `marker`.
fn processes_marked(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rfind(')')
                .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_forked_child_cannot_answer_for_other_tasks(#[case] mode: &str) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let forks = system
        .register(
            "def forks(x):\n    import os\n    os.fork()\n    return x\n",
            "forks",
        )
        .await;
    let task = system.execute(&forks, "((1,), {})").await;
    let (status, result) = system.wait_final(&task, FINAL).await;
    assert_eq!(
        (status.as_str(), describe(&result).1.as_str()),
        ("COMPLETED", "1")
    );
    ordinary_tasks_get_their_own_results(&system).await;
}

#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn what_a_function_leaves_running_dies_with_its_task(#[case] mode: &str) {
    let system = TestSystem::with_mode(mode, &[1], &[]).await;
    let marker = format!("faas-leftover-{}", uuid::Uuid::new_v4().simple());
    // A plain child, and a daemon that double-forks into a session of its own.
    let src = "def leave(marker):\n    import os, subprocess, sys\n    sleeper = [sys.executable, '-c', 'import time; time.sleep(300)', marker]\n    subprocess.Popen(sleeper)\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            os.execv(sys.executable, sleeper)\n        os._exit(0)\n    return 'left'\n";
    let leave = system.register(src, "leave").await;
    let task = system
        .execute(&leave, &format!("(('{marker}',), {{}})"))
        .await;
    let (status, result) = system.wait_final(&task, FINAL).await;
    assert_eq!(
        (status.as_str(), describe(&result).1.as_str()),
        ("COMPLETED", "left")
    );
    assert_eq!(
        processes_marked(&marker),
        Vec::<i32>::new(),
        "left running after its task"
    );
    ordinary_tasks_get_their_own_results(&system).await;
}

#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn a_600_mb_result_fails_only_its_own_task(#[case] mode: &str) {
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
