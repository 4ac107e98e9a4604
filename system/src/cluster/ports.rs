//! Ports on loopback: a free one for a child to take, and checking that a chosen one is free.

use std::net::{Ipv4Addr, TcpListener};

/// A port nobody listens on now (bound on loopback, then released for a child to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Fails when `port` cannot be listened on at 127.0.0.1 (someone else has it).
pub fn check_free(port: u16) -> std::io::Result<()> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_not_free() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = held.local_addr().expect("addr").port();
        assert!(check_free(port).is_err());
        drop(held);
        assert!(check_free(port).is_ok());
        assert!(check_free(free_port().expect("free port")).is_ok());
    }
}
