//! A private `redis-server`: loopback only, on a port of its own, its data in a directory of
//! its own, ready when it says so itself (`--supervised systemd` speaks the readiness
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

/// A private Redis's port, directory and persistence.
#[derive(Debug, Clone)]
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    pub persistence: Persistence,
}

impl PrivateRedis {
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let redis = PrivateRedis {
            port: ports::free_port().map_err(ClusterError::NoFreePort)?,
            dir: dir.path().join("redis"),
            persistence,
        };
        std::fs::create_dir_all(&redis.dir).map_err(|source| ClusterError::Dir {
            dir: redis.dir.clone(),
            source,
        })?;
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
        wait_ready(&member, redis.port).await?;
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

/// Waits until the server `member`, listening on `port`, is ready: it says so, or (for a
/// build that cannot) it answers PING. Fails if it exits first or takes over
/// [`REDIS_READY`].
pub(super) async fn wait_ready(member: &Member, port: u16) -> Result<(), NotReady> {
    tokio::select! {
        biased;
        said = member.wait_ready(1, REDIS_READY) => said,
        () = answers_ping(port) => Ok(()),
    }
}

/// Resolves once the server on `port` answers PING with PONG; probes with a backoff from
/// 10 ms to 200 ms. A server still loading its data answers `-LOADING` and is not ready.
async fn answers_ping(port: u16) {
    let mut pause = Duration::from_millis(10);
    loop {
        if ping(port).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// One inline PING: whether the reply was PONG.
async fn ping(port: u16) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await?;
    Ok(&reply == b"+PONG\r\n")
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
        let redis = PrivateRedis {
            port: 7001,
            dir: PathBuf::from("/tmp/x"),
            persistence: Persistence::AppendOnlyAlways,
        };
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
        assert_eq!(redis.url(), "redis://127.0.0.1:7001");
    }
}
