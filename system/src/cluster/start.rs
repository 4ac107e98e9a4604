//! Starting a cluster's members, each ready (it says so) before the next.

use std::time::Duration;

use super::{Cluster, ClusterError, ClusterSpec, MemberId, Recipe};
use crate::dispatcher::Mode;

/// How long the gateway may take to be ready.
pub(super) const GATEWAY_READY: Duration = Duration::from_secs(30);

impl Cluster {
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
        self.wait_redis_ready().await
    }

    /// Waits until the (just started) private Redis is ready.
    pub(super) async fn wait_redis_ready(&self) -> Result<(), ClusterError> {
        let member = self.member(MemberId::Redis)?;
        match &self.private_redis {
            Some((_, redis)) => Ok(super::redis::wait_ready(member, redis).await?),
            None => Err(ClusterError::NoMember(MemberId::Redis)),
        }
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
        self.start_dispatcher_on(self.worker_port, args, env).await
    }

    /// [`Self::start_dispatcher_with`] listening for workers on `port` (pull and push): one
    /// of several dispatchers sharing the cluster's Redis, each with a port of its own.
    pub async fn start_dispatcher_on(
        &mut self,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<usize, ClusterError> {
        let mut recipe = self
            .executor_host_recipe("task_dispatcher")?
            .args(["-m", self.spec.mode.as_str()])
            .env("FAAS_REDIS_URL", &self.redis_url);
        recipe = match self.spec.mode {
            Mode::Local => recipe.args(["-w", &self.spec.local_executors().to_string()]),
            Mode::Pull | Mode::Push => recipe.args(["-p", &port.to_string()]),
        };
        if let Some(keys) = &self.keys {
            recipe = keys.dispatcher(recipe);
        }
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
        self.spawn_worker_at(&WorkerPlace::default(), executors, args, env)
    }

    /// [`Self::spawn_worker_with`] at `place`: under a command of its own (another network
    /// namespace, say), reaching the dispatcher at an address of its own.
    pub fn spawn_worker_at(
        &mut self,
        place: &WorkerPlace,
        executors: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<usize, ClusterError> {
        let binary = self.spec.mode.worker_binary().unwrap_or("push_worker");
        let id = MemberId::Worker(self.workers.len());
        let endpoint = place
            .endpoint
            .clone()
            .unwrap_or_else(|| self.worker_endpoint());
        let mut recipe = self
            .executor_host_recipe(binary)?
            .arg(executors.to_string())
            .arg(endpoint)
            .args(["--name".to_owned(), id.to_string()])
            .args(&self.spec.worker_args)
            // Workers never touch Redis.
            .env_remove("FAAS_REDIS_URL");
        if let Some(keys) = &self.keys {
            recipe = keys.worker(recipe)?;
        }
        let member = self.spawn(id, with_extra(recipe, args, env).under(&place.wrapper))?;
        self.workers.push(member);
        Ok(self.workers.len() - 1)
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
        if !self.spec.share_dirs.is_empty() {
            let dirs =
                std::env::join_paths(&self.spec.share_dirs).map_err(|e| ClusterError::Spawn {
                    name: binary.to_owned(),
                    source: std::io::Error::other(e),
                })?;
            recipe = recipe.env("FAAS_SHARE_DIRS", dirs);
        }
        recipe.cwd.clone_from(&self.spec.workdir);
        Ok(recipe)
    }
}

/// Where a worker runs, when not beside the dispatcher.
#[derive(Debug, Clone, Default)]
pub struct WorkerPlace {
    /// The command it is started under, e.g. `ip netns exec NAME` (none: started directly).
    /// It must exec the worker, so that signals reach the worker itself.
    pub wrapper: Vec<std::ffi::OsString>,
    /// The dispatcher's endpoint as seen from there (default: the loopback one).
    pub endpoint: Option<String>,
}

/// `recipe` with extra flags and environment.
fn with_extra(recipe: Recipe, args: &[&str], env: &[(&str, &str)]) -> Recipe {
    env.iter()
        .fold(recipe.args(args), |r, (key, value)| r.env(key, value))
}
