//! Sockets from the cloud application's side: connect (from a chosen source address),
//! echo, tell refused from carried, and hash what was carried.

use crate::wait_until;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Connects to a cloud port on loopback.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the cloud port");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.set_nodelay(true).ok();
    s
}

/// Sends `msg` and reads the same number of bytes back; `None` if the connection closed.
pub fn echo_once(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
    echo_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), msg)
}

/// [`echo_once`] at any address (a cluster node's cloud address).
pub fn echo_at(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(msg).ok()?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).ok()?;
    Some(got)
}

/// Waits until an echo through `port` works (the client is connected and serving).
pub fn wait_echo(port: u16) -> bool {
    wait_until(Duration::from_secs(30), || {
        echo_once(port, b"ready?").as_deref() == Some(b"ready?".as_slice())
    })
}

/// Deterministic pseudo-random bytes for bulk transfers.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of everything read from `r`, and the byte count.
pub fn sha256_of(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        ctx.update(&buf[..n]);
    }
    let hex = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, total))
}

pub fn sha256(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Connects to a loopback cloud port from a chosen source address (e.g. `127.0.0.2:0`).
pub fn connect_from(port: u16, source: &str) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let src: SocketAddr = source
        .parse()
        .map_err(|_| std::io::Error::other("bad source"))?;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&src.into())?;
    sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Whether a connection to the cloud port gets `msg` echoed back.
pub fn echoes(mut s: TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).is_ok() && got == msg
}

/// Whether the node closes (or resets) `s` without a byte coming back for `msg`. A
/// connection that just hangs until the read timeout is not a refusal, so this fails where
/// `!echoes` would pass.
pub fn refused(mut s: TcpStream, msg: &[u8]) -> bool {
    let _ = s.write_all(msg);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !is_timeout(&e),
    }
}

/// [`refused`] for a fresh connection to a loopback cloud port.
pub fn refused_at(port: u16, msg: &[u8]) -> bool {
    refused(connect(port), msg)
}

/// Reads (and drops) whatever comes until the peer closes: true if it closed or reset the
/// connection, false if the read timed out first.
pub fn closed_by_node(r: &mut impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !is_timeout(&e),
        }
    }
}

pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
