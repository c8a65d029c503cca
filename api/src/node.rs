//! The node itself: health, the cluster's nodes, the plan, the log level.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether the node serves or drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServingStatus {
    Ok,
    /// Answered with 503, so load balancers move away.
    Draining,
}

/// How the node's configuration store is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    /// A single node on sled: writes go to disk.
    Local,
    /// In a cluster and caught up with etcd: writes go to etcd.
    Synced,
    /// etcd cannot be reached: the node serves its copy, writes are refused.
    Unreachable,
    /// etcd holds no cluster or another one: writes are refused until an operator acts.
    Detached,
}

/// `GET /healthz` (no token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Healthz {
    pub status: ServingStatus,
    pub region: String,
    pub node_id: String,
    pub version: String,
    pub store: StoreStatus,
}

/// A live node of the cluster (`GET /v1/nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    pub region: String,
    /// Where clients dial in (`host:port`).
    pub tunnel: String,
    /// The node's API URL.
    pub api: String,
    pub cloud_host: String,
    pub version: String,
    pub draining: bool,
    /// RFC 3339.
    pub started_at: String,
    /// The node that answered.
    pub this_node: bool,
}

/// The plan's limits and what is used of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub max_gateways: u32,
    pub max_destinations: u32,
    pub max_connections_per_gateway: u32,
    /// 0: no limit.
    #[serde(default)]
    pub max_clients_per_gateway: u32,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub active_gateways: u32,
    pub active_destinations: u32,
}

/// `PUT /v1/plan`: the limits given change, the others stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gateways: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_destinations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_gateway: Option<u32>,
    /// 0 removes the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients_per_gateway: Option<u32>,
}

/// `PUT /v1/log-level`: this node's level from now on, for every module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLevelUpdate {
    /// ERROR, WARN, INFO, DEBUG or TRACE (any case).
    pub level: String,
}

/// This node's log level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLevelView {
    pub log_level: String,
    /// The `RUST_LOG` filters, if the node started with some and no level was set since.
    #[serde(default)]
    pub filters: Option<String>,
}
