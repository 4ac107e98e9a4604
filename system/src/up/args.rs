//! The options of `faas up`, as a clap argument group the `faas` binary mounts as a
//! subcommand.

use crate::cli::ExecutorArgs;
pub use crate::dispatcher::Mode;

/// A count of 1 or more.
fn at_least_one(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `faas up`: Redis (unless given), the gateway, the dispatcher and its workers, in the
/// foreground until Ctrl-C.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Run a whole local cluster in the foreground (Redis, gateway, dispatcher, workers)",
    long_about = "Run a whole local cluster in the foreground, for development: a private \
                  redis-server (unless --redis-url is given), the gateway, the dispatcher and, \
                  in pull and push modes, its workers. Every process's output is shown with its \
                  name in front. Ctrl-C (or SIGTERM) stops everything, workers first; a second \
                  Ctrl-C kills everything at once.",
    after_help = "Examples:\n  \
                  faas up                                     # local mode, 2 executors, http://127.0.0.1:8000\n  \
                  faas up --mode push --workers 2 --procs 4   # 2 push workers with 4 executors each\n  \
                  faas up --redis-url redis://127.0.0.1:6379  # use a running Redis",
    after_long_help = "Examples:\n  \
                  faas up                                     # local mode, 2 executors, http://127.0.0.1:8000\n  \
                  faas up --mode push --workers 2 --procs 4   # 2 push workers with 4 executors each\n  \
                  faas up --redis-url redis://127.0.0.1:6379  # use a running Redis\n\n\
                  faas-gateway, task_dispatcher, pull_worker and push_worker must be next to the faas \
                  executable (cargo build --workspace puts them there). Children get faas's RUST_LOG \
                  (default: info); their output goes to stderr, the summary to stdout."
)]
pub struct UpArgs {
    /// Dispatch mode: executors in the dispatcher (local) or in worker processes (pull, push).
    #[arg(long, value_enum, default_value_t = Mode::Local)]
    pub mode: Mode,
    /// Worker processes (pull and push modes) [default: 1].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub workers: Option<u32>,
    /// Executors per worker; in local mode, the dispatcher's pool size.
    #[arg(long, value_name = "P", default_value_t = 2, value_parser = at_least_one)]
    pub procs: u32,
    /// Gateway port, on 127.0.0.1.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Use this Redis instead of starting a private redis-server (whose data is discarded
    /// at exit).
    #[arg(long, env = "FAAS_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Port the workers connect to, on 127.0.0.1 (pull and push modes) [default: a free
    /// port].
    #[arg(long, value_name = "PORT")]
    pub worker_port: Option<u16>,
    /// Require `Authorization: Bearer <token>` on every gateway request. Prefer the
    /// environment variable: command lines are visible to every local user.
    #[arg(
        long,
        env = "FAAS_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub auth_token: Option<String>,
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

impl UpArgs {
    /// The gateway's token; an empty one means none, as for the gateway itself.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.auth_token.as_deref().filter(|t| !t.is_empty())
    }

    /// Worker processes to start: 0 in local mode.
    #[must_use]
    pub fn worker_count(&self) -> u32 {
        match self.mode {
            Mode::Local => 0,
            Mode::Pull | Mode::Push => self.workers.unwrap_or(1),
        }
    }

    /// Options that make no sense together, as one line.
    pub fn check(&self) -> Result<(), String> {
        if self.mode == Mode::Local {
            if self.workers.is_some() {
                return Err("--workers needs --mode pull or push (in local mode, --procs sets the dispatcher's pool size)".to_owned());
            }
            if self.worker_port.is_some() {
                return Err("--worker-port needs --mode pull or push".to_owned());
            }
        }
        Ok(())
    }
}
