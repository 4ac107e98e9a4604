//! Children's output, relayed line by line to our stderr behind a fixed-width name
//! (`dispatcher| ...`), colored when stderr is a terminal; and the `RUST_LOG` children get.

use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tracing::Level;
use tracing_subscriber::filter::Targets;

/// How prefixes look for this run.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Names are padded to this many characters.
    pub width: usize,
    /// ANSI colors on the names.
    pub color: bool,
}

impl Style {
    /// Names padded to fit the longest of `names` (at least 10 characters), colored when
    /// stderr is a terminal and `NO_COLOR` is unset.
    #[must_use]
    pub fn for_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let width = names.into_iter().map(str::len).max().unwrap_or(0).max(10);
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { width, color }
    }

    /// The prefix of `name`'s lines, e.g. `"gateway   | "`; `index` picks its color.
    #[must_use]
    pub fn prefix(&self, name: &str, index: usize) -> String {
        const COLORS: [u8; 6] = [36, 33, 32, 35, 34, 31];
        let width = self.width;
        if self.color {
            let color = COLORS[index % COLORS.len()];
            format!("\x1b[{color}m{name:<width$}|\x1b[0m ")
        } else {
            format!("{name:<width$}| ")
        }
    }
}

/// Tells when a child printed the line that says it is ready.
#[derive(Debug, Clone)]
pub struct ReadyLine {
    needle: &'static str,
    seen: Arc<watch::Sender<bool>>,
}

impl ReadyLine {
    /// Watches for a line containing `needle`; the receiver turns true when one is seen.
    #[must_use]
    pub fn new(needle: &'static str) -> (Self, watch::Receiver<bool>) {
        let (seen, rx) = watch::channel(false);
        (
            Self {
                needle,
                seen: Arc::new(seen),
            },
            rx,
        )
    }

    fn check(&self, line: &str) {
        if !*self.seen.borrow() && line.contains(self.needle) {
            self.seen.send_replace(true);
        }
    }
}

/// Copies `reader`'s lines to stderr behind `prefix` until it closes, watching for `ready`.
pub async fn relay<R: AsyncRead + Unpin>(reader: R, prefix: Arc<str>, ready: Option<ReadyLine>) {
    relay_to(reader, &prefix, ready.as_ref(), std::io::stderr()).await;
}

/// [`relay`] into `out`. Invalid UTF-8 is shown lossily; each line is written in one piece
/// (one `write_all`, which holds stderr's lock), so lines of different children never mix.
async fn relay_to<R: AsyncRead + Unpin, W: Write>(
    reader: R,
    prefix: &str,
    ready: Option<&ReadyLine>,
    mut out: W,
) {
    let mut reader = BufReader::new(reader);
    let mut raw = Vec::new();
    let mut line_out = String::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end_matches(['\n', '\r']);
        if let Some(ready) = ready {
            ready.check(line);
        }
        line_out.clear();
        line_out.push_str(prefix);
        line_out.push_str(line);
        line_out.push('\n');
        let _ = out.write_all(line_out.as_bytes());
    }
}

/// The modules whose info lines tell that a part is ready.
const READINESS_TARGETS: [&str; 4] = [
    "faas::gateway",
    "faas::dispatcher",
    "faas::worker::pull",
    "faas::worker::push",
];

/// The `RUST_LOG` children get: `user` (our own `RUST_LOG`) or `info`. Since readiness is
/// read from the children's info lines, a filter that would hide them (e.g. `warn`) gets
/// `module=info` directives for just the modules that print them.
#[must_use]
pub fn child_filter(user: Option<&str>) -> String {
    let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return "info".to_owned();
    };
    // Span and field filters are beyond `Targets`: those are taken as they are.
    let Ok(targets) = Targets::from_str(user) else {
        return user.to_owned();
    };
    let mut filter = user.to_owned();
    for target in READINESS_TARGETS {
        if !targets.would_enable(target, &Level::INFO) {
            filter.push_str(&format!(",{target}=info"));
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_have_a_fixed_width() {
        let style = Style {
            width: 10,
            color: false,
        };
        assert_eq!(style.prefix("gateway", 0), "gateway   | ");
        assert_eq!(style.prefix("dispatcher", 1), "dispatcher| ");
        assert_eq!(style.prefix("worker-1", 2), "worker-1  | ");
        let colored = Style {
            width: 10,
            color: true,
        };
        assert!(colored.prefix("redis", 3).contains("redis     |"));
        assert!(colored.prefix("redis", 3).starts_with("\x1b["));
    }

    #[test]
    fn the_width_fits_the_longest_name() {
        let style = Style::for_names(["redis", "worker-10000"]);
        assert_eq!(style.width, 12);
        assert_eq!(Style::for_names(["redis"]).width, 10);
    }

    #[test]
    fn children_log_at_info_unless_told() {
        assert_eq!(child_filter(None), "info");
        assert_eq!(child_filter(Some("  ")), "info");
        assert_eq!(child_filter(Some("debug")), "debug");
        assert_eq!(child_filter(Some("info,faas=debug")), "info,faas=debug");
    }

    #[test]
    fn a_quiet_filter_keeps_the_readiness_lines() {
        let filter = child_filter(Some("warn"));
        assert!(filter.starts_with("warn,"), "{filter}");
        for target in READINESS_TARGETS {
            assert!(filter.contains(&format!("{target}=info")), "{filter}");
        }
        let partly = child_filter(Some("warn,faas::gateway=debug"));
        assert!(!partly.contains("faas::gateway=info"), "{partly}");
        assert!(partly.contains("faas::dispatcher=info"), "{partly}");
    }

    #[tokio::test]
    async fn relay_prefixes_each_line_and_sees_the_ready_line() {
        let (ready, mut seen) = ReadyLine::new("gateway listening");
        let input: &[u8] = b"starting\r\n\xffbad\n2025 INFO gateway listening addr=x\nno newline";
        let mut out = Vec::new();
        relay_to(input, "gateway   | ", Some(&ready), &mut out).await;
        assert!(*seen.borrow_and_update());
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "gateway   | starting\ngateway   | \u{fffd}bad\n\
             gateway   | 2025 INFO gateway listening addr=x\ngateway   | no newline\n"
        );
    }
}
