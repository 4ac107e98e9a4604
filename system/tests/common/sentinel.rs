//! Redis without a single point of failure, for tests: a primary, two replicas and three
//! Sentinels monitoring them, each a `redis-server` on a free port with its files in a
//! directory of its own. Every process is killed, and the directory removed, on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The service name the Sentinels monitor.
pub const SERVICE: &str = "faas";

/// A running `redis-server`, killed on drop.
struct Server {
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A primary, its replicas and the Sentinels watching them.
pub struct SentinelSet {
    password: String,
    /// The primary first, then the replicas.
    servers: Vec<Option<Server>>,
    sentinels: Vec<Server>,
    dir: PathBuf,
}

impl SentinelSet {
    /// Starts everything and returns once every Sentinel knows both replicas and the other
    /// Sentinels, so that a failover can be decided the moment the primary goes.
    pub async fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sentinel-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("the Sentinel set's directory");
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut set = Self {
            password,
            servers: Vec::new(),
            sentinels: Vec::new(),
            dir,
        };
        // The primary knows the password too: restarted after a failover, it is made a replica
        // and must authenticate to the new primary, or no write is confirmed by a replica again.
        let primary = set.spawn("primary", &[format!("masterauth {}", set.password)]);
        let primary_port = primary.port;
        set.servers.push(Some(primary));
        for name in ["replica-1", "replica-2"] {
            let follow = [
                format!("replicaof 127.0.0.1 {primary_port}"),
                format!("masterauth {}", set.password),
            ];
            let replica = set.spawn(name, &follow);
            set.servers.push(Some(replica));
        }
        for name in ["sentinel-1", "sentinel-2", "sentinel-3"] {
            let watch = [
                format!("sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2"),
                format!("sentinel auth-pass {SERVICE} {}", set.password),
                format!("sentinel down-after-milliseconds {SERVICE} 1000"),
                format!("sentinel failover-timeout {SERVICE} 5000"),
            ];
            let sentinel = set.spawn(name, &watch);
            set.sentinels.push(sentinel);
        }
        set.wait_until_watched().await;
        set
    }

    /// Starts a `redis-server` named `name` with `extra` configuration lines (Sentinel mode
    /// when they monitor something).
    fn spawn(&self, name: &str, extra: &[String]) -> Server {
        let port = free_port();
        let path = self.dir.join(format!("{name}.conf"));
        self.write_config(&path, name, port, extra);
        launch(&path, port)
    }

    /// Writes the config file of server `name` on `port`.
    fn write_config(&self, path: &std::path::Path, name: &str, port: u16, extra: &[String]) {
        let sentinel = extra.iter().any(|l| l.starts_with("sentinel "));
        let mut config = vec![
            format!("port {port}"),
            "bind 127.0.0.1".to_owned(),
            format!("dir {}", self.dir.display()),
        ];
        if !sentinel {
            config.extend([
                format!("requirepass {}", self.password),
                format!("dbfilename {name}.rdb"),
                "appendonly no".to_owned(),
                "save \"\"".to_owned(),
            ]);
        }
        config.extend(extra.iter().cloned());
        std::fs::write(path, config.join("\n") + "\n").expect("a config file");
    }

    /// The address the platform is given.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://:{}@{}/{SERVICE}",
            self.password,
            sentinels.join(",")
        )
    }

    /// A connection to the server with `port` (password included unless a Sentinel).
    async fn connect(
        &self,
        port: u16,
        sentinel: bool,
    ) -> Option<redis::aio::MultiplexedConnection> {
        let auth = if sentinel {
            String::new()
        } else {
            format!(":{}@", self.password)
        };
        let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{port}")).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    }

    /// How many replicas and other Sentinels the Sentinel on `port` knows.
    async fn knows(&self, port: u16) -> Option<(usize, usize)> {
        let mut conn = self.connect(port, true).await?;
        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg(&["replicas", SERVICE])
            .query_async(&mut conn)
            .await
            .ok()?;
        let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg(&["sentinels", SERVICE])
            .query_async(&mut conn)
            .await
            .ok()?;
        Some((replicas.len(), peers.len()))
    }

    /// Probes (10 ms to 500 ms apart) until every Sentinel knows both replicas and its two
    /// peers: Sentinels learn them from the primary's INFO and each other's hellos, which
    /// they exchange on their own schedule.
    async fn wait_until_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pause = Duration::from_millis(10);
        for sentinel in &self.sentinels {
            while self.knows(sentinel.port).await != Some((2, 2)) {
                assert!(
                    Instant::now() < deadline,
                    "the Sentinels never learned the whole set"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }

    /// Kills the first primary (SIGKILL): the Sentinels must promote a replica. Its port.
    pub fn kill_primary(&mut self) -> u16 {
        let primary = self.servers[0].take().expect("the primary runs");
        primary.port
    }

    /// Starts the killed first primary again, from its config file: the Sentinels make it a
    /// replica of the primary they promoted.
    pub fn restart_old_primary(&mut self, port: u16) {
        assert!(self.servers[0].is_none(), "the old primary still runs");
        self.servers[0] = Some(launch(&self.dir.join("primary.conf"), port));
    }

    /// The port of the server the Sentinels name as primary now.
    pub async fn primary_port(&self) -> Option<u16> {
        let mut conn = self.connect(self.sentinels[0].port, true).await?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg(&["get-master-addr-by-name", SERVICE])
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(port)
    }
}

/// Starts `redis-server` with the config file at `path` (a Sentinel when the file says so).
fn launch(path: &std::path::Path, port: u16) -> Server {
    let config = std::fs::read_to_string(path).expect("the config file");
    let mut command = Command::new("redis-server");
    command.arg(path);
    if config.contains("sentinel monitor") {
        command.arg("--sentinel");
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    Server { port, child }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
