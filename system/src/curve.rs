//! CURVE security for the worker transport (ZeroMQ's own: every connection is encrypted, and
//! authenticated in its handshake).
//!
//! The dispatcher holds a key pair; each worker holds one of its own and knows the
//! dispatcher's public key. The dispatcher admits a worker only if its public key is in the
//! admitted-keys file: a ZAP handler (ZeroMQ's authentication protocol, RFC 27) answers each
//! handshake, so a peer without an admitted key never completes one and cannot send a single
//! message. Every message that arrives carries the key it came with (`User-Id`), which is what
//! binds a registered worker to its connections.
//!
//! Keys are Z85 text, 40 characters; `faas keygen` makes a pair.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A problem with keys or their setup.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    #[error("{what} is not a CURVE key (40 characters of Z85 text)")]
    BadKey { what: &'static str },
    #[error(
        "this libzmq has no CURVE: build against the system libzmq (apt-get install libzmq3-dev)"
    )]
    Unsupported,
    #[error("cannot read the admitted worker keys in {}: {source}", path.display())]
    KeysFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
}

/// A key pair, in Z85.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub public: String,
    pub secret: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh pair.
    pub fn generate() -> Result<Self, CurveError> {
        require_curve()?;
        let pair = zmq::CurveKeyPair::new()?;
        let text = |key: &[u8; 32]| zmq::z85_encode(key).expect("32 bytes encode");
        Ok(Self {
            public: text(&pair.public_key),
            secret: text(&pair.secret_key),
        })
    }
}

/// `key` decoded, or why not (`what` names it in the error).
pub fn decode(what: &'static str, key: &str) -> Result<[u8; 32], CurveError> {
    zmq::z85_decode(key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(CurveError::BadKey { what })
}

fn require_curve() -> Result<(), CurveError> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err(CurveError::Unsupported)
    }
}

/// The dispatcher's side: its secret key and where the admitted worker keys are.
#[derive(Clone)]
pub struct ServerKeys {
    pub secret: String,
    /// One Z85 public key per line; read again whenever an unknown key knocks, so workers
    /// can be admitted without a restart.
    pub admitted: PathBuf,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

/// The domain the dispatcher's sockets authenticate in.
const ZAP_DOMAIN: &str = "faas-workers";

impl ServerKeys {
    /// Makes `socket` a CURVE server whose handshakes a ZAP handler decides, and starts that
    /// handler on `ctx` (on a thread of its own, for the life of the process: its socket
    /// keeps the context alive). Call it once per context: the handler's address is fixed.
    pub fn secure(&self, ctx: &zmq::Context, socket: &zmq::Socket) -> Result<(), CurveError> {
        require_curve()?;
        let secret = decode("the dispatcher's secret key", &self.secret)?;
        let admitted = Admitted::load(&self.admitted)?;
        let zap = ctx.socket(zmq::REP)?;
        zap.bind("inproc://zeromq.zap.01")?;
        std::thread::Builder::new()
            .name("zap-handler".into())
            .spawn(move || admitted.serve(&zap))
            .map_err(|_| CurveError::Zmq(zmq::Error::EMFILE))?;
        socket.set_zap_domain(ZAP_DOMAIN)?;
        socket.set_curve_server(true)?;
        socket.set_curve_secretkey(&secret)?;
        Ok(())
    }
}

/// A worker's side: its own pair and the dispatcher's public key.
#[derive(Clone)]
pub struct ClientKeys {
    pub server_public: String,
    pub own: KeyPair,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("server_public", &self.server_public)
            .field("own", &self.own)
            .finish()
    }
}

impl ClientKeys {
    /// Makes `socket` a CURVE client of the dispatcher (before it connects).
    pub fn secure(&self, socket: &zmq::Socket) -> Result<(), CurveError> {
        require_curve()?;
        socket.set_curve_serverkey(&decode("the dispatcher's public key", &self.server_public)?)?;
        socket.set_curve_publickey(&decode("the worker's public key", &self.own.public)?)?;
        socket.set_curve_secretkey(&decode("the worker's secret key", &self.own.secret)?)?;
        Ok(())
    }
}

/// The admitted worker keys, as the ZAP handler keeps them.
struct Admitted {
    path: PathBuf,
    keys: HashSet<String>,
}

impl Admitted {
    fn load(path: &Path) -> Result<Self, CurveError> {
        let mut admitted = Self {
            path: path.to_path_buf(),
            keys: HashSet::new(),
        };
        admitted.reload()?;
        Ok(admitted)
    }

    fn reload(&mut self) -> Result<(), CurveError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| CurveError::KeysFile {
            path: self.path.clone(),
            source,
        })?;
        self.keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Ok(())
    }

    /// Whether the Z85 `key` may connect: known, or in the file as it is now.
    fn admits(&mut self, key: &str) -> bool {
        if self.keys.contains(key) {
            return true;
        }
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "cannot read the admitted worker keys again");
        }
        self.keys.contains(key)
    }

    /// Answers ZAP requests (RFC 27) until the context ends.
    fn serve(mut self, zap: &zmq::Socket) {
        loop {
            let request = match zap.recv_multipart(0) {
                Ok(request) => request,
                Err(zmq::Error::ETERM) => return,
                Err(e) => {
                    tracing::error!(error = %e, "ZAP handler cannot receive; it stops");
                    return;
                }
            };
            let reply = self.decide(&request);
            if let Err(e) = zap.send_multipart(reply, 0) {
                tracing::error!(error = %e, "ZAP handler cannot answer");
            }
        }
    }

    /// The reply to one request: `version, request id, domain, address, routing id,
    /// mechanism, credentials...` → `version, request id, status, text, user id, metadata`.
    fn decide(&mut self, request: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let field = |i: usize| request.get(i).map_or(&[][..], Vec::as_slice);
        let (version, id, address, mechanism) = (field(0), field(1), field(3), field(5));
        let key = (mechanism == b"CURVE")
            .then(|| zmq::z85_encode(field(6)).ok())
            .flatten();
        let address = String::from_utf8_lossy(address);
        let (status, text, user) = match key {
            Some(key) if version == b"1.0" && self.admits(&key) => ("200", "OK", key),
            Some(key) => {
                tracing::warn!(%address, %key, "refused a worker connection: its key is not admitted");
                ("400", "key not admitted", String::new())
            }
            None => {
                tracing::warn!(%address, "refused a worker connection without a CURVE key");
                ("400", "CURVE required", String::new())
            }
        };
        vec![
            b"1.0".to_vec(),
            id.to_vec(),
            status.into(),
            text.into(),
            user.into_bytes(),
            Vec::new(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        let pair = KeyPair::generate().expect("this libzmq has CURVE");
        assert_eq!(pair.public.len(), 40);
        assert!(decode("k", &pair.public).is_ok());
        assert!(matches!(
            decode("the key", "not a key"),
            Err(CurveError::BadKey { what: "the key" })
        ));
    }

    #[test]
    fn only_admitted_keys_get_a_200_and_the_file_is_read_again() {
        let dir = std::env::temp_dir().join(format!("faas-curve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("workers");
        let (a, b) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        std::fs::write(&file, format!("# workers\n{}\n", a.public)).unwrap();
        let mut admitted = Admitted::load(&file).unwrap();
        let request = |key: &KeyPair| {
            vec![
                b"1.0".to_vec(),
                b"7".to_vec(),
                ZAP_DOMAIN.into(),
                b"127.0.0.1".to_vec(),
                Vec::new(),
                b"CURVE".to_vec(),
                decode("k", &key.public).unwrap().to_vec(),
            ]
        };
        let reply = admitted.decide(&request(&a));
        assert_eq!((&reply[1][..], &reply[2][..]), (&b"7"[..], &b"200"[..]));
        assert_eq!(reply[4], a.public.as_bytes());
        assert_eq!(admitted.decide(&request(&b))[2], b"400");
        std::fs::write(&file, format!("{}\n{}\n", a.public, b.public)).unwrap();
        assert_eq!(admitted.decide(&request(&b))[2], b"200");
        let mut plain = request(&a);
        plain[5] = b"NULL".to_vec();
        assert_eq!(admitted.decide(&plain)[2], b"400");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
