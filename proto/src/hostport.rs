//! `host:port` as URLs, Host headers and logs write it: an IPv6 address goes in brackets
//! (`[2001:db8::1]:443`), so the port cannot be read as part of the address. One place,
//! because every side of sg formats these (the node's cloud addresses, the client's Host
//! checks and rewrites, the operator client's requests).

use std::borrow::Cow;

/// The host as it stands before `:port`: an IPv6 address bracketed, anything else as is.
pub fn bracketed(host: &str) -> Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    }
}

/// `host:port`, with an IPv6 host bracketed.
pub fn host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracketed(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed_once() {
        assert_eq!(host_port("db.internal", 5432), "db.internal:5432");
        assert_eq!(host_port("10.0.0.5", 80), "10.0.0.5:80");
        assert_eq!(host_port("2001:db8::1", 443), "[2001:db8::1]:443");
        assert_eq!(host_port("[2001:db8::1]", 443), "[2001:db8::1]:443");
        assert_eq!(bracketed("::1"), "[::1]");
    }
}
