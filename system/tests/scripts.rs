//! The repository's scripts keep their contract with users: the main job (`scripts/loadgen`)
//! installs what running the platform needs and no more (no browser), the test command
//! (`scripts/test`) adds what only the tests use.

mod common;

use std::process::Command;

use common::repo_root;

/// The packages `scripts/prerequisites` covers with `args` (and `--list`, which installs
/// nothing).
fn listed(args: &[&str]) -> Vec<String> {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/prerequisites"))
        .args(args)
        .arg("--list")
        .output()
        .expect("run scripts/prerequisites");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The arguments `script` calls `scripts/prerequisites` with.
fn prerequisites_called_by(script: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(script)).expect("read the script");
    let call = text
        .lines()
        .find(|line| line.trim_start().starts_with("scripts/prerequisites"))
        .unwrap_or_else(|| panic!("{script} does not call scripts/prerequisites"));
    call.trim_start()["scripts/prerequisites".len()..]
        .trim()
        .to_owned()
}

#[test]
fn running_needs_no_browser_and_tests_add_theirs() {
    let running = listed(&[]);
    let testing = listed(&["--tests"]);
    for package in [
        "redis-server",
        "python3-venv",
        "libzmq3-dev",
        "bubblewrap",
        "fonts-dejavu-core",
    ] {
        assert!(
            running.iter().any(|p| p == package),
            "running lacks {package}: {running:?}"
        );
    }
    for package in ["chromium", "nftables", "iproute2"] {
        assert!(
            !running.iter().any(|p| p == package),
            "running installs {package}"
        );
        assert!(
            testing.iter().any(|p| p == package),
            "tests lack {package}: {testing:?}"
        );
    }
    assert!(
        running.iter().all(|p| testing.contains(p)),
        "tests need what running needs"
    );
}

#[test]
fn the_main_job_asks_for_running_needs_and_the_tests_for_theirs() {
    assert_eq!(prerequisites_called_by("scripts/loadgen"), "");
    assert_eq!(prerequisites_called_by("scripts/test"), "--tests");
}
