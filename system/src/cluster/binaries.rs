//! Finding the platform's binaries (and redis-server) before anything is started.

use std::path::{Path, PathBuf};

/// The directory holding the platform's binaries (`faas-gateway`, `task_dispatcher`,
/// `pull_worker`, `push_worker`, `faas`, `loadgen`: cargo puts them side by side).
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

/// A binary the cluster needs but cannot find.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot tell where the running executable is: {0}")]
    NoSelf(std::io::Error),
    #[error("{name} is missing in {dir}: build the workspace first (cargo build --workspace)")]
    Missing { name: String, dir: String },
    #[error(
        "redis-server is not on PATH: install it (apt-get install redis-server) or use a running Redis (faas up --redis-url)"
    )]
    NoRedis,
}

impl Binaries {
    /// The directory of the running executable (`faas`, `loadgen`).
    pub fn next_to_self() -> Result<Self, BinaryError> {
        let exe = std::env::current_exe().map_err(BinaryError::NoSelf)?;
        let dir = exe.parent().map(Path::to_path_buf).ok_or_else(|| {
            BinaryError::NoSelf(std::io::Error::other("the executable has no directory"))
        })?;
        Ok(Self { dir })
    }

    /// The binaries in `dir`.
    #[must_use]
    pub fn in_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The path of `name`, which must exist.
    pub fn require(&self, name: &str) -> Result<PathBuf, BinaryError> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(BinaryError::Missing {
                name: name.to_owned(),
                dir: self.dir.display().to_string(),
            })
        }
    }
}

/// `redis-server` from `PATH`, checked up front so a missing one is reported before anything
/// slow happens.
pub fn redis_server() -> Result<PathBuf, BinaryError> {
    find_in_path("redis-server").ok_or(BinaryError::NoRedis)
}

/// The first executable file called `name` in `PATH`.
#[must_use]
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_named_with_the_build_command() {
        let binaries = Binaries::in_dir(std::env::temp_dir().join("faas-up-no-such-dir"));
        let err = binaries.require("faas-gateway").unwrap_err().to_string();
        assert!(err.contains("faas-gateway"), "{err}");
        assert!(err.contains("cargo build --workspace"), "{err}");
    }

    #[test]
    fn the_redis_hint_is_one_line() {
        let err = BinaryError::NoRedis.to_string();
        assert!(!err.contains('\n'));
        assert!(err.contains("apt-get install redis-server"));
    }
}
