//! The records the node stores. Each carries a format version (`v`) so the stored form can
//! evolve; new fields arrive with serde defaults, so older records still load.

use crate::controls::{CloudTls, IpRule};
use serde::{Deserialize, Serialize};
use sg_proto::frame::{AppProtocol, DestinationKind, ResourceTls};
use sg_proto::health::HealthCheck;
use sg_proto::proxy_header::ProxyProtocol;

/// Current format version of every record.
pub const RECORD_VERSION: u32 = 1;

fn v1() -> u32 {
    RECORD_VERSION
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    pub name: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    /// Unix seconds.
    pub token_expires_at: u64,
    pub created_at: u64,
    pub active: bool,
    pub enabled: bool,
    /// ACL rules in console syntax; empty means "only the configured destinations".
    #[serde(default)]
    pub acl: Vec<String>,
    /// The plan epoch this record was written under; `active` counts only while it is the
    /// plan's (a downgrade starts a new epoch, see `state::effective_gateway`).
    #[serde(default)]
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    pub gateway_id: String,
    pub name: String,
    pub resource_host: String,
    pub resource_port: u16,
    #[serde(default)]
    pub protocol: AppProtocol,
    /// The provisioned cloud port; `Some` exactly while an on-premises destination is
    /// active (a cloud destination never has one).
    pub cloud_port: Option<u16>,
    /// The port it had before it was last deactivated; preferred when it comes back.
    #[serde(default)]
    pub last_cloud_port: Option<u16>,
    pub active: bool,
    pub enabled: bool,
    /// Made inactive because its gateway was; comes back when the gateway does.
    #[serde(default)]
    pub suspended: bool,
    pub created_at: u64,
    /// Allowed sources; empty means anyone may connect.
    #[serde(default)]
    pub ip_rules: Vec<IpRule>,
    /// What the cloud port speaks: plain TCP, TLS or mutual TLS.
    #[serde(default)]
    pub cloud_tls: CloudTls,
    /// How the client reaches the private service over TLS, if it does.
    #[serde(default)]
    pub resource_tls: Option<ResourceTls>,
    /// The plan epoch this record was written under (see `GatewayRecord::epoch`).
    #[serde(default)]
    pub epoch: u64,
    /// A carried connection with no byte either way for this long is closed (0: never).
    #[serde(default)]
    pub idle_timeout_secs: u32,
    /// Connections one source address may hold open at once (0: no cap).
    #[serde(default)]
    pub max_connections_per_source: u32,
    /// The PROXY protocol header the client sends the service first, if any (F26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// HTTP destinations: the client rewrites every request's Host to the private host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_rewrite: bool,
    /// On-premises (a cloud port, the client dials the resource) or cloud (a client port,
    /// the node dials the resource, F29).
    #[serde(default, skip_serializing_if = "DestinationKind::is_on_premises")]
    pub kind: DestinationKind,
    /// Cloud destinations: the port the clients listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// How clients check the private service (F31); `None`: the default TCP check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

impl DestinationRecord {
    /// Whether the destination has a cloud port on the nodes while it is active (a cloud
    /// destination is reached through the clients' port instead).
    pub fn has_cloud_port(&self) -> bool {
        self.kind == DestinationKind::OnPremises
    }
}

/// The limits of this installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    #[serde(default = "v1")]
    pub v: u32,
    pub max_gateways: u32,
    pub max_destinations: u32,
    pub max_connections_per_gateway: u32,
    /// Client processes a gateway may have at once (0: no limit, F30).
    #[serde(default)]
    pub max_clients_per_gateway: u32,
    /// Bumped by a downgrade below usage: what was active under an older epoch is not.
    #[serde(default)]
    pub epoch: u64,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            v: RECORD_VERSION,
            max_gateways: 1000,
            max_destinations: 10_000,
            max_connections_per_gateway: 250,
            max_clients_per_gateway: 0,
            epoch: 0,
        }
    }
}

/// One entry of a gateway's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    #[serde(default = "v1")]
    pub v: u32,
    /// Unix milliseconds.
    pub at: u64,
    pub gateway_id: String,
    pub kind: EventKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What happened: the API's names, stored as they are (sg-api owns them).
pub use sg_api::events::EventKind;
