//! Where the children's output goes: relayed line by line behind a fixed-width name
//! (`dispatcher| ...`, for `faas up`), through the test harness's captured stderr (tests), or
//! into one file per child (loadgen).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Where a cluster sends its children's stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Our stderr, each line behind its child's name, colored when stderr is a terminal and
    /// `NO_COLOR` is unset.
    Prefixed,
    /// `eprintln!`, which the Rust test harness captures per test (shown when one fails).
    Captured,
    /// Appended to `<dir>/<name>.log`, one file per child (kept across restarts).
    Files(PathBuf),
    /// Read and dropped (benchmarks, whose own output is the point).
    Discard,
}

/// Names are padded to at least this many characters.
const MIN_WIDTH: usize = 10;

impl Output {
    /// The sink for the child `name`; `index` picks its color.
    pub fn sink(&self, name: &str, index: usize) -> std::io::Result<Sink> {
        Ok(match self {
            Self::Prefixed => {
                let color =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                Sink::Stderr(Arc::from(prefix(name, index, color)))
            }
            Self::Captured => Sink::Captured(Arc::from(format!("[{name}] "))),
            Self::Files(dir) => {
                std::fs::create_dir_all(dir)?;
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))?;
                Sink::File(Arc::new(Mutex::new(file)))
            }
            Self::Discard => Sink::Discard,
        })
    }
}

/// The prefix of `name`'s lines, e.g. `"gateway   | "`; `index` picks its color.
fn prefix(name: &str, index: usize, color: bool) -> String {
    const COLORS: [u8; 6] = [36, 33, 32, 35, 34, 31];
    let width = name.len().max(MIN_WIDTH);
    if color {
        let code = COLORS[index % COLORS.len()];
        format!("\x1b[{code}m{name:<width$}|\x1b[0m ")
    } else {
        format!("{name:<width$}| ")
    }
}

/// One child's destination for its lines.
#[derive(Debug, Clone)]
pub enum Sink {
    Stderr(Arc<str>),
    Captured(Arc<str>),
    File(Arc<Mutex<File>>),
    /// Each line sent as it comes, for a caller that waits on what a child prints.
    Lines(mpsc::UnboundedSender<String>),
    Discard,
}

impl Sink {
    /// A sink whose lines arrive on the returned receiver; it closes once every relay
    /// into the sink has ended (the child closed its output).
    #[must_use]
    pub fn lines() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::Lines(tx), rx)
    }

    /// Writes one line (without its newline) in one piece, so lines of different children
    /// never mix.
    fn line(&self, line: &str) {
        match self {
            Self::Stderr(prefix) => {
                let _ = std::io::stderr().write_all(format!("{prefix}{line}\n").as_bytes());
            }
            Self::Captured(prefix) => eprintln!("{prefix}{line}"),
            Self::File(file) => {
                let mut file = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = writeln!(file, "{line}");
            }
            Self::Lines(tx) => {
                let _ = tx.send(line.to_owned());
            }
            Self::Discard => {}
        }
    }
}

/// Copies `reader`'s lines into `sink` until it closes. Invalid UTF-8 is shown lossily.
pub(crate) async fn relay<R: AsyncRead + Unpin>(reader: R, sink: Sink) {
    let mut reader = BufReader::new(reader);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        sink.line(text.trim_end_matches(['\n', '\r']));
    }
}

/// The `RUST_LOG` children get: `user` (our own `RUST_LOG`), or `info`.
#[must_use]
pub fn child_filter(user: Option<&str>) -> String {
    user.map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or("info")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_have_a_fixed_width() {
        assert_eq!(prefix("gateway", 0, false), "gateway   | ");
        assert_eq!(prefix("dispatcher", 1, false), "dispatcher| ");
        assert_eq!(prefix("worker-10000", 2, false), "worker-10000| ");
        let colored = prefix("redis", 3, true);
        assert!(colored.contains("redis     |"));
        assert!(colored.starts_with("\x1b["));
    }

    #[test]
    fn children_log_at_info_unless_told() {
        assert_eq!(child_filter(None), "info");
        assert_eq!(child_filter(Some("  ")), "info");
        assert_eq!(child_filter(Some("warn")), "warn");
        assert_eq!(child_filter(Some("info,faas=debug")), "info,faas=debug");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn files_get_each_line_whole() {
        let dir = std::env::temp_dir().join(format!("faas-output-test-{}", std::process::id()));
        let sink = Output::Files(dir.clone()).sink("gateway", 0).expect("sink");
        let input: &[u8] = b"starting\r\n\xffbad\nno newline";
        relay(input, sink).await;
        let text = std::fs::read_to_string(dir.join("gateway.log")).expect("log");
        assert_eq!(text, "starting\n\u{fffd}bad\nno newline\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
