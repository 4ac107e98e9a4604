//! Experiments as data: the TOML schema, its validation, and the expansion of sweeps into
//! configuration points.
//!
//! A file describes one base configuration and any number of `[[sweep]]` tables, each varying
//! one dotted parameter (`topology.executors`, `load.rate`, ...) over a list of values; the
//! points are the cartesian product, in file order. Unknown fields are errors that name the
//! line, so a typo never silently runs the default.

pub use faas::dispatcher::Mode;
use serde::{Deserialize, Serialize};

/// Why an experiment file cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("sweep over {param:?}: {reason}")]
    Sweep { param: String, reason: String },
    #[error("point {point} ({params}): {reason}")]
    Invalid {
        point: usize,
        params: String,
        reason: String,
    },
}

/// One experiment file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Use this Redis instead of starting a private one.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Times each point is measured; every figure is reported as the mean over them with a
    /// 95% confidence interval, median, min and max.
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    /// Run the platform's own processes under callgrind and report instructions per task
    /// (slow: for small experiments that must tell small changes apart).
    #[serde(default)]
    pub instructions: bool,
    /// Targets measured beside the platform with the same workloads, one row per distinct
    /// (executors, workload, load) of the points: the floor and the peers.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Tasks run (and not measured) after the system comes up, before each point.
    #[serde(default)]
    pub warmup_tasks: u32,
    /// Charts `loadgen plot` draws (see [`Chart`]).
    #[serde(default)]
    pub charts: Vec<Chart>,
    pub topology: Topology,
    pub workload: Workload,
    pub load: Load,
    #[serde(default)]
    pub collect: Collect,
    #[serde(default)]
    pub sweep: Vec<Sweep>,
}

fn one() -> u32 {
    1
}

fn default_repetitions() -> u32 {
    3
}

/// Something other than this platform, run with the same workload for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The platform's own Python executors fed directly by loadgen: no HTTP, Redis or
    /// dispatcher; what the hardware does with no service around the executors.
    Floor,
    /// Python's `concurrent.futures.ProcessPoolExecutor`.
    ProcessPool,
    /// A bare Python ZeroMQ + dill loop to worker processes.
    Zmq,
    Ray,
    /// Celery with a Redis broker and result backend.
    Celery,
    /// Dask distributed, a local cluster of single-threaded worker processes.
    Dask,
}

impl Reference {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::ProcessPool => "process_pool",
            Self::Zmq => "zmq",
            Self::Ray => "ray",
            Self::Celery => "celery",
            Self::Dask => "dask",
        }
    }
}

/// A chart `loadgen plot` draws from a run directory, as `<name>.svg` and `<name>.png`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    /// Weak scaling against executors (log scale), one panel per function kind: sleep tasks'
    /// efficiency with the ideal at 1, other kinds' throughput; one line per system
    /// (references dashed), 95% CI error bars, the machine's core count marked.
    Efficiency,
    /// Round-trip latency CDFs (log scale), one line per point, at most six per panel (split
    /// by a swept parameter or by system when there are more), legend in natural order.
    LatencyCdf,
    /// Achieved against offered throughput per system with the achieved = offered diagonal,
    /// and p99 latency against offered load (open loop).
    Throughput,
    /// Peak resident memory of the gateway and the dispatcher, grouped bars per system.
    Memory,
    /// Throughput per system as bars with CI error bars, each labelled with its ratio to the
    /// `floor` reference (experiments with one point per system, e.g. batch).
    Systems,
    /// Throughput and dispatcher CPU time per task against executors (or workers) per
    /// system.
    Envelope,
}

/// What runs: the dispatch mode and how many executors, spread over how many workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub mode: Mode,
    /// Executors in all. Local mode: one pool of this many. Pull and push: spread over
    /// workers of at most `max_executors_per_worker` each.
    pub executors: u32,
    #[serde(default = "default_per_worker")]
    pub max_executors_per_worker: u32,
    /// Extra `task_dispatcher` flags, e.g. `["--prefetch", "2"]`.
    #[serde(default)]
    pub dispatcher_args: Vec<String>,
    /// Extra worker flags.
    #[serde(default)]
    pub worker_args: Vec<String>,
    /// Start the executor hosts (local: the dispatcher; pull and push: the workers) only once
    /// every task of the first run is submitted, so the whole workload waits in the queue
    /// first (the memory study).
    #[serde(default)]
    pub start_after_submission: bool,
}

fn default_per_worker() -> u32 {
    8
}

impl Topology {
    /// Executors of each worker process (pull and push), as even as possible.
    #[must_use]
    pub fn worker_sizes(&self) -> Vec<u32> {
        let per = self.max_executors_per_worker.max(1);
        let workers = self.executors.div_ceil(per).max(1);
        (0..workers)
            .map(|i| self.executors / workers + u32::from(i < self.executors % workers))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Returns `None`.
    Noop,
    /// Sleeps `sleep_s` seconds.
    Sleep,
    /// Sums `range(cpu_n)`.
    Cpu,
    /// Returns a `result_bytes`-long bytes object.
    Payload,
}

/// What each task does and how many there are.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub function: Function,
    #[serde(default)]
    pub sleep_s: f64,
    #[serde(default)]
    pub cpu_n: u64,
    #[serde(default)]
    pub result_bytes: u64,
    /// Size of the bytes argument every task carries.
    #[serde(default)]
    pub arg_bytes: u64,
    /// Tasks per point; or give `tasks_per_executor` (weak scaling).
    #[serde(default)]
    pub tasks: Option<u64>,
    #[serde(default)]
    pub tasks_per_executor: Option<u64>,
}

/// How tasks are offered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub shape: Shape,
    /// Concurrent clients (closed loop and burst).
    #[serde(default = "default_clients")]
    pub clients: u32,
    /// Offered tasks per second (open loop).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Burst only: tasks per submission request (`POST /execute_batch` when above 1).
    #[serde(default = "one")]
    pub batch_size: u32,
    /// Closed and open loops: measure a window of this many seconds instead of a task count
    /// (open: `rate × duration_s` tasks; closed: as many as fit). Each repetition's window
    /// starts at once, so the point's warm-up is what keeps start-up out of it.
    #[serde(default)]
    pub duration_s: Option<f64>,
}

fn default_clients() -> u32 {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Submit every task as fast as `clients` can, then collect: the makespan is the figure.
    Burst,
    /// `clients` loops of submit-then-wait.
    Closed,
    /// Submissions at `rate` per second on a fixed schedule; latency counts from the scheduled
    /// send, so a slow system cannot hide queueing (no coordinated omission).
    Open,
}

/// How results are collected.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    pub method: CollectMethod,
    /// Poll interval (plain polling), milliseconds.
    #[serde(default = "default_interval")]
    pub interval_ms: f64,
    /// A task not final this long after its submission counts as lost.
    #[serde(default = "default_task_timeout")]
    pub timeout_s: f64,
    /// Fastest method: how long the collector gathers tasks submitted one by one before
    /// following them with one `POST /results` stream (0: whatever has arrived together).
    #[serde(default)]
    pub window_ms: f64,
}

fn default_interval() -> f64 {
    10.0
}

fn default_task_timeout() -> f64 {
    120.0
}

impl Default for Collect {
    fn default() -> Self {
        Self {
            method: CollectMethod::Fastest,
            interval_ms: default_interval(),
            timeout_s: default_task_timeout(),
            window_ms: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectMethod {
    /// `GET /result/{id}` every `interval_ms`, as a naive client does.
    Poll,
    /// The fastest way the API offers: the long-polling `GET /result/{id}?wait=` for a
    /// client with one task at a time, otherwise `POST /results` streams for whatever tasks
    /// are waiting together.
    Fastest,
}

/// One swept parameter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Dotted path into the configuration, e.g. `topology.executors`.
    pub param: String,
    pub values: Vec<toml::Value>,
}

/// One configuration to measure: the swept values that made it, and the full configuration.
#[derive(Debug, Clone)]
pub struct Point {
    pub index: usize,
    /// `(param, value)` for each sweep, in file order.
    pub params: Vec<(String, String)>,
    pub config: Experiment,
}

impl Point {
    /// The number of tasks measured at this point: 0 for a closed loop bounded by duration
    /// (as many as fit).
    #[must_use]
    pub fn tasks(&self) -> u64 {
        let (w, load) = (&self.config.workload, &self.config.load);
        match (load.duration_s, load.rate) {
            (Some(d), Some(rate)) => (d * rate).ceil() as u64,
            (Some(_), None) => 0,
            (None, _) => w.tasks.unwrap_or_else(|| {
                w.tasks_per_executor.unwrap_or(1) * u64::from(self.config.topology.executors)
            }),
        }
    }

    /// A short label, e.g. `mode=push executors=4`.
    #[must_use]
    pub fn label(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Experiment {
    /// Reads and checks a file (every point is validated up front).
    pub fn load(path: &std::path::Path) -> Result<(Self, Vec<Point>), ExperimentError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text, &display)
    }

    /// Parses `text` (named `origin` in errors) and expands its sweeps.
    pub fn parse(text: &str, origin: &str) -> Result<(Self, Vec<Point>), ExperimentError> {
        let parse_error = |source| ExperimentError::Parse {
            path: origin.to_owned(),
            source,
        };
        let base: Self = toml::from_str(text).map_err(parse_error)?;
        let raw: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let points = expand(&base, &raw)?;
        Ok((base, points))
    }

    fn validate(&self) -> Result<(), String> {
        let w = &self.workload;
        let t = &self.topology;
        if t.executors == 0 {
            return Err("topology.executors must be at least 1".into());
        }
        let bounds = [
            w.tasks.is_some(),
            w.tasks_per_executor.is_some(),
            self.load.duration_s.is_some(),
        ];
        if bounds.iter().filter(|b| **b).count() != 1 {
            return Err(
                "give exactly one of workload.tasks, workload.tasks_per_executor and load.duration_s"
                    .into(),
            );
        }
        if let Some(d) = self.load.duration_s
            && !(d > 0.0 && d.is_finite() && self.load.shape != Shape::Burst)
        {
            return Err(
                "load.duration_s must be a positive number of seconds, and only with shape = \"closed\" or \"open\""
                    .into(),
            );
        }
        if w.function == Function::Sleep && !(w.sleep_s > 0.0 && w.sleep_s.is_finite()) {
            return Err(
                "workload.sleep_s must be a positive number of seconds for function = \"sleep\""
                    .into(),
            );
        }
        if w.function == Function::Cpu && w.cpu_n == 0 {
            return Err("workload.cpu_n must be set for function = \"cpu\"".into());
        }
        if self.load.clients == 0 {
            return Err("load.clients must be at least 1".into());
        }
        match (self.load.shape, self.load.rate) {
            (Shape::Open, Some(r)) if r > 0.0 && r.is_finite() => {}
            (Shape::Open, _) => {
                return Err("load.rate (tasks/s > 0) is required for shape = \"open\"".into());
            }
            (_, Some(_)) => return Err("load.rate only applies to shape = \"open\"".into()),
            _ => {}
        }
        if self.load.batch_size == 0
            || (self.load.batch_size > 1 && self.load.shape != Shape::Burst)
        {
            return Err(
                "load.batch_size must be at least 1, and above 1 only with shape = \"burst\""
                    .into(),
            );
        }
        if self.repetitions == 0 {
            return Err("repetitions must be at least 1".into());
        }
        if t.start_after_submission && (self.load.shape != Shape::Burst || self.warmup_tasks > 0) {
            return Err(
                "topology.start_after_submission needs shape = \"burst\" and warmup_tasks = 0"
                    .into(),
            );
        }
        if !(self.collect.interval_ms >= 0.0
            && self.collect.timeout_s > 0.0
            && self.collect.window_ms >= 0.0
            && self.collect.window_ms.is_finite())
        {
            return Err(
                "collect.interval_ms and collect.window_ms must be >= 0 and collect.timeout_s > 0"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The cartesian product of the sweeps over `raw` (the file as a table), each point
/// deserialized and validated.
fn expand(base: &Experiment, raw: &toml::Table) -> Result<Vec<Point>, ExperimentError> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for sweep in &base.sweep {
        if sweep.values.is_empty() {
            return Err(ExperimentError::Sweep {
                param: sweep.param.clone(),
                reason: "no values".into(),
            });
        }
        if sweep.param.starts_with("sweep") {
            return Err(ExperimentError::Sweep {
                param: sweep.param.clone(),
                reason: "a sweep cannot sweep sweeps".into(),
            });
        }
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                sweep.values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.push((sweep.param.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .enumerate()
        .map(|(index, combo)| {
            let mut table = raw.clone();
            table.remove("sweep");
            for (param, value) in &combo {
                set_path(&mut table, param, value.clone()).map_err(|reason| {
                    ExperimentError::Sweep {
                        param: param.clone(),
                        reason,
                    }
                })?;
            }
            let params: Vec<(String, String)> = combo
                .iter()
                .map(|(k, v)| (k.clone(), display_value(v)))
                .collect();
            let invalid = |reason: String| ExperimentError::Invalid {
                point: index,
                params: params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                reason,
            };
            let mut config: Experiment = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
            config.sweep = base.sweep.clone();
            config.validate().map_err(invalid)?;
            Ok(Point {
                index,
                params,
                config,
            })
        })
        .collect()
}

/// Sets `a.b.c` in `table`, creating nothing: a path that names no existing table is an error
/// (it would be a typo), though the last key may be new (an optional field).
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or("empty parameter path")?;
    let mut current = table;
    for key in keys {
        current = match current.get_mut(key) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(format!("there is no [{key}] table to put it in")),
        };
    }
    current.insert(last.to_owned(), value);
    Ok(())
}

fn display_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_experiment_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let (_, points) =
                    Experiment::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!points.is_empty(), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 6, "only {checked} experiments found");
    }

    const BASE: &str = r#"
name = "t"
[topology]
mode = "local"
executors = 2
[workload]
function = "sleep"
sleep_s = 0.1
tasks_per_executor = 5
[load]
shape = "burst"
"#;

    #[test]
    fn a_plain_file_is_one_point() {
        let (exp, points) = Experiment::parse(BASE, "t.toml").unwrap();
        assert_eq!(exp.name, "t");
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].tasks(), 10);
        assert_eq!(exp.collect.method, CollectMethod::Fastest);
    }

    #[test]
    fn sweeps_expand_to_the_cartesian_product_in_file_order() {
        let text = format!(
            "{BASE}\n[[sweep]]\nparam = \"topology.mode\"\nvalues = [\"local\", \"push\"]\n\
             [[sweep]]\nparam = \"topology.executors\"\nvalues = [1, 4, 16]\n"
        );
        let (_, points) = Experiment::parse(&text, "t.toml").unwrap();
        let labels: Vec<String> = points.iter().map(Point::label).collect();
        assert_eq!(
            labels,
            [
                "mode=local executors=1",
                "mode=local executors=4",
                "mode=local executors=16",
                "mode=push executors=1",
                "mode=push executors=4",
                "mode=push executors=16"
            ]
        );
        assert_eq!(points[5].config.topology.mode, Mode::Push);
        assert_eq!(points[5].tasks(), 80);
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_line() {
        let text = BASE.replace("sleep_s = 0.1", "sleep_s = 0.1\nsleeep = 2");
        let err = Experiment::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("unknown field `sleeep`"), "{err}");
        assert!(err.contains("line 9"), "{err}");
    }

    #[test]
    fn invalid_points_and_sweeps_are_refused() {
        let open = BASE.replace("shape = \"burst\"", "shape = \"open\"");
        let err = Experiment::parse(&open, "t.toml").unwrap_err().to_string();
        assert!(err.contains("load.rate"), "{err}");

        let typo = format!("{BASE}\n[[sweep]]\nparam = \"topolgy.executors\"\nvalues = [1]\n");
        let err = Experiment::parse(&typo, "t.toml").unwrap_err().to_string();
        assert!(err.contains("no [topolgy] table"), "{err}");

        let bad_value =
            format!("{BASE}\n[[sweep]]\nparam = \"topology.executors\"\nvalues = [0]\n");
        let err = Experiment::parse(&bad_value, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("executors=0") && err.contains("at least 1"),
            "{err}"
        );

        let wrong_type =
            format!("{BASE}\n[[sweep]]\nparam = \"topology.executors\"\nvalues = [\"many\"]\n");
        assert!(Experiment::parse(&wrong_type, "t.toml").is_err());
    }

    #[test]
    fn a_window_bounded_by_duration_replaces_the_task_count() {
        let closed = BASE
            .replace("tasks_per_executor = 5", "")
            .replace("shape = \"burst\"", "shape = \"closed\"\nduration_s = 10.0");
        let (exp, points) = Experiment::parse(&closed, "t.toml").unwrap();
        assert_eq!(exp.repetitions, 3, "three repetitions by default");
        assert_eq!(points[0].tasks(), 0, "as many as fit");
        let open = closed.replace("shape = \"closed\"", "shape = \"open\"\nrate = 250.0");
        let (_, points) = Experiment::parse(&open, "t.toml").unwrap();
        assert_eq!(points[0].tasks(), 2500);

        let both = closed
            .replace("[load]", "[load]\n")
            .replace("function = \"sleep\"", "function = \"sleep\"\ntasks = 4");
        let err = Experiment::parse(&both, "t.toml").unwrap_err().to_string();
        assert!(err.contains("exactly one of"), "{err}");
        let burst = BASE
            .replace("tasks_per_executor = 5", "")
            .replace("shape = \"burst\"", "shape = \"burst\"\nduration_s = 10.0");
        let err = Experiment::parse(&burst, "t.toml").unwrap_err().to_string();
        assert!(err.contains("only with shape"), "{err}");
    }

    #[test]
    fn references_are_named_targets() {
        let text = format!("references = [\"floor\", \"ray\"]\n{BASE}");
        let (exp, _) = Experiment::parse(&text, "t.toml").unwrap();
        assert_eq!(exp.references, [Reference::Floor, Reference::Ray]);
        let typo = format!("references = [\"rey\"]\n{BASE}");
        let err = Experiment::parse(&typo, "t.toml").unwrap_err().to_string();
        assert!(err.contains("unknown variant `rey`"), "{err}");
    }

    #[test]
    fn executors_are_spread_evenly_over_workers() {
        let (_, points) = Experiment::parse(BASE, "t.toml").unwrap();
        let mut topology = points[0].config.topology.clone();
        topology.executors = 20;
        assert_eq!(topology.worker_sizes(), vec![7, 7, 6]);
        topology.executors = 1;
        assert_eq!(topology.worker_sizes(), vec![1]);
        topology.executors = 64;
        assert_eq!(topology.worker_sizes(), vec![8; 8]);
    }
}
