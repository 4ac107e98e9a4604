//! A private `redis-server`: loopback only, on a port of its own, its data in a directory of
//! its own, a password of its own (in a 0600 config file, never on a command line that `ps`
//! shows), ready when it says so itself (`--supervised systemd` speaks the readiness
//! protocol of [`crate::readiness`]) or, for a build without that support, when it answers
//! PING with PONG (not LOADING). A cluster runs one as a member; [`RedisServer`] runs one
//! alone (the store's unit tests and benchmarks). And hiding passwords in URLs shown to
//! users.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::member::{Exit, Member, NotReady, Recipe};
use super::output::Output;
use super::{ClusterDir, ClusterError, binaries, ports};

/// How long a private Redis may take to be ready.
pub(super) const REDIS_READY: Duration = Duration::from_secs(10);

/// What a private Redis keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// Nothing: the data goes with the process (`faas up`).
    #[default]
    None,
    /// An append-only file, fsynced every second (benchmarks: what a deployment would run).
    AppendOnly,
    /// An append-only file fsynced on every write, so a restart after SIGTERM or SIGKILL
    /// finds every acknowledged write (durability tests).
    AppendOnlyAlways,
}

/// A private Redis's port, directory, password and persistence.
#[derive(Clone)]
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    pub persistence: Persistence,
    password: String,
}

impl std::fmt::Debug for PrivateRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateRedis")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("persistence", &self.persistence)
            .finish_non_exhaustive()
    }
}

impl PrivateRedis {
    /// Prepares a server in `dir` (created) on a free port, with a fresh random password
    /// written to its config file.
    pub fn create(dir: PathBuf, persistence: Persistence) -> Result<Self, ClusterError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir_error = |dir: &Path| {
            let dir = dir.to_path_buf();
            move |source| ClusterError::Dir { dir, source }
        };
        std::fs::create_dir_all(&dir).map_err(dir_error(&dir))?;
        let password = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let redis = Self {
            port: ports::free_port().map_err(ClusterError::NoFreePort)?,
            dir,
            persistence,
            password,
        };
        let config = redis.config_path();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut file| writeln!(file, "requirepass {}", redis.password))
            .map_err(dir_error(&config))?;
        Ok(redis)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("redis.conf")
    }

    /// Its URL, password included: give it only to the control plane.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// How to start the server (`redis_server` is its executable): loopback only, logging to
    /// stdout, notifying readiness.
    #[must_use]
    pub fn recipe(&self, redis_server: &Path) -> Recipe {
        let appendonly = match self.persistence {
            Persistence::None => ["--appendonly", "no", "--appendfsync", "no"],
            Persistence::AppendOnly => ["--appendonly", "yes", "--appendfsync", "everysec"],
            Persistence::AppendOnlyAlways => ["--appendonly", "yes", "--appendfsync", "always"],
        };
        Recipe::new(redis_server)
            .arg(self.config_path())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--logfile", ""])
            .args(["--supervised", "systemd"])
            .args(appendonly)
            .arg("--dir")
            .arg(&self.dir)
    }
}

/// A private redis-server on its own, outside any cluster; killed, and its directory
/// removed, on drop. Start it inside a tokio runtime whose thread lives as long as it does.
pub struct RedisServer {
    member: Member,
    redis: PrivateRedis,
    _exits: mpsc::UnboundedReceiver<Exit>,
    _dir: ClusterDir,
}

impl RedisServer {
    /// Starts a server with `persistence`, its output into `output`; returns once it is ready.
    pub async fn start(persistence: Persistence, output: &Output) -> Result<Self, ClusterError> {
        let server = binaries::redis_server()?;
        let dir = ClusterDir::create()?;
        let redis = PrivateRedis::create(dir.path().join("redis"), persistence)?;
        let spawn_error = |source| ClusterError::Spawn {
            name: "redis".to_owned(),
            source,
        };
        let sink = output.sink("redis", 5).map_err(spawn_error)?;
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let member = Member::spawn(
            "redis",
            redis.recipe(&server),
            sink,
            &dir.path().join("redis.sock"),
            &exits_tx,
        )
        .map_err(spawn_error)?;
        wait_ready(&member, &redis).await?;
        Ok(Self {
            member,
            redis,
            _exits: exits,
            _dir: dir,
        })
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.redis.url()
    }

    /// The server process.
    #[must_use]
    pub fn member(&self) -> &Member {
        &self.member
    }
}

/// Waits until the server `member` runs as `redis` is ready: it says so, or (for a build
/// that cannot) it answers PING. Fails if it exits first or takes over [`REDIS_READY`].
pub(super) async fn wait_ready(member: &Member, redis: &PrivateRedis) -> Result<(), NotReady> {
    tokio::select! {
        biased;
        said = member.wait_ready(1, REDIS_READY) => said,
        () = answers_ping(redis) => Ok(()),
    }
}

/// Resolves once the server answers PING with PONG; probes with a backoff from 10 ms to
/// 200 ms. A server still loading its data answers `-LOADING` and is not ready.
async fn answers_ping(redis: &PrivateRedis) {
    let mut pause = Duration::from_millis(10);
    loop {
        if ping(redis).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// One AUTH and one PING: whether the replies were OK and PONG.
async fn ping(redis: &PrivateRedis) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", redis.port)).await?;
    let request = format!("AUTH {}\r\nPING\r\n", redis.password);
    stream.write_all(request.as_bytes()).await?;
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).await?;
    Ok(&reply == b"+OK\r\n+PONG\r\n")
}

/// `url` with its password (if any) hidden, for showing.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("rediss://me:s3cret@host:6379"),
            "rediss://me:***@host:6379"
        );
        assert_eq!(redact("redis://token@host"), "redis://***@host");
    }

    #[test]
    fn the_server_is_private_and_notifies() {
        let dir = std::env::temp_dir().join(format!("faas-redis-recipe-{}", std::process::id()));
        let redis = PrivateRedis::create(dir.clone(), Persistence::AppendOnlyAlways).unwrap();
        let args: Vec<String> = redis
            .recipe(Path::new("redis-server"))
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("--bind 127.0.0.1"), "{joined}");
        assert!(joined.contains("--supervised systemd"), "{joined}");
        assert!(joined.contains("--appendfsync always"), "{joined}");
        // The password is in the config file (readable by its owner only), not in `ps`.
        assert!(!joined.contains(&redis.password), "{joined}");
        let config = std::fs::read_to_string(redis.config_path()).unwrap();
        assert_eq!(config, format!("requirepass {}\n", redis.password));
        let mode = std::fs::metadata(redis.config_path())
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(
            redis.url(),
            format!("redis://:{}@127.0.0.1:{}", redis.password, redis.port)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
