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
    /// What starting the executor hosts needs, until they are started.
    held: Option<Held>,
}

/// Executor hosts not started yet (`topology.start_after_submission`).
struct Held {
    binaries: Binaries,
    topology: Topology,
    redis_url: String,
    python: PathBuf,
    worker_port: u16,
    log_dir: PathBuf,
}

/// Peak resident memory of the system's own processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub gateway_peak_mb: f64,
    pub dispatcher_peak_mb: f64,
}

impl System {
    /// Starts the executor hosts if they were held back; blocking (call it off the async
    /// threads, but not from a blocking-pool thread: see the runner).
    pub fn start_executors(&mut self) -> anyhow::Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let t = &held.topology;
        if t.mode == Mode::Local {
            self.start_dispatcher(&held)
        } else {
            self.start_workers(&held)
        }
    }

    /// Peak resident memory (VmHWM) so far of the gateway and the dispatcher, in MB.
    #[must_use]
    pub fn memory(&self) -> Memory {
        let peak = |name: &str| {
            self.processes
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| peak_rss_kb(p.child.id()))
                .map_or(0.0, |kb| kb as f64 / 1024.0)
        };
        Memory {
            gateway_peak_mb: peak("gateway"),
            dispatcher_peak_mb: peak("dispatcher"),
        }
    }

    fn start_dispatcher(&mut self, held: &Held) -> anyhow::Result<()> {
        let t = &held.topology;
        let mut cmd = Command::new(held.binaries.path("task_dispatcher"));
        cmd.args(["-m", t.mode.as_str()])
            .env("FAAS_REDIS_URL", &held.redis_url)
            .env("FAAS_PYTHON", &held.python)
            .env("RUST_LOG", "warn,faas=info");
        match t.mode {
            Mode::Local => cmd.args(["-w", &t.executors.to_string()]),
            Mode::Pull | Mode::Push => cmd.args(["-p", &held.worker_port.to_string()]),
        };
        cmd.args(&t.dispatcher_args);
        let mut dispatcher = Process::spawn("dispatcher", &mut cmd, &held.log_dir)?;
        dispatcher.wait_for("dispatcher running", Duration::from_secs(300))?;
        self.processes.push(dispatcher);
        Ok(())
    }

    fn start_workers(&mut self, held: &Held) -> anyhow::Result<()> {
        let t = &held.topology;
        let binary = match t.mode {
            Mode::Pull => held.binaries.path("pull_worker"),
            _ => held.binaries.path("push_worker"),
        };
        let mut workers = Vec::new();
        for (i, size) in t.worker_sizes().into_iter().enumerate() {
            let worker = Process::spawn(
                &format!("worker-{i}"),
                Command::new(&binary)
                    .arg(size.to_string())
                    .arg(format!("tcp://127.0.0.1:{}", held.worker_port))
                    .args(["--name", &format!("w{i}")])
                    .args(&t.worker_args)
                    .env("FAAS_PYTHON", &held.python)
                    .env("RUST_LOG", "warn,faas=info"),
                &held.log_dir,
            )?;
            workers.push(worker);
        }
        for mut worker in workers {
            worker.wait_for("registered with the dispatcher", Duration::from_secs(300))?;
            self.processes.push(worker);
        }
        Ok(())
    }
}

/// A process's peak resident set size in kB, from `/proc/<pid>/status`.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

/// Starts everything `topology` needs (the executor hosts later, if it says so); blocking
/// (call it off the async threads).
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
        held: None,
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

    let held = Held {
        binaries: binaries.clone(),
        topology: topology.clone(),
        redis_url,
        python,
        worker_port: free_port()?,
        log_dir: log_dir.to_owned(),
    };
    if topology.mode != Mode::Local {
        system.start_dispatcher(&held)?;
    }
    system.held = Some(held);
    if !topology.start_after_submission {
        system.start_executors()?;
    }
    Ok(system)
}
