//! Reference targets measured beside the platform with the same workloads: the floor (in
//! Rust, [`crate::floor`]) and the Python ones (`ProcessPoolExecutor`, a bare ZeroMQ loop,
//! Ray, Celery, Dask), run by `loadgen/python/reference.py` in a process of their own that
//! reports each repetition's latencies as JSON lines (the protocol is in that file).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faas::cluster::{Output, Persistence, RedisServer};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cpu::{self, Probe};
use crate::experiment::{Experiment, Reference};
use crate::floor::Floor;
use crate::functions::{self, Serialized};
use crate::stats::{Run, new_histogram};

const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/reference.py");
/// The peers' own virtualenv (`scripts/peers`).
const PEERS_VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-peers/bin/python");
/// Setting a target up (a Ray or Dask cluster starting) may take this long.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A reference's measured repetitions, each with its CPU µs per task of every component.
pub struct Measured {
    /// What it ran, e.g. `ray 2.60.0`.
    pub version: String,
    pub runs: Vec<(Run, cpu::PerComponent)>,
}

/// Why a reference has no numbers.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Not installed here: the row says so and the experiment goes on.
    #[error("unavailable: {0}")]
    Missing(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs `reference` with the workload of `config` (its repetitions and warm-up included).
pub async fn measure(
    reference: Reference,
    config: &Experiment,
    tasks: u64,
    payloads: &Serialized,
    log_dir: &Path,
) -> Result<Measured, Unavailable> {
    match reference {
        Reference::Floor => Ok(floor(config, tasks, payloads).await?),
        _ => python(reference, config, tasks, log_dir).await,
    }
}

async fn floor(config: &Experiment, tasks: u64, payloads: &Serialized) -> anyhow::Result<Measured> {
    let floor = Arc::new(Floor::start(config.topology.executors, payloads).await?);
    let timeout = Duration::from_secs_f64(config.collect.timeout_s);
    let probe = Probe {
        roots: vec![(cpu::CLIENT, Floor::executor_parent())],
        executor_parents: vec![Floor::executor_parent()],
    };
    if config.warmup_tasks > 0 {
        let warmup = crate::experiment::Load {
            shape: crate::experiment::Shape::Closed,
            rate: None,
            batch_size: 1,
            duration_s: None,
            ..config.load.clone()
        };
        floor
            .run(u64::from(config.warmup_tasks), &warmup, timeout)
            .await;
    }
    let mut runs = Vec::new();
    for _ in 0..config.repetitions {
        let before = probe.sample();
        let run = floor.run(tasks, &config.load, timeout).await;
        let after = probe.sample();
        let per_task = cpu::per_task_us(&before, &after, run.completed + run.failed);
        runs.push((run, per_task));
    }
    let floor = Arc::into_inner(floor).context("floor still in use")?;
    floor.stop().await;
    Ok(Measured {
        version: "the platform's executors, fed directly".to_owned(),
        runs,
    })
}

/// A line of the driver's output.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Ready {
        #[allow(dead_code)]
        ready: bool,
        version: String,
    },
    Rep {
        completed: u64,
        failed: u64,
        lost: u64,
        makespan_s: f64,
        latencies_us: Vec<u64>,
    },
    Unavailable {
        unavailable: String,
    },
}

/// The Python that runs the drivers: the peers' virtualenv when it exists, else the
/// executors' own (which has dill, enough for `process_pool`).
fn interpreter() -> anyhow::Result<PathBuf> {
    let peers = PathBuf::from(PEERS_VENV);
    if peers.exists() {
        return Ok(peers);
    }
    Ok(faas::executor::python_env::resolve(None)?.python)
}

async fn python(
    reference: Reference,
    config: &Experiment,
    tasks: u64,
    log_dir: &Path,
) -> Result<Measured, Unavailable> {
    let interpreter = tokio::task::spawn_blocking(interpreter)
        .await
        .context("resolving Python panicked")??;
    std::fs::create_dir_all(log_dir).context("creating the log directory")?;
    // Celery's broker and result backend: a private Redis of its own.
    let redis = if reference == Reference::Celery {
        Some(
            RedisServer::start(Persistence::None, &Output::Files(log_dir.to_owned()))
                .await
                .context("starting Celery's Redis")?,
        )
    } else {
        None
    };
    let (w, load) = (&config.workload, &config.load);
    let request = serde_json::json!({
        "target": reference.as_str(),
        "function": functions::kind(w.function),
        "sleep_s": w.sleep_s,
        "cpu_n": w.cpu_n,
        "result_bytes": w.result_bytes,
        "arg_bytes": w.arg_bytes,
        "executors": config.topology.executors,
        "shape": load.shape,
        "clients": load.clients,
        "rate": load.rate,
        "batch_size": load.batch_size,
        "tasks": tasks,
        "duration_s": load.duration_s,
        "warmup_tasks": config.warmup_tasks,
        "repetitions": config.repetitions,
        "timeout_s": config.collect.timeout_s,
        "redis_url": redis.as_ref().map(RedisServer::url),
    });
    let stderr = std::fs::File::create(log_dir.join(format!("{}.log", reference.as_str())))
        .context("creating the driver's log")?;
    let mut child = tokio::process::Command::new(&interpreter)
        .arg(DRIVER)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", interpreter.display()))?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let mut stdin = child.stdin.take().context("driver stdin")?;
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .context("writing the request")?;
    drop(stdin);
    let lines = BufReader::new(child.stdout.take().context("driver stdout")?).lines();
    let mut probe = Probe {
        roots: vec![(cpu::CLIENT, pid)],
        executor_parents: vec![pid],
    };
    if let Some(redis) = &redis {
        probe.roots.push((cpu::REDIS, redis.member().pid()));
    }
    let read = read_repetitions(lines, &probe, config).await;
    let status = stop(&mut child, pid).await;
    let (version, runs) = read?;
    if runs.len() != config.repetitions as usize {
        return Err(anyhow::anyhow!(
            "the {} driver exited ({status}) after {} of {} repetitions (see {})",
            reference.as_str(),
            runs.len(),
            config.repetitions,
            log_dir
                .join(format!("{}.log", reference.as_str()))
                .display()
        )
        .into());
    }
    drop(redis);
    Ok(Measured { version, runs })
}

/// Reads the driver's lines until it has reported every repetition (or stops), sampling the
/// CPU of `probe` at its `ready` and after each repetition.
async fn read_repetitions(
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    probe: &Probe,
    config: &Experiment,
) -> Result<(String, Vec<(Run, cpu::PerComponent)>), Unavailable> {
    // A repetition may take its window, and each task its collection timeout, on top.
    let per_line = READY_TIMEOUT
        + Duration::from_secs_f64(config.collect.timeout_s + config.load.duration_s.unwrap_or(0.0));
    let mut version = String::new();
    let mut runs = Vec::new();
    let mut before = probe.sample();
    while runs.len() < config.repetitions as usize {
        let line = tokio::time::timeout(per_line, lines.next_line())
            .await
            .context("the driver stopped answering")?
            .context("reading the driver")?;
        let Some(line) = line else { break };
        let parsed: Line =
            serde_json::from_str(&line).with_context(|| format!("the driver said {line:?}"))?;
        match parsed {
            Line::Unavailable { unavailable } => return Err(Unavailable::Missing(unavailable)),
            Line::Ready { version: v, .. } => {
                version = v;
                before = probe.sample();
            }
            Line::Rep {
                completed,
                failed,
                lost,
                makespan_s,
                latencies_us,
            } => {
                let after = probe.sample();
                let mut latency = new_histogram();
                for us in latencies_us {
                    let _ = latency.record(us.max(1));
                }
                let run = Run {
                    completed,
                    failed,
                    lost,
                    makespan_s,
                    latency,
                    samples: Vec::new(),
                };
                let per_task = cpu::per_task_us(&before, &after, run.completed + run.failed);
                runs.push((run, per_task));
                before = after;
            }
        }
    }
    Ok((version, runs))
}

/// How long a driver may take to shut its target down (a Ray cluster takes seconds).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Asks the driver to stop (SIGTERM, so it shuts its target down), and kills it if it has not
/// within [`SHUTDOWN_GRACE`].
async fn stop(child: &mut tokio::process::Child, pid: i32) -> String {
    if pid > 0 {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => {
            let _ = child.kill().await;
            "killed after the grace period".to_owned()
        }
    }
}
