//! Cloud destinations (F29): the reverse direction. A private application connects to a
//! client's local `client_port`; the client opens a stream naming the destination; the
//! node connects to the cloud resource an admin configured for it. The client names a
//! destination only, never an address, so a client cannot make the node dial anything an
//! admin did not configure on its gateway.
//!
//! Here: which fields a cloud destination may have, and the node's refusal to dial its
//! own tunnel or API port (a loop, or a way around the admin token's network position),
//! checked on the configured host when it is stored and on every resolved address when
//! it is dialled.

use crate::controls::FieldError;
use crate::records::DestinationRecord;
use sg_proto::acl::parse_ip_loose;
use sg_proto::frame::{AppProtocol, DestinationKind};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long the node waits for a cloud resource to accept a connection.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's own listeners, which no cloud destination may point at.
#[derive(Debug, Clone)]
pub struct NodeEndpoints {
    pub tunnel: SocketAddr,
    pub api: SocketAddr,
    /// The name cloud applications reach the node by.
    pub cloud_host: String,
}

impl NodeEndpoints {
    fn guards_port(&self, port: u16) -> Option<&'static str> {
        if port == self.tunnel.port() {
            Some("tunnel")
        } else if port == self.api.port() {
            Some("API")
        } else {
            None
        }
    }

    /// Which of the node's own ports `ip:port` is, if it is one.
    pub fn own_port(&self, ip: IpAddr, port: u16) -> Option<&'static str> {
        let which = self.guards_port(port)?;
        is_this_host(ip).then_some(which)
    }

    /// The same for a configured host, as far as it can be told without resolving it
    /// (a name is checked again, resolved, when it is dialled).
    fn names_own_port(&self, host: &str, port: u16) -> Option<&'static str> {
        let which = self.guards_port(port)?;
        let named = host.eq_ignore_ascii_case("localhost")
            || host.eq_ignore_ascii_case(&self.cloud_host)
            || parse_ip_loose(host).is_some_and(is_this_host);
        named.then_some(which)
    }
}

/// Whether `ip` is an address of this machine: loopback, unspecified, or one a socket can
/// be bound to here.
fn is_this_host(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

fn invalid(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The fields of `d` that fit its kind, checked against the gateway's other destinations
/// (`siblings`, without `d`).
pub fn check_kind<'a>(
    d: &DestinationRecord,
    siblings: impl Iterator<Item = &'a DestinationRecord>,
    node: &NodeEndpoints,
) -> Result<(), FieldError> {
    if d.kind == DestinationKind::OnPremises {
        if d.client_port.is_some() {
            return Err(invalid(
                "client_port",
                "only a destination of \"type\": \"cloud\" has a client port",
            ));
        }
        return Ok(());
    }
    let Some(port) = d.client_port else {
        return Err(invalid(
            "client_port",
            "a cloud destination needs the port its clients listen on (1-65535)",
        ));
    };
    let not_here = |field: &str, what: &str| {
        invalid(
            field,
            format!(
                "{what} applies to on-premises destinations; a cloud destination is a plain TCP \
                 connection from the node to the resource"
            ),
        )
    };
    if d.health_check.is_some() {
        return Err(invalid(
            "health_check",
            "applies to on-premises destinations: the node, not a client, reaches a cloud \
             destination's resource",
        ));
    }
    if d.proxy_protocol.is_some() {
        return Err(not_here("proxy_protocol", "a PROXY protocol header"));
    }
    if d.host_rewrite {
        return Err(not_here("host_rewrite", "Host rewriting"));
    }
    if d.protocol != AppProtocol::Tcp {
        return Err(not_here("protocol", "\"http\" (ACL path rules)"));
    }
    if d.resource_tls.as_ref().is_some_and(|t| t.enabled) {
        return Err(not_here("resource_tls", "resource-side TLS"));
    }
    if d.cloud_tls.mode != crate::controls::CloudTlsMode::None {
        return Err(not_here("cloud_tls", "a TLS cloud port"));
    }
    if d.max_connections_per_source > 0 {
        return Err(not_here(
            "max_connections_per_source",
            "a cap per cloud source address",
        ));
    }
    if let Some(which) = node.names_own_port(&d.resource_host, d.resource_port) {
        return Err(invalid(
            "resource_port",
            format!(
                "{}:{} is this node's own {which} port; a cloud destination names a cloud \
                 resource, not the node",
                d.resource_host, d.resource_port
            ),
        ));
    }
    let mut siblings = siblings;
    if let Some(other) = siblings
        .find(|o| o.id != d.id && o.kind == DestinationKind::Cloud && o.client_port == Some(port))
    {
        return Err(invalid(
            "client_port",
            format!(
                "{port} is already the client port of destination {} ({}) of this gateway",
                other.id, other.name
            ),
        ));
    }
    Ok(())
}

/// Why the node did not connect to a cloud resource.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{addr} is this node's own {which} port")]
    OwnPort {
        addr: SocketAddr,
        which: &'static str,
    },
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("{target} did not accept within {}s", DIAL_TIMEOUT.as_secs())]
    Timeout { target: String },
}

/// Connects to a cloud destination's resource: resolved here, every address checked
/// against the node's own ports, then tried in turn.
pub async fn dial(host: &str, port: u16, node: &NodeEndpoints) -> Result<TcpStream, DialError> {
    let target = sg_proto::hostport::host_port(host, port);
    let work = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| DialError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        if let Some((addr, which)) = addrs
            .iter()
            .find_map(|a| node.own_port(a.ip(), a.port()).map(|w| (*a, w)))
        {
            return Err(DialError::OwnPort { addr, which });
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(DialError::Connect {
            target: target.clone(),
            source: last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
        })
    };
    match tokio::time::timeout(DIAL_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(DialError::Timeout { target }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeEndpoints {
        NodeEndpoints {
            tunnel: "0.0.0.0:9000".parse().unwrap(),
            api: "127.0.0.1:9090".parse().unwrap(),
            cloud_host: "relay.example.com".into(),
        }
    }

    #[test]
    fn the_nodes_own_ports_are_recognised_in_every_spelling() {
        let n = node();
        for (host, port) in [
            ("localhost", 9000),
            ("127.0.0.1", 9090),
            ("127.1", 9090),
            ("0x7f000001", 9000),
            ("::1", 9090),
            ("::ffff:127.0.0.1", 9000),
            ("relay.example.com", 9000),
            ("0.0.0.0", 9090),
        ] {
            assert!(n.names_own_port(host, port).is_some(), "{host}:{port}");
        }
        assert!(n.names_own_port("localhost", 5432).is_none());
        assert!(n.names_own_port("198.18.0.1", 9000).is_none());
        assert!(n.names_own_port("db.example.com", 9000).is_none());
    }

    #[tokio::test]
    async fn dialling_refuses_the_nodes_own_port_after_resolution() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut n = node();
        n.api = SocketAddr::new([127, 0, 0, 1].into(), port);
        let err = dial("localhost", port, &n).await.unwrap_err();
        assert!(matches!(err, DialError::OwnPort { .. }), "{err}");
        n.api = "127.0.0.1:1".parse().unwrap();
        assert!(dial("localhost", port, &n).await.is_ok());
    }
}
