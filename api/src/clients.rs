//! A gateway's client processes (`/clients`, F18, F30) and its connection figures
//! (`/stats`). Both live on the nodes the clients are connected to: a node asks its peers
//! (`?scope=node`) and merges their parts.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Whether a listed client is connected now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientState {
    #[default]
    Connected,
    /// Among the last clients gone from this node.
    Disconnected,
}

/// One client process: connected, or among the last ones gone (F30). A client may hold
/// several sessions to a node for the gateway (`--sessions`), summed here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    /// A node of an older release lists connected clients only, without this field.
    #[serde(default)]
    pub state: ClientState,
    pub client_id: String,
    pub version: String,
    pub hostname: String,
    pub address: String,
    pub region: String,
    pub node_id: String,
    /// RFC 3339.
    pub connected_at: String,
    pub sessions: usize,
    pub active_streams: usize,
    pub total_streams: u64,
    pub rtt_ms: f64,
    /// The destinations this client reported on (F31); one left out counts as healthy.
    #[serde(default)]
    pub destinations: Vec<ClientDestinationHealth>,
    /// Disconnected clients: when (RFC 3339) and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One destination as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientDestinationHealth {
    pub destination_id: String,
    pub healthy: bool,
    /// Why it is unhealthy (the last failure), or empty.
    #[serde(default)]
    pub reason: String,
    /// Unix seconds of the last change of state.
    #[serde(default)]
    pub since: u64,
}

/// What ending a client did (`DELETE /v1/gateways/{id}/clients/{client_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Killed {
    pub client_id: String,
    /// Sessions closed, over every node that answered.
    pub sessions_closed: usize,
    pub reason: String,
}

/// A gateway's connection figures, summed over all its clients — on one node, or over the
/// cluster with each node's part in `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewayStats {
    pub gateway_id: String,
    pub clients: usize,
    /// The client processes counted in `clients`.
    #[serde(default)]
    pub client_ids: Vec<String>,
    pub active_connections: u32,
    pub total_connections: u64,
    pub refused_connections: u64,
    /// Bytes from cloud applications to private services (open connections included).
    pub bytes_to_resources: u64,
    /// Bytes from private services back to cloud applications (open connections included).
    pub bytes_to_cloud: u64,
    /// Connections closed by their destination's idle timeout.
    #[serde(default)]
    pub idle_closed_connections: u64,
    pub max_connections: u32,
    /// Each node's part (cluster-wide answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStats>,
    /// Nodes that did not answer (cluster-wide answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_nodes: Vec<String>,
}

/// One node's part of a gateway's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeStats {
    pub node_id: String,
    pub region: String,
    pub clients: usize,
    pub active_connections: u32,
    pub total_connections: u64,
    pub refused_connections: u64,
    pub bytes_to_resources: u64,
    pub bytes_to_cloud: u64,
    #[serde(default)]
    pub idle_closed_connections: u64,
}

/// Who answers: the whole cluster (default) or this node alone (what nodes ask each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Cluster,
    Node,
}

/// `?scope=` of `/clients` and `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// Longest reason an operator may give a client it ends.
pub const MAX_KILL_REASON: usize = 200;

/// `?reason=&scope=` of `DELETE .../clients/{client_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KillQuery {
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Shown to the client and in `/clients` (at most 200 characters, no control characters).
    #[serde(default)]
    pub reason: Option<String>,
}
