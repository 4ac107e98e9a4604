//! What a process knows about the machine it runs on, for the names it gives itself.

/// This machine's hostname, or `host` when it cannot be read: it only makes the names of
/// dispatchers and workers readable, uniqueness comes from what is added to it.
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}
