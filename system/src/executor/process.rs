//! One Python executor process: spawned in its own process group, driven over the framed
//! pipe, killed with its whole group on a deadline, a crash or drop.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::Job;
use super::frame::{
    self, FrameError, MAX_FRAME_BYTES, MAX_RESULT_BYTES, Ready, ReplyOutcome, RunReply, RunRequest,
};
use super::python_env::PythonEnv;
use super::sandbox::{self, Isolation, NOBODY, SandboxSpec};
use crate::task::{FunctionId, TaskId, TaskOutcome, now_micros};

/// How long a fresh executor may take to import dill and greet its parent.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables an executor inherits; everything else (Redis URLs, tokens, keys) is
/// withheld from users' code. `PYTHONPATH` is how an operator makes modules importable for
/// functions that dill pickled by reference; the working directory is on the path too.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
];

/// How to start executors.
#[derive(Debug, Clone)]
pub struct ExecutorSpec {
    pub env: PythonEnv,
    /// Address-space limit per executor, in bytes (`RLIMIT_AS`); `None` for no limit.
    pub memory_limit: Option<u64>,
    /// How executors are confined.
    pub sandbox: SandboxSpec,
}

/// Why an executor could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {python}: {source}")]
    Spawn {
        python: String,
        source: std::io::Error,
    },
    #[error("executor did not become ready: {0}")]
    NoGreeting(FrameError),
    #[error("executor did not become ready within {0:?}")]
    Timeout(Duration),
}

/// A running executor.
pub struct ExecutorProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Also its process group id.
    pid: i32,
    /// Functions this executor has been sent; it may have evicted some, in which case it
    /// answers `need_function` and gets the body again.
    cached: HashSet<FunctionId>,
    /// A label for logs: which pool slot this is.
    label: String,
    /// Started through bubblewrap, which exits with 128 + n when the executor dies of
    /// signal n.
    sandboxed: bool,
}

impl ExecutorProcess {
    /// Starts an executor and waits for its greeting.
    pub async fn spawn(spec: &ExecutorSpec, label: String) -> Result<Self, SpawnError> {
        let isolation = Isolation::detect();
        let sandboxed = matches!(isolation, Isolation::Bubblewrap(_));
        // An executor never runs users' code as root: started as root (sandboxed or not) it
        // becomes nobody, and only then does RLIMIT_NPROC apply, since root ignores it.
        // SAFETY: geteuid cannot fail and has no side effects.
        let become_nobody = unsafe { libc::geteuid() } == 0;
        // What faas_executor.main() takes: the result limit, the uid to become, and whether it
        // has a PID namespace of its own (then it kills every process it may after a task).
        let runtime_args = [
            MAX_RESULT_BYTES.to_string(),
            if become_nobody {
                NOBODY.to_string()
            } else {
                String::new()
            },
            if sandboxed { "sandboxed" } else { "plain" }.to_owned(),
        ];
        let (program, args) = sandbox::command(isolation, &spec.sandbox, &spec.env, &runtime_args);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(
                INHERITED_ENV
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let memory_limit = spec.memory_limit;
        let max_processes = become_nobody.then_some(spec.sandbox.max_processes);
        // SAFETY: only async-signal-safe calls (prctl, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the parent, even when it is killed with SIGKILL.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for (resource, limit) in [
                    (libc::RLIMIT_AS, memory_limit),
                    (libc::RLIMIT_NPROC, max_processes),
                ] {
                    if let Some(value) = limit {
                        let limit = libc::rlimit {
                            rlim_cur: value,
                            rlim_max: value,
                        };
                        if libc::setrlimit(resource, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
            python: spec.env.python.display().to_string(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_output(stderr, label.clone()));
        }
        let greeting = tokio::time::timeout(
            STARTUP_TIMEOUT,
            frame::read_message::<_, Ready>(&mut stdout),
        )
        .await;
        let mut process = Self {
            child,
            stdin,
            stdout,
            pid,
            cached: HashSet::new(),
            label,
            sandboxed,
        };
        match greeting {
            Ok(Ok(ready)) if ready.ready => {
                tracing::debug!(executor = %process.label, pid, python = %ready.python, dill = %ready.dill, "executor ready");
                Ok(process)
            }
            Ok(Ok(_)) => {
                process.kill().await;
                Err(SpawnError::NoGreeting(FrameError::Closed))
            }
            Ok(Err(e)) => {
                process.kill().await;
                Err(SpawnError::NoGreeting(e))
            }
            Err(_) => {
                process.kill().await;
                Err(SpawnError::Timeout(STARTUP_TIMEOUT))
            }
        }
    }

    /// Runs one job to its end. After anything but a normal reply the process is dead (or
    /// killed here) and must be replaced; [`Run::executor_lost`] says so.
    pub async fn run(&mut self, job: &Job, deadline: Option<Duration>) -> Run {
        let work = self.exchange(job);
        let reply = match deadline {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(reply) => reply,
                Err(_) => {
                    self.kill().await;
                    return Run::lost(deadline_exceeded(job.task_id, limit));
                }
            },
            None => work.await,
        };
        match reply {
            Ok(reply) => Run {
                outcome: match reply.outcome {
                    ReplyOutcome::Completed => {
                        TaskOutcome::Completed(reply.result.unwrap_or_default())
                    }
                    ReplyOutcome::TooLarge => TaskOutcome::WorkerFailure(format!(
                        "task {} returned a result of {} bytes (serialized, base64), more than \
                         the {MAX_RESULT_BYTES}-byte limit",
                        job.task_id,
                        reply.size.unwrap_or_default()
                    )),
                    ReplyOutcome::Raised | ReplyOutcome::NeedFunction => {
                        TaskOutcome::Raised(reply.result.unwrap_or_default())
                    }
                },
                started_at: Some(reply.started_at),
                finished_at: reply.finished_at,
                executor_lost: reply.retire,
            },
            Err(ExchangeError::OtherTask(other)) => {
                tracing::warn!(executor = %self.label, task_id = %job.task_id, answered = %other, "an executor answered for another task; killing it");
                self.kill().await;
                Run::lost(TaskOutcome::WorkerFailure(format!(
                    "the executor running task {} answered for another task ({other}) and was \
                     killed",
                    job.task_id
                )))
            }
            Err(ExchangeError::Frame(FrameError::TooLarge(size))) => {
                self.kill().await;
                Run::lost(TaskOutcome::WorkerFailure(format!(
                    "the executor running task {} sent a message of {size} bytes, more than \
                     the {MAX_FRAME_BYTES}-byte limit, and was killed",
                    job.task_id
                )))
            }
            Err(ExchangeError::Frame(e)) => {
                let cause = self.death_cause(&e).await;
                Run::lost(TaskOutcome::WorkerFailure(format!(
                    "the executor running task {} died: {cause}",
                    job.task_id
                )))
            }
        }
    }

    /// Sends the job, resending it with the function body if the executor asks for it. An
    /// answer must name the job's task: any other (a stale answer left by a process the
    /// function forked) means the pipe can no longer be trusted.
    async fn exchange(&mut self, job: &Job) -> Result<RunReply, ExchangeError> {
        let mut send_body = !self.cached.contains(&job.function_id);
        loop {
            let request = RunRequest {
                task_id: job.task_id,
                function_id: job.function_id,
                function: send_body.then_some(&*job.function),
                params: &job.params,
            };
            frame::write_message(&mut self.stdin, &request).await?;
            let reply: RunReply = frame::read_message(&mut self.stdout).await?;
            if reply.task_id != job.task_id {
                return Err(ExchangeError::OtherTask(reply.task_id));
            }
            if reply.outcome == ReplyOutcome::NeedFunction && !send_body {
                send_body = true;
                continue;
            }
            self.cached.insert(job.function_id);
            return Ok(reply);
        }
    }

    /// Why the executor stopped answering, for the `WorkerFailure` message.
    async fn death_cause(&mut self, error: &FrameError) -> String {
        use std::os::unix::process::ExitStatusExt;
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        self.kill().await;
        match status {
            Ok(Ok(s)) => match (s.code(), s.signal()) {
                (Some(code), _) if self.sandboxed && code > 128 => {
                    let sig = code - 128;
                    format!("it was killed by signal {sig} ({})", signal_name(sig))
                }
                (Some(code), _) => format!("it exited with status {code}"),
                (None, Some(sig)) => {
                    format!("it was killed by signal {sig} ({})", signal_name(sig))
                }
                _ => s.to_string(),
            },
            _ => error.to_string(),
        }
    }

    /// Kills the executor and everything it started (its process group), and reaps it.
    pub async fn kill(&mut self) {
        if self.pid > 0 {
            // SAFETY: signalling a process group we created; ESRCH when already gone is fine.
            unsafe {
                libc::killpg(self.pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill().await;
    }
}

impl Drop for ExecutorProcess {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: as in `kill`; the child itself is reaped by tokio's orphan queue.
            unsafe {
                libc::killpg(self.pid, libc::SIGKILL);
            }
        }
    }
}

/// Why an exchange with an executor failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// The pipe broke, or carried something that is not a message (or too long a one).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An answer naming another task.
    #[error("the executor answered for another task ({0})")]
    OtherTask(TaskId),
}

/// The end of one job on an executor.
#[derive(Debug)]
pub struct Run {
    pub outcome: TaskOutcome,
    /// When Python began the task (µs), if it got that far.
    pub started_at: Option<u64>,
    pub finished_at: u64,
    /// The executor is gone and must be respawned.
    pub executor_lost: bool,
}

impl Run {
    /// An end after which the executor must be replaced.
    pub(super) fn lost(outcome: TaskOutcome) -> Self {
        Self {
            outcome,
            started_at: None,
            finished_at: now_micros(),
            executor_lost: true,
        }
    }
}

/// How a task past its deadline on an executor fails.
pub(super) fn deadline_exceeded(task: TaskId, limit: Duration) -> TaskOutcome {
    TaskOutcome::WorkerFailure(format!(
        "task {task} exceeded its deadline of {} and its executor was killed",
        humanize(limit)
    ))
}

/// Forwards what users' code prints (and Python's own crash reports) to the log, a chunk at a
/// time so a flood or a line without end never grows memory.
async fn forward_output(mut stderr: tokio::process::ChildStderr, label: String) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                for line in text.lines().filter(|l| !l.is_empty()) {
                    tracing::debug!(target: "faas::executor::output", executor = %label, "{line}");
                }
            }
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL, often the out-of-memory killer",
        libc::SIGSEGV => "SIGSEGV, a segmentation fault",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// `5s`, `1.5s`, `250ms`: how deadlines read in messages.
fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}
