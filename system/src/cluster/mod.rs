//! The one cluster supervisor: starts and stops Redis, the gateway, dispatchers and workers
//! on this machine, for `faas up`, loadgen and the integration tests alike.
//!
//! Every process is started from a [`Recipe`] on a port of its own and counts as ready when
//! it says so over the readiness protocol ([`crate::readiness`]), never when a log line
//! looks right. The supervisor stops everything in reverse start order (workers first,
//! Redis last), each with SIGTERM and a bounded wait before SIGKILL, and kills whatever is
//! still running when it is dropped, so a failing test leaves nothing behind. Between
//! start and stop it injects the faults the tests need: kill, terminate, pause and resume,
//! or restart any member ([`MemberId`]).
//!
//! Run it on a runtime whose threads live for the whole run (see [`member`]).
//!
//! - [`spec`]: what a cluster is made of.
//! - [`member`]: one supervised child.
//! - [`binaries`]: finding the platform's binaries and redis-server.
//! - [`redis`]: the private Redis.
//! - [`output`]: where children's output goes.
//! - [`ports`]: free ports.

pub mod binaries;
pub mod member;
pub mod output;
pub mod ports;
pub mod redis;
pub mod spec;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

pub use binaries::{Binaries, BinaryError};
pub use member::{Exit, Member, NotReady, Recipe};
pub use output::Output;
pub use redis::{Persistence, PrivateRedis};
pub use spec::{ClusterSpec, RedisSpec};

use crate::dispatcher::Mode;

/// How long Redis and the gateway may take to be ready.
const REDIS_READY: Duration = Duration::from_secs(10);
const GATEWAY_READY: Duration = Duration::from_secs(30);

/// How long each part may take to stop after SIGTERM before it is killed.
const WORKER_STOP: Duration = Duration::from_secs(10);
const DISPATCHER_STOP: Duration = Duration::from_secs(10);
/// The gateway lets requests in progress (long polls) finish for up to 10 s.
const GATEWAY_STOP: Duration = Duration::from_secs(15);
const REDIS_STOP: Duration = Duration::from_secs(5);
/// After SIGKILL, how long to wait for the kernel to report the exits.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// One process of the cluster. Indexes count from 0 in start order; a restarted member
/// keeps its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberId {
    Redis,
    Gateway,
    Dispatcher(usize),
    Worker(usize),
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis => f.write_str("redis"),
            Self::Gateway => f.write_str("gateway"),
            Self::Dispatcher(0) => f.write_str("dispatcher"),
            Self::Dispatcher(i) => write!(f, "dispatcher-{}", i + 1),
            Self::Worker(i) => write!(f, "worker-{}", i + 1),
        }
    }
}

impl MemberId {
    /// The color of its output prefix.
    fn color(self) -> usize {
        match self {
            Self::Redis => 5,
            Self::Gateway => 2,
            Self::Dispatcher(_) => 3,
            Self::Worker(i) => [0, 1, 4][i % 3],
        }
    }
}

/// Why the cluster could not start or act. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("cannot find a free port: {0}")]
    NoFreePort(std::io::Error),
    #[error("cannot create the cluster's directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("this cluster has no {0}")]
    NoMember(MemberId),
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything stopped in order.
    Clean,
    /// Aborted: everything left was killed at once.
    Killed,
}

/// A directory of the cluster's own (readiness sockets, the private Redis's data), removed
/// when the cluster goes.
#[derive(Debug)]
struct ClusterDir(PathBuf);

impl ClusterDir {
    fn create() -> Result<Self, ClusterError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: Unix socket paths are limited to about 100 bytes.
        let dir = std::env::temp_dir().join(format!("faas-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::Dir {
            dir: dir.clone(),
            source,
        })?;
        Ok(Self(dir))
    }
}

impl Drop for ClusterDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove the cluster's directory");
        }
    }
}

/// A running cluster. Fields drop in order: workers first, the directory last.
pub struct Cluster {
    workers: Vec<Member>,
    dispatchers: Vec<Member>,
    gateway: Option<Member>,
    redis: Option<Member>,
    spec: ClusterSpec,
    private_redis: Option<(PathBuf, PrivateRedis)>,
    redis_url: String,
    gateway_port: u16,
    worker_port: u16,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits: Option<mpsc::UnboundedReceiver<Exit>>,
    /// Children started so far: numbers each one's readiness socket, so a restarted
    /// member never shares (or loses, when the old one's socket is removed) a path.
    spawned: AtomicU32,
    dir: ClusterDir,
}

impl Cluster {
    /// Prepares `spec`: binaries found, ports chosen, the directory made. Nothing runs yet.
    pub fn new(spec: ClusterSpec) -> Result<Self, ClusterError> {
        for name in ["faas-gateway", "task_dispatcher"] {
            spec.binaries.require(name)?;
        }
        if let Some(worker) = spec.mode.worker_binary() {
            spec.binaries.require(worker)?;
        }
        let dir = ClusterDir::create()?;
        let free = || ports::free_port().map_err(ClusterError::NoFreePort);
        let (private_redis, redis_url) = match &spec.redis {
            RedisSpec::External(url) => (None, url.clone()),
            RedisSpec::Private(persistence) => {
                let server = binaries::redis_server()?;
                let redis = PrivateRedis {
                    port: free()?,
                    dir: dir.0.join("redis"),
                    persistence: *persistence,
                };
                std::fs::create_dir_all(&redis.dir).map_err(|source| ClusterError::Dir {
                    dir: redis.dir.clone(),
                    source,
                })?;
                let url = redis.url();
                (Some((server, redis)), url)
            }
        };
        let gateway_port = spec.gateway_port.map_or_else(free, Ok)?;
        let worker_port = spec.worker_port.map_or_else(free, Ok)?;
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Ok(Self {
            workers: Vec::new(),
            dispatchers: Vec::new(),
            gateway: None,
            redis: None,
            spec,
            private_redis,
            redis_url,
            gateway_port,
            worker_port,
            exits_tx,
            exits: Some(exits),
            spawned: AtomicU32::new(0),
            dir,
        })
    }

    /// Prepares `spec` and starts all of it, each part ready before the next starts.
    pub async fn start(spec: ClusterSpec) -> Result<Self, ClusterError> {
        let mut cluster = Self::new(spec)?;
        cluster.start_control_plane().await?;
        cluster.start_executor_hosts().await?;
        Ok(cluster)
    }

    /// Redis (if private) and the gateway; in pull and push modes, the dispatcher too.
    pub async fn start_control_plane(&mut self) -> Result<(), ClusterError> {
        self.start_redis().await?;
        self.start_gateway().await?;
        if self.spec.mode != Mode::Local {
            self.start_dispatcher().await?;
        }
        Ok(())
    }

    /// What runs the executors: the dispatcher in local mode, the spec's workers otherwise.
    pub async fn start_executor_hosts(&mut self) -> Result<(), ClusterError> {
        if self.spec.mode == Mode::Local {
            self.start_dispatcher().await.map(drop)
        } else {
            let sizes = self.spec.executors.clone();
            self.start_workers(&sizes).await
        }
    }

    /// The private Redis, if the spec has one; ready when it says so.
    pub async fn start_redis(&mut self) -> Result<(), ClusterError> {
        let Some((server, private)) = &self.private_redis else {
            return Ok(());
        };
        let recipe = private.recipe(server);
        let member = self.spawn(MemberId::Redis, recipe)?;
        self.redis = Some(member);
        self.wait_ready(MemberId::Redis, 1, REDIS_READY).await
    }

    /// The gateway; ready when it listens.
    pub async fn start_gateway(&mut self) -> Result<(), ClusterError> {
        let mut recipe = self
            .platform_recipe("faas-gateway")?
            .args(["--bind", &format!("127.0.0.1:{}", self.gateway_port)])
            .args(&self.spec.gateway_args)
            .env("FAAS_REDIS_URL", &self.redis_url);
        if let Some(token) = &self.spec.token {
            recipe = recipe.env("FAAS_AUTH_TOKEN", token);
        }
        let member = self.spawn(MemberId::Gateway, recipe)?;
        self.gateway = Some(member);
        self.wait_ready(MemberId::Gateway, 1, GATEWAY_READY).await
    }

    /// A dispatcher with the spec's flags; ready when it reads the queue. Its index.
    pub async fn start_dispatcher(&mut self) -> Result<usize, ClusterError> {
        self.start_dispatcher_with(&[], &[]).await
    }

    /// [`Self::start_dispatcher`] with extra flags and environment.
    pub async fn start_dispatcher_with(
        &mut self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<usize, ClusterError> {
        let mut recipe = self
            .executor_host_recipe("task_dispatcher")?
            .args(["-m", self.spec.mode.as_str()])
            .env("FAAS_REDIS_URL", &self.redis_url);
        recipe = match self.spec.mode {
            Mode::Local => recipe.args(["-w", &self.spec.local_executors().to_string()]),
            Mode::Pull | Mode::Push => recipe.args(["-p", &self.worker_port.to_string()]),
        };
        recipe = with_extra(recipe.args(&self.spec.dispatcher_args), args, env);
        let id = MemberId::Dispatcher(self.dispatchers.len());
        let member = self.spawn(id, recipe)?;
        self.dispatchers.push(member);
        self.wait_ready(id, 1, self.spec.executors_ready).await?;
        Ok(self.dispatchers.len() - 1)
    }

    /// Workers of the given sizes, started together; ready when each has registered.
    pub async fn start_workers(&mut self, sizes: &[u32]) -> Result<(), ClusterError> {
        let ids = sizes
            .iter()
            .map(|&n| self.spawn_worker_with(n, &[], &[]))
            .collect::<Result<Vec<_>, _>>()?;
        // Started together, so they share one deadline; waited for one by one, so a timeout
        // names the one that did not register.
        let deadline = tokio::time::Instant::now() + self.spec.executors_ready;
        for i in ids {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.wait_ready(MemberId::Worker(i), 1, left).await?;
        }
        Ok(())
    }

    /// One worker with `executors` executors and extra flags and environment; ready when it
    /// has registered. Its index.
    pub async fn start_worker_with(
        &mut self,
        executors: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<usize, ClusterError> {
        let i = self.spawn_worker_with(executors, args, env)?;
        self.wait_ready(MemberId::Worker(i), 1, self.spec.executors_ready)
            .await?;
        Ok(i)
    }

    /// Starts a worker without waiting for it (one that is expected never to register). Its
    /// index.
    pub fn spawn_worker_with(
        &mut self,
        executors: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<usize, ClusterError> {
        let binary = self.spec.mode.worker_binary().unwrap_or("push_worker");
        let id = MemberId::Worker(self.workers.len());
        let recipe = self
            .executor_host_recipe(binary)?
            .arg(executors.to_string())
            .arg(self.worker_endpoint())
            .args(["--name".to_owned(), id.to_string()])
            .args(&self.spec.worker_args)
            // Workers never touch Redis.
            .env_remove("FAAS_REDIS_URL");
        let member = self.spawn(id, with_extra(recipe, args, env))?;
        self.workers.push(member);
        Ok(self.workers.len() - 1)
    }

    /// SIGKILL; the exit status.
    pub async fn kill(&self, id: MemberId) -> Result<ExitStatus, ClusterError> {
        Ok(self.member(id)?.kill().await)
    }

    /// SIGTERM and up to `timeout` for an orderly exit, then SIGKILL; the exit status.
    pub async fn terminate(
        &self,
        id: MemberId,
        timeout: Duration,
    ) -> Result<ExitStatus, ClusterError> {
        Ok(self.member(id)?.stop(timeout).await)
    }

    /// SIGSTOP: the process is frozen, its sockets stay open.
    pub fn pause(&self, id: MemberId) -> Result<(), ClusterError> {
        self.signal(id, libc::SIGSTOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self, id: MemberId) -> Result<(), ClusterError> {
        self.signal(id, libc::SIGCONT)
    }

    /// Sends `signal`, unless the member has exited.
    pub fn signal(&self, id: MemberId, signal: i32) -> Result<(), ClusterError> {
        self.member(id)?.signal(signal);
        Ok(())
    }

    /// Starts the member again from the same recipe (killing it first if it still runs),
    /// and waits until it is ready. A private Redis comes back with its data when its
    /// persistence keeps any.
    pub async fn restart(&mut self, id: MemberId) -> Result<(), ClusterError> {
        let old = self.member(id)?;
        old.kill().await;
        let recipe = old.recipe().clone();
        let fresh = self.spawn(id, recipe)?;
        *self.member_mut(id)? = fresh;
        let timeout = match id {
            MemberId::Redis => REDIS_READY,
            MemberId::Gateway => GATEWAY_READY,
            MemberId::Dispatcher(_) | MemberId::Worker(_) => self.spec.executors_ready,
        };
        self.wait_ready(id, 1, timeout).await
    }

    /// Waits until the member has said it is ready `count` times in all (a worker says so
    /// again each time it registers anew, e.g. after its dispatcher restarted).
    pub async fn wait_ready(
        &self,
        id: MemberId,
        count: u32,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        Ok(self.member(id)?.wait_ready(count, timeout).await?)
    }

    /// Waits up to `timeout` for the member to exit by itself; its status if it did.
    pub async fn wait_exit(
        &self,
        id: MemberId,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, ClusterError> {
        let member = self.member(id)?;
        Ok(tokio::time::timeout(timeout, member.wait()).await.ok())
    }

    /// The exits of this cluster's members, for one watcher (`None` once taken): watched
    /// apart from the cluster, so they can be awaited while it starts more members.
    pub fn take_exits(&mut self) -> Option<Exits> {
        self.exits.take().map(Exits)
    }

    /// Stops everything, last started first: each group (workers, dispatchers, the gateway,
    /// Redis) gets SIGTERM, then SIGKILL after its timeout. If `abort` resolves meanwhile,
    /// everything left is killed at once.
    pub async fn stop(&mut self, abort: impl Future<Output = ()>) -> Stopped {
        let groups: [(Vec<&Member>, Duration); 4] = [
            (self.workers.iter().collect(), WORKER_STOP),
            (self.dispatchers.iter().collect(), DISPATCHER_STOP),
            (self.gateway.iter().collect(), GATEWAY_STOP),
            (self.redis.iter().collect(), REDIS_STOP),
        ];
        let in_order = async {
            for (group, timeout) in &groups {
                stop_group(group, *timeout).await;
            }
        };
        tokio::select! {
            () = in_order => {
                tracing::info!("all stopped");
                Stopped::Clean
            }
            () = abort => {
                tracing::warn!("killing everything");
                let all = groups.iter().flat_map(|(group, _)| group);
                for member in all.clone() {
                    member.expect_exit();
                    member.signal(libc::SIGKILL);
                }
                for member in all {
                    let _ = tokio::time::timeout(KILL_WAIT, member.wait()).await;
                }
                Stopped::Killed
            }
        }
    }

    /// A member, by id.
    pub fn member(&self, id: MemberId) -> Result<&Member, ClusterError> {
        match id {
            MemberId::Redis => self.redis.as_ref(),
            MemberId::Gateway => self.gateway.as_ref(),
            MemberId::Dispatcher(i) => self.dispatchers.get(i),
            MemberId::Worker(i) => self.workers.get(i),
        }
        .ok_or(ClusterError::NoMember(id))
    }

    fn member_mut(&mut self, id: MemberId) -> Result<&mut Member, ClusterError> {
        match id {
            MemberId::Redis => self.redis.as_mut(),
            MemberId::Gateway => self.gateway.as_mut(),
            MemberId::Dispatcher(i) => self.dispatchers.get_mut(i),
            MemberId::Worker(i) => self.workers.get_mut(i),
        }
        .ok_or(ClusterError::NoMember(id))
    }

    #[must_use]
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The gateway's base URL, e.g. `http://127.0.0.1:8000`.
    #[must_use]
    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// The Redis URL every part uses.
    #[must_use]
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The endpoint workers connect to.
    #[must_use]
    pub fn worker_endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.worker_port)
    }

    #[must_use]
    pub fn worker_port(&self) -> u16 {
        self.worker_port
    }

    /// How many workers were started (killed ones included).
    #[must_use]
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// How many dispatchers were started (killed ones included).
    #[must_use]
    pub fn dispatcher_count(&self) -> usize {
        self.dispatchers.len()
    }

    /// Whether the cluster started its own Redis.
    #[must_use]
    pub fn has_private_redis(&self) -> bool {
        self.private_redis.is_some()
    }

    /// A platform binary's recipe: the spec's `RUST_LOG`, and no secret it does not need.
    fn platform_recipe(&self, binary: &str) -> Result<Recipe, ClusterError> {
        Ok(Recipe::new(self.spec.binaries.require(binary)?)
            .env("RUST_LOG", &self.spec.rust_log)
            .env_remove("FAAS_AUTH_TOKEN"))
    }

    /// [`Self::platform_recipe`] for a binary that runs executors: their Python, memory
    /// limit and working directory.
    fn executor_host_recipe(&self, binary: &str) -> Result<Recipe, ClusterError> {
        let mut recipe = self
            .platform_recipe(binary)?
            .env("FAAS_PYTHON", &self.spec.python);
        if let Some(mb) = self.spec.memory_limit_mb {
            recipe = recipe.env("FAAS_MEMORY_LIMIT_MB", mb.to_string());
        }
        recipe.cwd.clone_from(&self.spec.workdir);
        Ok(recipe)
    }

    fn spawn(&self, id: MemberId, recipe: Recipe) -> Result<Member, ClusterError> {
        let name = id.to_string();
        tracing::info!("starting {name}");
        let spawn_error = |source| ClusterError::Spawn {
            name: name.clone(),
            source,
        };
        let sink = self
            .spec
            .output
            .sink(&name, id.color())
            .map_err(spawn_error)?;
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let socket = self.dir.0.join(format!("{n}.sock"));
        Member::spawn(&name, recipe, sink, &socket, &self.exits_tx).map_err(spawn_error)
    }

    /// The cluster's own directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

/// The members' exits, as taken from [`Cluster::take_exits`].
#[derive(Debug)]
pub struct Exits(mpsc::UnboundedReceiver<Exit>);

impl Exits {
    /// The next exit nobody asked for (a crash, a process that gave up). Pending forever
    /// once the cluster is gone.
    pub async fn next_unexpected(&mut self) -> Exit {
        while let Some(exit) = self.0.recv().await {
            if !exit.expected {
                return exit;
            }
        }
        std::future::pending().await
    }
}

/// `recipe` with extra flags and environment.
fn with_extra(recipe: Recipe, args: &[&str], env: &[(&str, &str)]) -> Recipe {
    env.iter()
        .fold(recipe.args(args), |r, (key, value)| r.env(key, value))
}

/// Stops one group together: SIGTERM to all, then each waited for up to `timeout`.
async fn stop_group(group: &[&Member], timeout: Duration) {
    let running: Vec<&str> = group
        .iter()
        .filter(|m| m.exited().is_none())
        .map(|m| m.name())
        .collect();
    if running.is_empty() {
        return;
    }
    tracing::info!("stopping {}", running.join(", "));
    for member in group {
        member.expect_exit();
        member.signal(libc::SIGTERM);
    }
    for member in group {
        let already = member.exited();
        let status = member.wait_or_kill(timeout).await;
        if already.is_none() && !stopped_well(status) {
            tracing::warn!("{} exited ({status}) while stopping", member.name());
        }
    }
}

/// Whether a child asked to stop ended as expected: success, or the SIGTERM itself.
fn stopped_well(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.success() || status.signal() == Some(libc::SIGTERM)
}
