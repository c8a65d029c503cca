//! Whether a stream may reach a destination: the addresses its host stands for, and the
//! verdict of the gateway's ACL (and of the client's locked ACL file) at each. Carried
//! streams ([`crate::serve`]) and health probes ([`crate::health`]) ask the same question.

use crate::registry::GatewayRuntime;
use sg_proto::acl::{canonical, parse_ip_loose, Acl, Decision, Rule};
use sg_proto::frame::DestinationSpec;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a destination's host stands for no address to dial (the service is unreachable,
/// not refused).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Failed {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot resolve {host} within {secs}s")]
    TimedOut { host: String, secs: u64 },
}

/// Why the ACL refused a stream at one address: the gateway's shared ACL, or the client's
/// locked ACL file that the shared one cannot widen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclRefusal {
    #[error("{0}")]
    Gateway(String),
    #[error("the client's locked ACL file: {0}")]
    LockedFile(String),
}

/// The addresses a destination's host stands for: itself when it is an address in any
/// form, else what it resolves to.
pub async fn resolve(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(ip) = parse_ip_loose(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(limit, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs
            .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
            .collect()),
        Ok(Err(source)) => Err(ResolveError::Failed {
            host: host.to_string(),
            source,
        }),
        Err(_) => Err(ResolveError::TimedOut {
            host: host.to_string(),
            secs: limit.as_secs(),
        }),
    }
}

/// The gateway's ACL, and the client's locked ACL file when there is one, on a stream to
/// `dest` dialled at `addr`: the HTTP path rules of each (every set must pass), or why not.
pub fn decide(
    gateway: &GatewayRuntime,
    acl: &Acl,
    dest: &DestinationSpec,
    addr: SocketAddr,
) -> Result<Vec<Vec<Rule>>, AclRefusal> {
    let (host, ip, port) = (dest.resource_host.as_str(), Some(addr.ip()), addr.port());
    let default = gateway.acl_default;
    let mut sets = Vec::new();
    match acl.decide_at(host, ip, port, true, default) {
        Decision::Allow { path_rules } => sets.push(path_rules),
        Decision::Deny { reason } => return Err(AclRefusal::Gateway(reason)),
    }
    if let Some(ceiling) = gateway.ceiling() {
        match ceiling.decide_at(host, ip, port, true, default) {
            Decision::Allow { path_rules } => sets.push(path_rules),
            Decision::Deny { reason } => return Err(AclRefusal::LockedFile(reason)),
        }
    }
    Ok(sets)
}
