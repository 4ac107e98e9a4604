//! Errors at the Redis boundary.

use redis::{ErrorKind, ServerErrorKind};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused the command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A record exists but does not have the shape this code writes.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A script answered in a shape it never writes.
    #[error("script {script}: {reason}")]
    Script {
        script: &'static str,
        reason: String,
    },
}

impl StoreError {
    /// True when Redis is away (connection refused, dropped or timed out) rather than
    /// rejecting what was asked: callers answer 503 and retry instead of failing the work.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                    || e.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading)
            }
            Self::Corrupt { .. } | Self::Script { .. } => false,
        }
    }

    /// True when the same call may succeed later without anything in it changing: Redis is
    /// away, or refuses writes for a state it will leave (out of memory under `maxmemory`,
    /// a failed background save, a replica during a failover, a busy script, missing ACL
    /// permissions an operator can grant). Callers retry with backoff (the dispatcher) or
    /// answer 503 (the gateway); no task is left stranded by such an error.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        const REFUSALS: &[&str] = &[
            "OOM",
            "MISCONF",
            "READONLY",
            "BUSY",
            "TRYAGAIN",
            "MASTERDOWN",
            "CLUSTERDOWN",
            "NOREPLICAS",
            "NOPERM",
        ];
        match self {
            Self::Redis(e) => {
                self.is_unavailable() || e.code().is_some_and(|code| REFUSALS.contains(&code))
            }
            Self::Corrupt { .. } | Self::Script { .. } => false,
        }
    }
}
