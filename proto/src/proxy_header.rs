//! PROXY protocol headers (HAProxy's specification, versions 1 and 2), which the client
//! writes to a private service before any byte of a carried connection so the service
//! sees the cloud application's real address ([F26]) instead of the client's.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Which PROXY protocol header a destination's private service expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// The text form: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary form.
    V2,
}

/// The v2 signature every binary header starts with.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header for a connection from `source` (the cloud application) to `destination`
/// (the cloud address it reached). Addresses of different families — an IPv4 application
/// on an IPv6 listener shows as `::ffff:a.b.c.d` and is read as IPv4 — that still differ
/// are sent as "unknown", which the specification allows and servers accept.
pub fn header(version: ProxyProtocol, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (src, dst) = (canonical(source), canonical(destination));
    match version {
        ProxyProtocol::V1 => v1(src, dst),
        ProxyProtocol::V2 => v2(src, dst),
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
        _ => return b"PROXY UNKNOWN\r\n".to_vec(),
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    // Version 2, command PROXY.
    out.push(0x21);
    let mut body = Vec::with_capacity(36);
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x11 // AF_INET, STREAM
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x21 // AF_INET6, STREAM
        }
        _ => 0x00, // AF_UNSPEC: the receiver uses the connection's own addresses
    };
    if family != 0x00 {
        body.extend_from_slice(&src.port().to_be_bytes());
        body.extend_from_slice(&dst.port().to_be_bytes());
    }
    out.push(family);
    // At most 36 bytes: the length always fits.
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_is_the_text_line_of_the_specification() {
        assert_eq!(
            header(
                ProxyProtocol::V1,
                addr("192.0.2.7:51234"),
                addr("198.18.0.1:20001")
            ),
            b"PROXY TCP4 192.0.2.7 198.18.0.1 51234 20001\r\n"
        );
        assert_eq!(
            header(
                ProxyProtocol::V1,
                addr("[2001:db8::7]:5"),
                addr("[2001:db8::1]:6")
            ),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 5 6\r\n"
        );
        // An IPv4 application on a dual-stack listener is IPv4.
        assert_eq!(
            header(
                ProxyProtocol::V1,
                addr("[::ffff:192.0.2.7]:1"),
                addr("198.18.0.1:2")
            ),
            b"PROXY TCP4 192.0.2.7 198.18.0.1 1 2\r\n"
        );
        assert_eq!(
            header(
                ProxyProtocol::V1,
                addr("192.0.2.7:1"),
                addr("[2001:db8::1]:2")
            ),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn v2_is_the_binary_header_of_the_specification() {
        let h = header(
            ProxyProtocol::V2,
            addr("192.0.2.7:51234"),
            addr("198.18.0.1:20001"),
        );
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0x00, 12, 192, 0, 2, 7, 198, 18, 0, 1]);
        want.extend_from_slice(&51234u16.to_be_bytes());
        want.extend_from_slice(&20001u16.to_be_bytes());
        assert_eq!(h, want);
        let h6 = header(
            ProxyProtocol::V2,
            addr("[2001:db8::7]:5"),
            addr("[2001:db8::1]:6"),
        );
        assert_eq!(h6.len(), 16 + 36);
        assert_eq!(&h6[13..16], &[0x21, 0x00, 36]);
        let mixed = header(
            ProxyProtocol::V2,
            addr("192.0.2.7:1"),
            addr("[2001:db8::1]:2"),
        );
        assert_eq!(&mixed[12..], &[0x21, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn the_api_spells_them_v1_and_v2() {
        assert_eq!(
            serde_json::from_str::<ProxyProtocol>("\"v2\"").unwrap(),
            ProxyProtocol::V2
        );
        assert!(serde_json::from_str::<ProxyProtocol>("\"v3\"").is_err());
    }
}
