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
//! - `start`, `faults` and `stop`: the cluster's life, in that order.

pub mod binaries;
mod faults;
mod keys;
pub mod member;
pub mod output;
pub mod ports;
pub mod redis;
pub mod spec;
mod start;
mod stop;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc;

pub use binaries::{Binaries, BinaryError};
pub use faults::Exits;
pub use member::{Exit, Member, NotReady, Recipe};
pub use output::Output;
pub use redis::{Persistence, PrivateRedis, RedisServer};
pub use spec::{ClusterSpec, RedisSpec};
pub use start::WorkerPlace;
pub use stop::Stopped;

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
    #[error(transparent)]
    Curve(#[from] crate::curve::CurveError),
}

/// A directory of the cluster's own (readiness sockets, the private Redis's data), removed
/// when the cluster goes.
#[derive(Debug)]
struct ClusterDir(PathBuf);

impl ClusterDir {
    /// A new directory only this user can enter: made afresh (never one left by another
    /// process, which could hold planted sockets), like `mkdtemp`.
    fn create() -> Result<Self, ClusterError> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            // Short: Unix socket paths are limited to about 100 bytes.
            let dir = std::env::temp_dir().join(format!("faas-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                // Left by an earlier process with this pid: take the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => {}
                Err(source) => return Err(ClusterError::Dir { dir, source }),
            }
        }
    }
}

impl ClusterDir {
    fn path(&self) -> &Path {
        &self.0
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
    /// The worker transport's keys (pull and push).
    keys: Option<keys::TransportKeys>,
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
                let redis = PrivateRedis::create(dir.0.join("redis"), *persistence)?;
                let url = redis.url();
                (Some((server, redis)), url)
            }
        };
        let gateway_port = spec.gateway_port.map_or_else(free, Ok)?;
        let worker_port = spec.worker_port.map_or_else(free, Ok)?;
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let keys = match spec.mode {
            crate::dispatcher::Mode::Local => None,
            crate::dispatcher::Mode::Pull | crate::dispatcher::Mode::Push => {
                Some(keys::TransportKeys::create(dir.path())?)
            }
        };
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
            keys,
            spawned: AtomicU32::new(0),
            dir,
        })
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

    /// Keys for one more worker (or a test's peer), admitted by the dispatchers from now on;
    /// `None` in local mode, which has no worker transport.
    pub fn admit_worker_keys(&self) -> Result<Option<crate::curve::ClientKeys>, ClusterError> {
        self.keys
            .as_ref()
            .map(keys::TransportKeys::admit_new)
            .transpose()
    }

    /// The cluster's own directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}
