//! A FIFO the functions under test write to, so a test hears the moment a function starts
//! (or gets somewhere) instead of sleeping; and the Python that writes to it.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::unix::pipe;

/// Python: `signal(fifo, text)` writes the line `text` into the FIFO at `fifo` (see [`Fifo`]).
/// Non-blocking: it never waits for a reader, and fails loudly if there is none.
pub const SIGNAL: &str = "import os\n\ndef signal(fifo, text):\n    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)\n    try:\n        os.write(fd, (str(text) + '\\n').encode())\n    finally:\n        os.close(fd)\n";

/// Python: `nap(fifo, tag, seconds)` signals `"{tag} {its executor's id}"` as it starts, then
/// sleeps `seconds` and returns them. Register it with [`signalling`]. The id is random, drawn
/// once per executor process (a pid would not do: each sandboxed executor is pid 2 in its
/// own namespace).
pub const NAP: &str = "import time\n\ndef nap(fifo, tag, seconds):\n    if not hasattr(os, 'faas_test_id'):\n        import random\n        os.faas_test_id = '%012x' % random.getrandbits(48)\n    signal(fifo, '%s %s' % (tag, os.faas_test_id))\n    time.sleep(seconds)\n    return seconds\n";

/// The arguments of a [`NAP`] tagged `tag` that signals on `fifo`, as a Python expression.
pub fn nap_args(fifo: &Fifo, tag: &str, seconds: f64) -> String {
    format!("(({:?}, {tag:?}, {seconds}), {{}})", fifo.path())
}

/// The Python source `src` with [`SIGNAL`] defined before it.
pub fn signalling(src: &str) -> String {
    format!("{SIGNAL}{src}")
}

/// A named pipe that functions under test write lines into ([`SIGNAL`]), so the test hears
/// that a function started, or got somewhere, the moment it does.
pub struct Fifo {
    dir: PathBuf,
    path: String,
    lines: Lines<BufReader<pipe::Receiver>>,
}

/// The directory every FIFO of this test process is made in (made here, in cargo's
/// scratch directory for tests): executors' sandboxes share it (`FAAS_SHARE_DIRS`), so that
/// sandboxed functions can write to the FIFOs.
pub fn root() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fifos-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("the FIFOs' directory");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
        .expect("open the FIFOs' directory to functions");
    root
}

impl Fifo {
    /// A new FIFO in a directory of its own, open for reading (call it inside a runtime).
    /// Anyone may write to it: sandboxed functions may run as `nobody`.
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = root().join(n.to_string());
        std::fs::create_dir_all(&dir).expect("the FIFO's directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("open the FIFO's directory to functions");
        let path = dir.join("signals");
        let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
        // SAFETY: a valid NUL-terminated path and a mode.
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(
            made,
            0,
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .expect("let functions write to the FIFO");
        // Read and write: opening never waits for a writer, and reading never sees the end
        // of the file between two writers.
        let receiver = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path)
            .expect("open the FIFO");
        Self {
            dir,
            path: path.to_str().expect("a UTF-8 temp dir").to_owned(),
            lines: BufReader::new(receiver).lines(),
        }
    }

    /// Its path, for the functions' arguments.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next line written, waiting up to `timeout` for it.
    pub async fn next(&mut self, timeout: Duration) -> String {
        tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no signal on the FIFO within {timeout:?}"))
            .expect("read the FIFO")
            .expect("the FIFO stays open")
    }

    /// The next `n` lines written, waiting up to `timeout` for all of them.
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            lines.push(
                self.next(deadline.saturating_duration_since(Instant::now()))
                    .await,
            );
        }
        lines
    }

    /// Every line written so far and not yet read. The FIFO keeps order, so a line written
    /// now by the test itself comes after all of them: read up to it.
    pub async fn written_so_far(&mut self) -> Vec<String> {
        const MARK: &str = "-- read up to here --";
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .expect("open the FIFO for writing");
        writeln!(writer, "{MARK}").expect("write the FIFO");
        let mut lines = Vec::new();
        loop {
            let line = self.next(Duration::from_secs(10)).await;
            if line == MARK {
                return lines;
            }
            lines.push(line);
        }
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
