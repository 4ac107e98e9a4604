//! The private `redis-server` of a run: a free port on loopback, no persistence, a
//! temporary directory removed at the end, and the URL shown to the user.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A private Redis's port and directory; dropping it removes the directory.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Creates the server's directory for `port`.
    pub fn prepare(port: u16) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("faas-up-{}-redis-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { port, dir })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The command that starts the server: loopback only, nothing saved.
    #[must_use]
    pub fn command(&self, redis_server: &Path) -> Command {
        let mut cmd = Command::new(redis_server);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir);
        cmd
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the Redis directory");
        }
    }
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
    fn the_directory_goes_with_the_guard() {
        let redis = PrivateRedis::prepare(1).expect("temp dir");
        let dir = redis.dir().to_path_buf();
        assert!(dir.is_dir());
        drop(redis);
        assert!(!dir.exists());
    }
}
