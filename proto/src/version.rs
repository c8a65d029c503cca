//! Protocol versioning: a major.minor pair carried in Hello. Majors must match; a client
//! more than [`MAX_MINOR_LAG`] minors behind the node is refused with a message that
//! names the version to upgrade to (F3).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Protocol major version; a change here means the frames themselves changed.
pub const PROTOCOL_MAJOR: u16 = 1;

/// Protocol minor version of this build. Each release that adds to the protocol bumps
/// it; older clients within [`MAX_MINOR_LAG`] keep working. (7 added AclUpdate, 8 NodeList,
/// 9 client-opened streams for cloud destinations, 10 health reports and client kills.)
pub const PROTOCOL_MINOR: u16 = 10;

/// The first minor version whose nodes take [`crate::frame::AclUpdate`] from clients.
pub const ACL_UPDATE_SINCE: u16 = 7;

/// The first minor version whose clients understand [`crate::frame::NodeList`]; older
/// ones would end the session on the unknown frame, so the node sends it only from here.
pub const NODE_LIST_SINCE: u16 = 8;

/// The first minor version whose nodes carry client-opened streams (cloud destinations,
/// F29); a client opens them only on sessions to such a node.
pub const CLOUD_DESTINATIONS_SINCE: u16 = 9;

/// The first minor version whose nodes take [`crate::frame::Frame::Health`] reports
/// (older ones would end the session on the unknown frame) and whose clients know
/// [`crate::frame::NoticeKind::ClientKilled`].
pub const HEALTH_REPORTS_SINCE: u16 = 10;

/// How many minor versions a client may lag behind the node.
pub const MAX_MINOR_LAG: u16 = 3;

/// Product version of this build (the workspace version).
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Environment variable that overrides the protocol minor a process announces. It exists
/// so end-to-end tests can play an old client or node without a second build.
pub const MINOR_OVERRIDE_ENV: &str = "SG_PROTOCOL_MINOR";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

impl ProtocolVersion {
    /// The version this build speaks, honouring [`MINOR_OVERRIDE_ENV`].
    pub fn current() -> Self {
        let minor = std::env::var(MINOR_OVERRIDE_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(PROTOCOL_MINOR);
        ProtocolVersion {
            major: PROTOCOL_MAJOR,
            minor,
        }
    }

    /// Oldest client version a node speaking `self` accepts.
    pub fn oldest_accepted(self) -> Self {
        ProtocolVersion {
            major: self.major,
            minor: self.minor.saturating_sub(MAX_MINOR_LAG),
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a node will not talk to a client of a given version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionMismatch {
    /// Different major version: the frames are not compatible at all.
    Major {
        node: ProtocolVersion,
        client: ProtocolVersion,
    },
    /// The client is too far behind.
    TooOld {
        node: ProtocolVersion,
        client: ProtocolVersion,
        oldest: ProtocolVersion,
    },
}

impl fmt::Display for VersionMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionMismatch::Major { node, client } => write!(
                f,
                "client protocol {client} is not compatible with node protocol {node}; \
                 install an sg-client that speaks protocol {}.x",
                node.major
            ),
            VersionMismatch::TooOld {
                node,
                client,
                oldest,
            } => write!(
                f,
                "client protocol {client} is more than {MAX_MINOR_LAG} minor versions behind \
                 node protocol {node}; upgrade sg-client to a release that speaks protocol \
                 {oldest} or newer (this node runs sg {PRODUCT_VERSION})"
            ),
        }
    }
}

/// Decides whether a node speaking `node` accepts a client speaking `client`.
/// Newer clients are accepted: they know how to talk down to an older node.
pub fn check_compatible(
    node: ProtocolVersion,
    client: ProtocolVersion,
) -> Result<(), VersionMismatch> {
    if node.major != client.major {
        return Err(VersionMismatch::Major { node, client });
    }
    let oldest = node.oldest_accepted();
    if client.minor < oldest.minor {
        return Err(VersionMismatch::TooOld {
            node,
            client,
            oldest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u16) -> ProtocolVersion {
        ProtocolVersion { major: 1, minor }
    }

    #[test]
    fn three_minors_behind_is_accepted_four_is_not() {
        assert!(check_compatible(v(6), v(3)).is_ok());
        assert!(check_compatible(v(6), v(6)).is_ok());
        assert!(
            check_compatible(v(6), v(9)).is_ok(),
            "newer clients talk down"
        );
        let err = check_compatible(v(6), v(2)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("upgrade sg-client"), "{text}");
        assert!(text.contains("1.3"), "names the oldest accepted: {text}");
    }

    #[test]
    fn other_major_is_refused() {
        let node = v(6);
        let client = ProtocolVersion { major: 2, minor: 0 };
        assert!(matches!(
            check_compatible(node, client),
            Err(VersionMismatch::Major { .. })
        ));
    }

    #[test]
    fn lag_saturates_at_zero() {
        assert_eq!(v(1).oldest_accepted(), v(0));
    }
}
