//! Finding or creating the Python environment executors run in.
//!
//! Either the interpreter the operator names (`--python` / `FAAS_PYTHON`), or a virtualenv
//! this module creates on first use in the cache directory with `system/python/requirements.txt`
//! (dill, numpy, requests, pytest). Creation is serialized with a file lock, so parallel processes build it once.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The executor runtime, shipped inside the binary and written next to the environment.
const RUNTIME_SOURCE: &str = include_str!("../../python/faas_executor.py");
/// What the created environment installs.
const REQUIREMENTS: &str = include_str!("../../python/requirements.txt");

/// A usable Python for executors.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The interpreter to run.
    pub python: PathBuf,
    /// The directory holding `faas_executor.py`, put on the executor's import path.
    pub runtime_dir: PathBuf,
    /// Where the interpreter's files live (`sys.prefix`, `sys.base_prefix`): what a sandbox
    /// must let it read.
    pub prefixes: Vec<PathBuf>,
}

/// Why no usable Python environment could be found or made. Each message is one line that
/// says what to install or set.
#[derive(Debug, thiserror::Error)]
pub enum PythonEnvError {
    #[error(
        "{python} cannot import dill ({detail}); install it with `{python} -m pip install dill` \
         or unset --python/FAAS_PYTHON to let the platform create its own environment"
    )]
    MissingDill { python: String, detail: String },
    #[error(
        "cannot create the Python environment in {dir}: `{base} -m venv` failed ({detail}); \
         install Python 3 with venv (Debian/Ubuntu: apt-get install python3 python3-venv) \
         or point --python/FAAS_PYTHON at a Python 3 that has dill"
    )]
    NoVenv {
        dir: String,
        base: String,
        detail: String,
    },
    #[error(
        "cannot install {requirements} into {dir} ({detail}); check access to PyPI, or point \
         --python/FAAS_PYTHON at a Python 3 that has dill"
    )]
    PipFailed {
        dir: String,
        requirements: String,
        detail: String,
    },
    #[error(
        "{python} cannot say where its files are ({detail}); point --python/FAAS_PYTHON at a working interpreter"
    )]
    NoPrefix { python: String, detail: String },
    #[error("cannot use the cache directory {dir}: {source}; set FAAS_CACHE_DIR to a writable one")]
    CacheDir { dir: String, source: std::io::Error },
}

/// Resolves the executor Python: `explicit` when given, else the cached virtualenv, created
/// now if missing or broken. Blocking; call it before serving or on the blocking pool.
pub fn resolve(explicit: Option<&Path>) -> Result<PythonEnv, PythonEnvError> {
    let cache = cache_dir();
    let runtime_dir = write_runtime(&cache)?;
    let python = match explicit {
        Some(python) => {
            check_imports(python, "import dill").map_err(|detail| PythonEnvError::MissingDill {
                python: python.display().to_string(),
                detail,
            })?;
            python.to_path_buf()
        }
        None => ensure_venv(&cache)?,
    };
    let prefixes = prefixes(&python).map_err(|detail| PythonEnvError::NoPrefix {
        python: python.display().to_string(),
        detail,
    })?;
    Ok(PythonEnv {
        python,
        runtime_dir,
        prefixes,
    })
}

/// `$FAAS_CACHE_DIR`, else `$XDG_CACHE_HOME/faas`, else `~/.cache/faas`.
#[must_use]
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FAAS_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("faas");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("faas")
}

fn cache_error(dir: &Path) -> impl FnOnce(std::io::Error) -> PythonEnvError + '_ {
    move |source| PythonEnvError::CacheDir {
        dir: dir.display().to_string(),
        source,
    }
}

/// Writes the runtime into `cache/runtime/` unless it is already there, atomically (a rename),
/// so concurrent processes never import a half-written file.
fn write_runtime(cache: &Path) -> Result<PathBuf, PythonEnvError> {
    let dir = cache.join("runtime");
    let target = dir.join("faas_executor.py");
    if fs::read_to_string(&target).is_ok_and(|s| s == RUNTIME_SOURCE) {
        return Ok(dir);
    }
    fs::create_dir_all(&dir).map_err(cache_error(&dir))?;
    // Unique per writer: threads of one process may race here too.
    let tmp = dir.join(format!(
        "faas_executor.py.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    fs::write(&tmp, RUNTIME_SOURCE)
        .and_then(|()| fs::rename(&tmp, &target))
        .map_err(cache_error(&dir))?;
    Ok(dir)
}

fn ensure_venv(cache: &Path) -> Result<PathBuf, PythonEnvError> {
    let venv = cache.join("venv");
    let python = venv.join("bin").join("python");
    let probe = "import dill, numpy, requests, pytest";
    if check_imports(&python, probe).is_ok() {
        return Ok(python);
    }
    fs::create_dir_all(cache).map_err(cache_error(cache))?;
    let lock = fs::File::create(cache.join("venv.lock")).map_err(cache_error(cache))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(cache_error(cache)(std::io::Error::last_os_error()));
    }
    // Another process may have built it while we waited for the lock.
    if check_imports(&python, probe).is_ok() {
        return Ok(python);
    }
    tracing::info!(dir = %venv.display(), "creating the executor Python environment (first run)");
    let _ = fs::remove_dir_all(&venv);
    let base = std::env::var("FAAS_BASE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_quietly(Command::new(&base).arg("-m").arg("venv").arg(&venv)).map_err(|detail| {
        PythonEnvError::NoVenv {
            dir: venv.display().to_string(),
            base: base.clone(),
            detail,
        }
    })?;
    let requirements = cache.join("requirements.txt");
    let pip_failed = |detail: String| PythonEnvError::PipFailed {
        dir: venv.display().to_string(),
        requirements: requirements_summary(),
        detail,
    };
    fs::File::create(&requirements)
        .and_then(|mut f| f.write_all(REQUIREMENTS.as_bytes()))
        .map_err(cache_error(cache))?;
    run_quietly(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )
    .map_err(pip_failed)?;
    check_imports(&python, probe).map_err(pip_failed)?;
    tracing::info!(python = %python.display(), "executor Python environment ready");
    Ok(python)
}

fn requirements_summary() -> String {
    REQUIREMENTS
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `python`'s `sys.prefix` and `sys.base_prefix`.
fn prefixes(python: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix)",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("{} while asking for sys.prefix", output.status));
    }
    let mut found: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    found.dedup();
    Ok(found)
}

/// Runs `python -c probe`; the error is the last line Python printed.
fn check_imports(python: &Path, probe: &str) -> Result<(), String> {
    run_quietly(Command::new(python).arg("-c").arg(probe))
}

/// Runs a command to completion, its output captured; the error is one line of why it failed.
fn run_quietly(cmd: &mut Command) -> Result<(), String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error output");
    Err(format!("{}: {}", output.status, last.trim()))
}
