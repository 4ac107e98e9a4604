//! Runs the Python conformance suite (`tests/` at the repository root) against a system this
//! test starts, in each dispatch mode, the way external clients drive it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{TestSystem, repo_root};
use rstest::rstest;

/// The Python with pytest, requests and dill that `scripts/test` creates in `.venv`.
fn test_python() -> PathBuf {
    let python = std::env::var_os("FAAS_TEST_PYTHON")
        .map_or_else(|| repo_root().join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which creates it, or set FAAS_TEST_PYTHON",
        python.display()
    );
    python
}

/// Runs the pytest suite at `path` (relative to the repository) against a `mode` system.
async fn pytest_passes(mode: &str, path: &str) {
    let system = TestSystem::with_mode(mode, &[2, 2], &["--task-timeout", "3"]).await;
    let out = Command::new(test_python())
        .args(["-m", "pytest", path, "-q", "-p", "no:cacheprovider"])
        .current_dir(repo_root())
        .env("FAAS_URL", &system.url)
        .env("FAAS_TASK_TIMEOUT", "3")
        .env("PYTHONPATH", repo_root().join("python"))
        .output()
        .expect("run pytest");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{mode} mode:\n{report}");
    assert!(
        out.status.success(),
        "conformance suite failed in {mode} mode:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains(" skipped"),
        "tests were skipped:\n{report}"
    );
}

/// The conformance suite, two workers of two executors each (local mode: one pool of four).
#[rstest]
#[case::local("local")]
#[case::pull("pull")]
#[case::push("push")]
#[tokio::test(flavor = "multi_thread")]
async fn python_conformance_suite_passes(#[case] mode: &str) {
    pytest_passes(mode, "tests").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_client_package_works_against_push_mode() {
    pytest_passes("push", "python/tests").await;
}
