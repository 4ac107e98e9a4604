//! A cluster's worker-transport keys: one CURVE pair for its dispatchers, a fresh pair for
//! each worker, and the file of admitted worker keys in the cluster's own directory. Keys
//! reach the processes through their environment, never their command lines.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{ClusterError, Recipe};
use crate::curve::{ClientKeys, KeyPair};

pub(super) struct TransportKeys {
    server: KeyPair,
    admitted: PathBuf,
}

impl TransportKeys {
    /// Keys for a cluster whose directory is `dir`.
    pub(super) fn create(dir: &Path) -> Result<Self, ClusterError> {
        let admitted = dir.join("worker-keys");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&admitted)
            .map_err(|source| ClusterError::Dir {
                dir: admitted.clone(),
                source,
            })?;
        Ok(Self {
            server: KeyPair::generate()?,
            admitted,
        })
    }

    /// `recipe` with the dispatcher's secret key and the admitted keys' file.
    pub(super) fn dispatcher(&self, recipe: Recipe) -> Recipe {
        recipe
            .env("FAAS_CURVE_SECRET_KEY", &self.server.secret)
            .env("FAAS_WORKER_KEYS", &self.admitted)
    }

    /// `recipe` with a fresh key pair of a new worker's own, admitted from now on, and the
    /// dispatcher's public key.
    pub(super) fn worker(&self, recipe: Recipe) -> Result<Recipe, ClusterError> {
        let keys = self.admit_new()?;
        Ok(recipe
            .env("FAAS_CURVE_SERVER_KEY", &keys.server_public)
            .env("FAAS_CURVE_PUBLIC_KEY", &keys.own.public)
            .env("FAAS_CURVE_SECRET_KEY", &keys.own.secret))
    }

    /// A fresh worker key pair, admitted from now on, with the dispatcher's public key.
    pub(super) fn admit_new(&self) -> Result<ClientKeys, ClusterError> {
        let own = KeyPair::generate()?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.admitted)
            .and_then(|mut file| writeln!(file, "{}", own.public))
            .map_err(|source| ClusterError::Dir {
                dir: self.admitted.clone(),
                source,
            })?;
        Ok(ClientKeys {
            server_public: self.server.public.clone(),
            own,
        })
    }
}
