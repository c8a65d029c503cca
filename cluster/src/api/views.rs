//! The JSON shapes the API answers with. Field names are binding (SPEC.md); new fields may
//! be added.

use crate::controls::{resource_tls_view, CloudTlsView, IpRule, ResourceTlsView};
use crate::etcd::registry::{Fleet, NodeRecord};
use crate::listening::Listen;
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};
use crate::time::{now_secs, rfc3339, rfc3339_millis};
use serde::{Deserialize, Serialize};
use sg_proto::frame::{AppProtocol, DestinationKind};

#[derive(Debug, Serialize)]
pub struct GatewayView {
    pub id: String,
    pub name: String,
    /// Shown only when the token is issued (create, regenerate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub token_expires_at: String,
    pub token_expired: bool,
    pub active: bool,
    pub enabled: bool,
    pub created_at: String,
}

impl GatewayView {
    pub fn new(g: &GatewayRecord, token: Option<String>) -> Self {
        GatewayView {
            id: g.id.clone(),
            name: g.name.clone(),
            token,
            token_expires_at: rfc3339(g.token_expires_at),
            token_expired: now_secs() >= g.token_expires_at,
            active: g.active,
            enabled: g.enabled,
            created_at: rfc3339(g.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TokenView {
    pub token: String,
    pub token_expires_at: String,
}

#[derive(Debug, Serialize)]
pub struct DestinationView {
    pub id: String,
    pub gateway_id: String,
    pub name: String,
    /// `"on_premises"` (a cloud port, the client dials the resource) or `"cloud"` (a
    /// client port, the node dials the resource).
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Cloud destinations: the port every client of the gateway listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    pub resource_host: String,
    pub resource_port: u16,
    pub protocol: AppProtocol,
    pub cloud_host: String,
    /// `null` while the destination is inactive: it has no port then.
    pub cloud_port: Option<u16>,
    /// Where cloud applications reach it: the same port on every live node of the cluster,
    /// so one DNS name over all regions keeps working when a region is lost.
    pub cloud_addresses: Vec<CloudAddress>,
    /// Whether this node's cloud port for it is listening now (false while inactive, or
    /// when the port could not be bound: `listen_error` says why, and it is retried).
    pub listening: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_error: Option<String>,
    pub active: bool,
    pub enabled: bool,
    pub created_at: String,
    pub ip_rules: Vec<IpRule>,
    /// Seconds without a byte either way before a connection is closed (0: never).
    pub idle_timeout_secs: u32,
    /// Connections one source address may hold open at once (0: no cap).
    pub max_connections_per_source: u32,
    /// `"off"`, `"v1"` or `"v2"`.
    pub proxy_protocol: crate::state::ProxySetting,
    pub host_rewrite: bool,
    /// How clients check the private service (the default TCP check when none was set;
    /// `null` for a cloud destination).
    pub health_check: Option<sg_proto::health::HealthCheck>,
    pub cloud_tls: CloudTlsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_tls: Option<ResourceTlsView>,
}

/// One node's cloud address of a destination.
#[derive(Debug, Serialize)]
pub struct CloudAddress {
    pub region: String,
    pub node_id: String,
    pub host: String,
    pub port: u16,
}

impl DestinationView {
    /// Adds what this node knows of the cloud port's listener.
    pub fn with_listen(mut self, state: Option<Listen>) -> Self {
        match state {
            Some(Listen::Listening) => self.listening = true,
            Some(Listen::Failed(why)) => {
                self.listen_error = Some(format!(
                    "cannot listen on cloud port {}: {why} (retrying)",
                    self.cloud_port.unwrap_or(0)
                ))
            }
            None => {}
        }
        self
    }

    pub fn new(d: &DestinationRecord, cloud_host: &str, fleet: &Fleet) -> Self {
        let cloud_addresses = match d.cloud_port {
            Some(port) => fleet
                .nodes
                .iter()
                .filter(|n| !n.draining)
                .map(|n| CloudAddress {
                    region: n.region.clone(),
                    node_id: n.id.clone(),
                    host: n.cloud_host.clone(),
                    port,
                })
                .collect(),
            None => Vec::new(),
        };
        DestinationView {
            cloud_addresses,
            listening: false,
            listen_error: None,
            id: d.id.clone(),
            gateway_id: d.gateway_id.clone(),
            name: d.name.clone(),
            kind: d.kind,
            client_port: d.client_port,
            resource_host: d.resource_host.clone(),
            resource_port: d.resource_port,
            protocol: d.protocol,
            cloud_host: cloud_host.to_string(),
            cloud_port: d.cloud_port,
            active: d.active,
            enabled: d.enabled,
            created_at: rfc3339(d.created_at),
            ip_rules: d.ip_rules.clone(),
            idle_timeout_secs: d.idle_timeout_secs,
            max_connections_per_source: d.max_connections_per_source,
            proxy_protocol: crate::state::ProxySetting::of(d.proxy_protocol),
            host_rewrite: d.host_rewrite,
            health_check: d
                .has_cloud_port()
                .then(|| d.health_check.clone().unwrap_or_default()),
            cloud_tls: d.cloud_tls.view(),
            resource_tls: d.resource_tls.as_ref().map(resource_tls_view),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PlanView {
    pub max_gateways: u32,
    pub max_destinations: u32,
    pub max_connections_per_gateway: u32,
    /// 0: no limit.
    pub max_clients_per_gateway: u32,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub active_gateways: u32,
    pub active_destinations: u32,
}

impl PlanView {
    pub fn new(p: Plan, usage: Usage) -> Self {
        PlanView {
            max_gateways: p.max_gateways,
            max_destinations: p.max_destinations,
            max_connections_per_gateway: p.max_connections_per_gateway,
            max_clients_per_gateway: p.max_clients_per_gateway,
            usage,
        }
    }
}

/// An event, tagged with the node that recorded it.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventView {
    pub at: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub region: String,
    pub kind: crate::records::EventKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl EventView {
    pub fn new(e: EventRecord, node_id: &str, region: &str) -> Self {
        EventView {
            at: rfc3339_millis(e.at),
            node_id: node_id.to_string(),
            region: region.to_string(),
            kind: e.kind,
            message: e.message,
            destination_id: e.destination_id,
            client_id: e.client_id,
        }
    }
}

/// A live node of the cluster (`GET /v1/nodes`).
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    pub region: String,
    pub tunnel: String,
    pub api: String,
    pub cloud_host: String,
    pub version: String,
    pub draining: bool,
    pub started_at: String,
    /// The node that answered.
    pub this_node: bool,
}

impl NodeView {
    pub fn new(n: &NodeRecord, me: &str) -> Self {
        NodeView {
            id: n.id.clone(),
            region: n.region.clone(),
            tunnel: n.tunnel.clone(),
            api: n.api.clone(),
            cloud_host: n.cloud_host.clone(),
            version: n.version.clone(),
            draining: n.draining,
            started_at: rfc3339(n.started_at),
            this_node: n.id == me,
        }
    }
}
