//! A network namespace joined to this one by a veth pair: a separate host on a /30 link, for
//! workers across a real network. Faults are nftables rules inside the namespace (a partition,
//! random loss), so they go with it. Everything is removed on drop, whatever happened.

use std::ffi::OsString;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use faas::cluster::WorkerPlace;

/// A network namespace with one link to this one.
pub struct NetNs {
    name: String,
    /// This side's end of the link, in the root namespace.
    host_link: String,
    /// This side's address, where the namespace reaches the dispatcher.
    pub host_ip: String,
}

/// Runs `command`; its stderr as the error if it fails.
fn run(command: &[&str]) -> Result<(), String> {
    let out = Command::new(command[0])
        .args(&command[1..])
        .output()
        .map_err(|e| format!("{}: {e}", command.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            command.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetNs {
    /// A fresh namespace, or `None` (said in one line) where namespaces cannot be made here;
    /// in CI that fails the test instead, so that it never passes without running.
    pub fn require() -> Option<Self> {
        match Self::create() {
            Ok(ns) => Some(ns),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("cannot create a network namespace (needs root, iproute2, nftables): {e}")
            }
            Err(e) => {
                eprintln!(
                    "skipped: cannot create a network namespace (needs root, iproute2, nftables): {e}"
                );
                None
            }
        }
    }

    fn create() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id());
        // A /30 per namespace, spread over 10.201.0.0/16 by process and counter.
        let block = (std::process::id() * 7 + n * 4) % 16_384 * 4;
        let ip = |last: u32| format!("10.201.{}.{}", block / 256, block % 256 + last);
        let ns = Self {
            name: format!("faas-{tag}"),
            host_link: format!("fh{tag}"),
            host_ip: ip(1),
        };
        let peer = format!("fw{tag}");
        let inside = |args: &[&str]| {
            let mut command = vec!["ip", "netns", "exec", &ns.name];
            command.extend_from_slice(args);
            run(&command)
        };
        run(&["ip", "netns", "add", &ns.name])?;
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        run(&["ip", "link", "set", &peer, "netns", &ns.name])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_link,
        ])?;
        run(&["ip", "link", "set", &ns.host_link, "up"])?;
        inside(&["ip", "addr", "add", &format!("{}/30", ip(2)), "dev", &peer])?;
        inside(&["ip", "link", "set", &peer, "up"])?;
        inside(&["ip", "link", "set", "lo", "up"])?;
        // The table faults go in: input and output chains that accept until told otherwise.
        inside(&["nft", "add", "table", "inet", "faults"])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0; policy accept; }}");
            inside(&["nft", "add", "chain", "inet", "faults", chain, &spec])?;
        }
        Ok(ns)
    }

    /// Where a worker in this namespace runs and reaches a dispatcher listening on
    /// [`Self::host_ip`] at `port`.
    pub fn place(&self, port: u16) -> WorkerPlace {
        WorkerPlace {
            wrapper: ["ip", "netns", "exec", &self.name]
                .map(OsString::from)
                .to_vec(),
            endpoint: Some(format!("tcp://{}:{port}", self.host_ip)),
        }
    }

    /// Adds `rule` to both chains (e.g. `drop` for a partition, `numgen random mod 100 < 5
    /// drop` for 5% loss each way).
    pub fn add_rule(&self, rule: &str) {
        for chain in ["in", "out"] {
            let mut command = vec!["ip", "netns", "exec", &self.name, "nft", "add", "rule"];
            command.extend(["inet", "faults", chain]);
            command.extend(rule.split(' '));
            run(&command).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Removes every rule: the link is whole again.
    pub fn heal(&self) {
        for chain in ["in", "out"] {
            run(&[
                "ip", "netns", "exec", &self.name, "nft", "flush", "chain", "inet", "faults", chain,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace takes its rules and its end of the link, and with it ours.
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = run(&["ip", "link", "del", &self.host_link]);
    }
}
