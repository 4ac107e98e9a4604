//! The block printed once everything is ready: where the gateway is and how to try it.

use std::fmt;

use super::args::Mode;

/// What is running, for the user.
#[derive(Debug, Clone)]
pub struct Summary {
    pub gateway_url: String,
    pub mode: Mode,
    /// Worker processes; 0 in local mode.
    pub workers: u32,
    /// Executors per worker, or in the dispatcher's pool in local mode.
    pub procs: u32,
    /// The Redis URL, password hidden.
    pub redis_url: String,
    /// Whether that Redis is ours (and discarded at exit).
    pub private_redis: bool,
    /// The port workers connect to (pull and push).
    pub worker_port: Option<u16>,
    /// Whether the gateway requires a bearer token.
    pub auth: bool,
}

impl Summary {
    /// The one-line example request.
    #[must_use]
    pub fn curl(&self) -> String {
        let auth = if self.auth {
            "-H \"Authorization: Bearer $FAAS_AUTH_TOKEN\" "
        } else {
            ""
        };
        format!("curl {auth}{}/health", self.gateway_url)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let layout = match self.mode {
            Mode::Local => format!(
                "local: the dispatcher runs {}",
                plural(self.procs, "executor")
            ),
            Mode::Pull | Mode::Push => format!(
                "{}: {} × {} (workers connect to tcp://127.0.0.1:{})",
                self.mode.as_str(),
                plural(self.workers, "worker"),
                plural(self.procs, "executor"),
                self.worker_port.unwrap_or_default()
            ),
        };
        let redis = if self.private_redis {
            format!("{} (private, discarded at exit)", self.redis_url)
        } else {
            self.redis_url.clone()
        };
        writeln!(f, "faas is up")?;
        writeln!(f, "  gateway  {}", self.gateway_url)?;
        writeln!(f, "  mode     {layout}")?;
        writeln!(f, "  redis    {redis}")?;
        writeln!(f, "  try      {}", self.curl())?;
        write!(f, "Press Ctrl-C to stop.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(mode: Mode, workers: u32, auth: bool) -> Summary {
        Summary {
            gateway_url: "http://127.0.0.1:8000".to_owned(),
            mode,
            workers,
            procs: 4,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            private_redis: true,
            worker_port: Some(5555),
            auth,
        }
    }

    #[test]
    fn the_summary_names_everything() {
        let text = summary(Mode::Push, 2, false).to_string();
        assert!(text.contains("http://127.0.0.1:8000"), "{text}");
        assert!(text.contains("push: 2 workers × 4 executors"), "{text}");
        assert!(text.contains("redis://127.0.0.1:6379 (private"), "{text}");
        assert!(text.contains("curl http://127.0.0.1:8000/health"), "{text}");
        let local = summary(Mode::Local, 0, false).to_string();
        assert!(
            local.contains("local: the dispatcher runs 4 executors"),
            "{local}"
        );
    }

    #[test]
    fn the_curl_example_carries_the_token_when_needed() {
        let curl = summary(Mode::Pull, 1, true).curl();
        assert_eq!(
            curl,
            "curl -H \"Authorization: Bearer $FAAS_AUTH_TOKEN\" http://127.0.0.1:8000/health"
        );
    }
}
