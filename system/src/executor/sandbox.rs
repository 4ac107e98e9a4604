//! Where an executor runs: inside a bubblewrap sandbox when this machine can make one, so
//! that users' functions cannot reach the process that started them.
//!
//! In the sandbox an executor has its own PID namespace (it cannot see, signal or trace the
//! dispatcher or worker, nor read their `/proc` entries: environment, command line, memory),
//! its own mount namespace (the host read-only; empty `/tmp`, `/root` and `/home` of its own,
//! which hide the cluster's directory, its secrets and users' files), its own IPC and UTS
//! namespaces, optionally no network, and it dies with its parent. An executor started as
//! root (sandboxed or not) becomes `nobody` before it reads a task (so host files only root may read stay
//! closed to it, and `RLIMIT_NPROC`, which root ignores, bounds fork bombs); the Python
//! environment and runtime are bound back into the hidden directories, readable by anyone.
//!
//! Without bubblewrap (or where it cannot create namespaces), executors run as plain
//! children (as nobody when started as root: never as root); the process says so once, with
//! what to install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::python_env::PythonEnv;

/// Directories the sandbox replaces with empty ones (what is needed is bound back).
const HIDDEN: &[&str] = &["/tmp", "/root", "/home"];

/// The unprivileged user an executor started as root becomes (`nobody`).
pub const NOBODY: u32 = 65534;

/// How executors are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Whether executors may use the network (off: a network namespace with loopback only).
    pub network: bool,
    /// Processes (threads included) the executors' user may have (`RLIMIT_NPROC`).
    pub max_processes: u64,
    /// Directories functions may read and write, at the same paths (data the operator
    /// shares with them); everything else of the host is read-only or hidden.
    pub shared: Vec<PathBuf>,
}

impl Default for SandboxSpec {
    fn default() -> Self {
        Self {
            network: true,
            max_processes: 1024,
            shared: Vec::new(),
        }
    }
}

/// The isolation this machine provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// `bwrap`, tried once and working.
    Bubblewrap(PathBuf),
    /// None: why not, and what to do about it.
    Unavailable(String),
}

impl Isolation {
    /// What this machine provides, found out once per process (and said once in the log).
    pub fn detect() -> &'static Self {
        static FOUND: OnceLock<Isolation> = OnceLock::new();
        FOUND.get_or_init(|| {
            let found = probe();
            match &found {
                Self::Bubblewrap(bwrap) => tracing::info!(
                    bwrap = %bwrap.display(),
                    "executors run sandboxed: own PID, mount and IPC namespaces, as nobody when started as root"
                ),
                Self::Unavailable(why) => {
                    tracing::warn!(
                        "executors are NOT sandboxed: {why}; they share this host's processes and files (as nobody when started as root, so their Python environment must then be readable by nobody)"
                    );
                }
            }
            found
        })
    }
}

fn probe() -> Isolation {
    let Some(bwrap) = crate::cluster::binaries::find_in_path("bwrap") else {
        return Isolation::Unavailable(
            "bubblewrap is not installed (apt-get install bubblewrap)".to_owned(),
        );
    };
    // The flags executors get (bubblewrap 0.5 or later, for --perms), around `true`.
    let env = PythonEnv {
        python: PathBuf::from("true"),
        runtime_dir: PathBuf::from("/"),
        prefixes: Vec::new(),
    };
    let sandboxed = Isolation::Bubblewrap(bwrap.clone());
    let (_, mut args) = command(&sandboxed, &SandboxSpec::default(), &env, &[]);
    let end = args
        .iter()
        .position(|a| a == "--")
        .map_or(args.len(), |i| i + 2);
    args.truncate(end);
    let tried = std::process::Command::new(&bwrap)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    match tried {
        Ok(out) if out.status.success() => Isolation::Bubblewrap(bwrap),
        Ok(out) => Isolation::Unavailable(format!(
            "{} cannot create namespaces here ({}): allow unprivileged user namespaces or run as root",
            bwrap.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Isolation::Unavailable(format!("cannot run {}: {e}", bwrap.display())),
    }
}

/// The program and arguments that start `env`'s executor runtime, with `runtime_args`
/// after the runtime's directory: sandboxed by `isolation` when it can be.
#[must_use]
pub fn command(
    isolation: &Isolation,
    sandbox: &SandboxSpec,
    env: &PythonEnv,
    runtime_args: &[String],
) -> (PathBuf, Vec<OsString>) {
    const BOOT: &str =
        "import sys; sys.path.insert(0, sys.argv[1]); import faas_executor; faas_executor.main()";
    let Isolation::Bubblewrap(bwrap) = isolation else {
        let mut args: Vec<OsString> =
            vec!["-c".into(), BOOT.into(), env.runtime_dir.clone().into()];
        args.extend(runtime_args.iter().map(Into::into));
        return (env.python.clone(), args);
    };
    let mut args: Vec<OsString> = [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        // No controlling terminal to push input into (TIOCSTI).
        "--new-session",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    .iter()
    .map(Into::into)
    .collect();
    for dir in HIDDEN {
        let perms = if *dir == "/tmp" { "1777" } else { "0755" };
        args.extend(["--perms", perms, "--tmpfs", dir].map(OsString::from));
    }
    // Where the cluster's directory is when TMPDIR points elsewhere.
    let temp = std::env::temp_dir();
    if !HIDDEN.iter().any(|h| temp.starts_with(h)) && temp != Path::new("/") {
        args.extend([
            "--perms".into(),
            "1777".into(),
            "--tmpfs".into(),
            temp.into(),
        ]);
    }
    // The working directory, where dill's by-reference functions are imported from: kept
    // when visible or below a hidden directory (bound back), never a whole hidden one.
    let cwd = std::env::current_dir()
        .ok()
        .filter(|dir| !HIDDEN.iter().any(|h| Path::new(h).starts_with(dir)));
    let needed = env
        .prefixes
        .iter()
        .chain([&env.runtime_dir])
        .chain(cwd.as_ref())
        .map(|dir| (dir, "--ro-bind"))
        .chain(sandbox.shared.iter().map(|dir| (dir, "--bind")));
    let mut made = std::collections::HashSet::new();
    for (dir, bind) in needed {
        let hidden = HIDDEN.iter().any(|h| dir.starts_with(h));
        if !hidden && bind == "--ro-bind" {
            continue; // visible already, read-only
        }
        // bwrap would make the directories leading there 0700: unreadable once not root.
        let mut leading: Vec<&Path> = dir.ancestors().skip(1).collect();
        leading.reverse();
        for parent in leading {
            let above = HIDDEN.iter().any(|h| Path::new(h).starts_with(parent));
            if hidden && !above && made.insert(parent.to_path_buf()) {
                args.extend([
                    "--perms".into(),
                    "0755".into(),
                    "--dir".into(),
                    parent.into(),
                ]);
            }
        }
        args.extend([bind.into(), dir.into(), dir.into()]);
    }
    let cwd = cwd.map_or_else(|| OsString::from("/tmp"), PathBuf::into_os_string);
    args.extend(["--chdir".into(), cwd]);
    args.extend(["--setenv", "HOME", "/tmp"].map(OsString::from));
    if !sandbox.network {
        args.push("--unshare-net".into());
    }
    args.extend([
        "--".into(),
        env.python.clone().into(),
        "-c".into(),
        BOOT.into(),
    ]);
    args.push(env.runtime_dir.clone().into());
    args.extend(runtime_args.iter().map(Into::into));
    (bwrap.clone(), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(python: &str, prefixes: &[&str]) -> PythonEnv {
        PythonEnv {
            python: PathBuf::from(python),
            runtime_dir: PathBuf::from("/root/.cache/faas/runtime"),
            prefixes: prefixes.iter().map(PathBuf::from).collect(),
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn without_isolation_python_runs_directly() {
        let none = Isolation::Unavailable("test".into());
        let (program, args) = command(
            &none,
            &SandboxSpec::default(),
            &env("/usr/bin/python3", &["/usr"]),
            &["9".into()],
        );
        assert_eq!(program, PathBuf::from("/usr/bin/python3"));
        let line = joined(&args);
        assert!(line.ends_with("/root/.cache/faas/runtime 9"), "{line}");
    }

    #[test]
    fn the_sandbox_hides_processes_and_private_dirs_and_binds_back_python() {
        let bwrap = Isolation::Bubblewrap(PathBuf::from("/usr/bin/bwrap"));
        let spec = SandboxSpec {
            network: false,
            max_processes: 64,
            shared: vec![
                PathBuf::from("/tmp/shared/data"),
                PathBuf::from("/srv/data"),
            ],
        };
        let venv = "/root/.cache/faas/venv";
        let (program, args) = command(
            &bwrap,
            &spec,
            &env(&format!("{venv}/bin/python"), &[venv, "/usr"]),
            &["9".into()],
        );
        let line = joined(&args);
        assert_eq!(program, PathBuf::from("/usr/bin/bwrap"));
        for part in [
            "--unshare-pid",
            "--die-with-parent",
            "--proc /proc",
            "--perms 1777 --tmpfs /tmp",
            "--perms 0755 --tmpfs /root",
            "--unshare-net",
            "--perms 0755 --dir /root/.cache --perms 0755 --dir /root/.cache/faas --ro-bind",
            &format!("--ro-bind {venv} {venv}"),
            "--ro-bind /root/.cache/faas/runtime /root/.cache/faas/runtime",
            &format!("-- {venv}/bin/python -c"),
            "--perms 0755 --dir /tmp/shared --bind /tmp/shared/data /tmp/shared/data",
            "--bind /srv/data /srv/data",
        ] {
            assert!(line.contains(part), "no {part:?} in {line}");
        }
        // /usr is visible anyway: not bound again.
        assert!(!line.contains("--ro-bind /usr"), "{line}");
        assert!(line.ends_with("/root/.cache/faas/runtime 9"), "{line}");
    }
}
