//! Ports on loopback: a free one for a child to take, and checking that a chosen one is free.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// Where [`free_port`] looks: below Linux's default ephemeral range (32768-60999), so that no
/// outgoing connection's source port takes a chosen port before its child binds it.
const CHOSEN_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A port nobody listens on now (checked on loopback, then left for a child to take), chosen at
/// random below the ephemeral range; the kernel's choice when none is found there.
pub fn free_port() -> std::io::Result<u16> {
    // Never the same port twice in one process, even if the first child has not bound it yet.
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let span = u32::from(CHOSEN_PORTS.end - CHOSEN_PORTS.start);
    for _ in 0..64 {
        let offset = uuid::Uuid::new_v4().as_u128() % u128::from(span);
        let port = CHOSEN_PORTS.start + u16::try_from(offset).expect("below the span");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) && check_free(port).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
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
