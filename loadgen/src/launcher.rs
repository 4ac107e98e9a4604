//! Brings a whole system up for one topology (a private redis-server unless one is given, the
//! gateway, the dispatcher and its workers), waits until each is ready, and takes it all down
//! again on drop, interrupt included.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::experiment::{Mode, Topology};

/// The system's binaries, found next to loadgen's own.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("where is loadgen?")?;
        let dir = exe
            .parent()
            .context("loadgen has no directory")?
            .to_path_buf();
        for name in [
            "faas-gateway",
            "task_dispatcher",
            "pull_worker",
            "push_worker",
        ] {
            if !dir.join(name).exists() {
                bail!(
                    "{} is missing next to loadgen: build the workspace first (cargo build --release --workspace, which scripts/loadgen does)",
                    dir.join(name).display()
                );
            }
        }
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped; its stderr goes to a log
/// file and is kept in memory so readiness can be awaited.
struct Process {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> anyhow::Result<Self> {
        // Children die with loadgen even if it is killed outright.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let mut log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                let mut kept = sink.lock().expect("log lock");
                if kept.len() < 10_000 {
                    kept.push(line);
                }
            }
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            lines,
        })
    }

    /// Waits for a log line containing `needle`; fails early if the process exits.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .lines
                .lock()
                .expect("log lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                let tail = self
                    .lines
                    .lock()
                    .expect("log lock")
                    .iter()
                    .rev()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>();
                bail!(
                    "{} exited ({status}) before it was ready: {}",
                    self.name,
                    tail.join(" | ")
                );
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running system. Dropping it stops everything it started, workers first.
pub struct System {
    /// The gateway's base URL.
    pub url: String,
    processes: Vec<Process>,
    redis_dir: Option<PathBuf>,
}

impl Drop for System {
    fn drop(&mut self) {
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
        if let Some(dir) = &self.redis_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts everything `topology` needs; blocking (call it off the async threads).
pub fn launch(
    binaries: &Binaries,
    topology: &Topology,
    redis_url: Option<&str>,
    log_dir: &Path,
) -> anyhow::Result<System> {
    std::fs::create_dir_all(log_dir)?;
    let python = faas::executor::python_env::resolve(None)?.python;
    // Processes are pushed in start order and stopped in reverse: workers first, Redis last.
    let mut system = System {
        url: String::new(),
        processes: Vec::new(),
        redis_dir: None,
    };
    let redis_url = match redis_url {
        Some(url) => url.to_owned(),
        None => {
            let port = free_port()?;
            let dir = std::env::temp_dir()
                .join(format!("faas-loadgen-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            system.redis_dir = Some(dir.clone());
            let mut redis = Process::spawn(
                "redis-server",
                Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "yes", "--appendfsync", "everysec", "--dir"])
                    .arg(&dir)
                    .args(["--logfile", ""]),
                log_dir,
            )
            .context("redis-server is needed: install it (apt-get install redis-server) or set redis_url in the experiment")?;
            // redis-server logs to stdout; wait for its port instead.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = redis.child.try_wait()? {
                    bail!("redis-server exited ({status})");
                }
                anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            system.processes.push(redis);
            format!("redis://127.0.0.1:{port}")
        }
    };

    let gateway_port = free_port()?;
    let mut gateway = Process::spawn(
        "gateway",
        Command::new(binaries.path("faas-gateway"))
            .args(["--bind", &format!("127.0.0.1:{gateway_port}")])
            .env("FAAS_REDIS_URL", &redis_url)
            .env("RUST_LOG", "warn,faas=info"),
        log_dir,
    )?;
    gateway.wait_for("gateway listening", Duration::from_secs(30))?;
    system.processes.push(gateway);
    system.url = format!("http://127.0.0.1:{gateway_port}");

    let worker_port = free_port()?;
    let mut dispatcher_cmd = Command::new(binaries.path("task_dispatcher"));
    dispatcher_cmd
        .args(["-m", topology.mode.as_str()])
        .env("FAAS_REDIS_URL", &redis_url)
        .env("FAAS_PYTHON", &python)
        .env("RUST_LOG", "warn,faas=info");
    match topology.mode {
        Mode::Local => dispatcher_cmd.args(["-w", &topology.executors.to_string()]),
        Mode::Pull | Mode::Push => dispatcher_cmd.args(["-p", &worker_port.to_string()]),
    };
    dispatcher_cmd.args(&topology.dispatcher_args);
    let mut dispatcher = Process::spawn("dispatcher", &mut dispatcher_cmd, log_dir)?;
    dispatcher.wait_for("dispatcher running", Duration::from_secs(300))?;
    system.processes.push(dispatcher);

    if topology.mode != Mode::Local {
        let binary = match topology.mode {
            Mode::Pull => binaries.path("pull_worker"),
            _ => binaries.path("push_worker"),
        };
        let mut workers = Vec::new();
        for (i, size) in topology.worker_sizes().into_iter().enumerate() {
            let worker = Process::spawn(
                &format!("worker-{i}"),
                Command::new(&binary)
                    .arg(size.to_string())
                    .arg(format!("tcp://127.0.0.1:{worker_port}"))
                    .args(["--name", &format!("w{i}")])
                    .args(&topology.worker_args)
                    .env("FAAS_PYTHON", &python)
                    .env("RUST_LOG", "warn,faas=info"),
                log_dir,
            )?;
            workers.push(worker);
        }
        for mut worker in workers {
            worker.wait_for("registered with the dispatcher", Duration::from_secs(300))?;
            system.processes.push(worker);
        }
    }
    Ok(system)
}
