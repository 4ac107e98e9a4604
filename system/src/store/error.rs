//! Errors at the Redis boundary.

use redis::{ErrorKind, ServerErrorKind};

/// What can go wrong talking to the store.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// A Redis address that cannot be used.
    #[error("invalid Redis address: {0}")]
    Address(String),
    /// No Sentinel named the primary (none answered, or they are electing one).
    #[error("no Sentinel names the primary of {service}: {reasons}")]
    NoPrimary { service: String, reasons: String },
    /// A write the primary took was not confirmed by as many replicas as asked in time: it
    /// may be lost if the primary fails now.
    #[error("the write was confirmed by {confirmed} of the {wanted} replica(s) asked for")]
    NotReplicated { wanted: u32, confirmed: u32 },
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
            Self::NoPrimary { .. } => true,
            Self::Corrupt { .. }
            | Self::Script { .. }
            | Self::Address(_)
            | Self::NotReplicated { .. } => false,
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
            Self::NoPrimary { .. } | Self::NotReplicated { .. } => true,
            Self::Corrupt { .. } | Self::Script { .. } | Self::Address(_) => false,
        }
    }
}
